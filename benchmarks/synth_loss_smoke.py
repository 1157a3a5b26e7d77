"""Smoke check that each synthesizer's loss goes down on a tiny toy (minutes on 2 cores).

    OMP_NUM_THREADS=1 python benchmarks/synth_loss_smoke.py --iterations 60

Prepares a small ``toy`` store (``--classes`` × ``--per-class`` train clips, 8×64²), runs
each ``--methods`` entry (``name`` or ``name:key=value,key=value``) at VPC ``--vpc`` with the
grid's matching net (ConvNet3D ×``--net-width``, ``--real-batch`` real clips per class), and
prints per run:

* the training loss (``done.json`` history; every iteration draws a fresh random φ, so it
  is noisy) as the mean of the first and of the last ``--window`` iterations, and for
  IDTD its terms (L_M(D), L_div, L_M(V′));
* the **held-out** L_M: Σ_c ‖mean φ(all real train clips of c) − mean φ(set_c)‖² under
  ``--heldout-nets`` fresh ConvNet3Ds no synthesizer saw (φ = ``embed``, the matching
  embedding), for the initial set (the method's own init, built with the same seed) and
  for the learned one — a decrease that is not the noise of the training loss.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def heldout(store, videos, labels, nets: int, width: float) -> float:
    from vidistill.synthesize.common import fresh_net

    total = 0.0
    with torch.no_grad():
        for i in range(nets):
            net = fresh_net(store.num_classes, store.spec.frames, store.spec.size, width, 10**9 + i)
            for c in range(store.num_classes):
                real = net.embed(store.tensor(store.indices("train", c))).mean(0)
                syn = net.embed(videos[labels == c].float()).mean(0)
                total += float((real - syn).pow(2).sum())
    return total / nets


def parse_method(text: str) -> tuple[str, str, dict]:
    name, _, rest = text.partition(":")
    opts = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    return text, name, opts


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--methods", nargs="+", default=["dm", "dm:augment=clip", "idtd", "vdsd"])
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--per-class", type=int, default=16)
    ap.add_argument("--vpc", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--net-width", type=float, default=0.25)
    ap.add_argument("--real-batch", type=int, default=16)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--heldout-nets", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()

    from vidistill.datasets.toy import ToyDataset
    from vidistill.prepare import prepare
    from vidistill.synthesize import build, synthesize

    work = args.work or Path(tempfile.mkdtemp(prefix="vidistill_synth_smoke_"))
    ds = ToyDataset(
        num_classes=args.classes, train_per_class=args.per_class, test_per_class=2, seed=0
    )
    store = prepare(ds, work / "toy", workers=1, progress=False)
    print(
        f"toy: {args.classes} classes × {args.per_class} train clips, "
        f"{store.spec.frames}×{store.spec.size}²; VPC {args.vpc}, {args.iterations} iterations, "
        f"φ = ConvNet3D×{args.net_width}, real batch {args.real_batch}; work {work}",
        flush=True,
    )
    for label, method, opts in map(parse_method, args.methods):
        options = {
            **opts,
            "iterations": args.iterations,
            "net_width": args.net_width,
            "real_batch": args.real_batch,
        }
        init_v, init_y = build(store, method, args.vpc, options, args.seed).videos()
        out = work / label.replace(":", "_").replace(",", "_").replace("=", "-")
        t0 = time.perf_counter()
        syn = synthesize(
            store, method, args.vpc, out, options, seed=args.seed, progress=False, preview=False
        )
        seconds = time.perf_counter() - t0
        hist = json.loads((out / "done.json").read_text())["history"]
        w = min(args.window, max(1, len(hist) // 2))

        def mean(key: str, part: list[dict]) -> float:
            vals = [h[key] for h in part if key in h]
            return sum(vals) / len(vals) if vals else float("nan")

        keys = [k for k in ("loss", "l_m_seg", "l_div", "l_m_vid") if k in hist[0]]
        if method == "vdsd":  # the loss of stage 2 only (stage 1 trains stills on still clips)
            hist2 = [h for h in hist if h.get("stage") == 2.0] or hist
            w = min(args.window, max(1, len(hist2) // 2))
            first, last = hist2[:w], hist2[-w:]
        else:
            first, last = hist[:w], hist[-w:]
        terms = ", ".join(f"{k} {mean(k, first):.4g} → {mean(k, last):.4g}" for k in keys)
        h0 = heldout(store, init_v, init_y, args.heldout_nets, args.net_width)
        h1 = heldout(store, syn.videos, syn.labels, args.heldout_nets, args.net_width)
        print(
            f"{label}: train (mean of first/last {w} its) {terms}; held-out L_M {h0:.4g} → "
            f"{h1:.4g} ({(h1 - h0) / h0:+.1%}); {seconds:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
