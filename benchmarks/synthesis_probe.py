"""What the synthesis grid's sets carry, measured without training an evaluator on them.

    python benchmarks/toy_synthesis_grid.py --dataset toy-motion ...   # first: the grid
    python benchmarks/synthesis_probe.py --dataset toy-motion          # then: this probe

For every row of the grid's ``results.json`` that has sets (synthetic rows: every seed's
set; ``random``: every seed's draw), over all its seeds:

* **real-net top-1** — the accuracy, on the set's own clips, of the full-real classifier
  (the ``classifier`` embedder's net: ``toy-quick``, seed 0, trained on all real training
  clips, cached in the grid's store; trained once, ~3 CPU-minutes, if absent). Real clips
  score ~100 % (the net saw them) and real *test* clips show what it does on unseen real
  ones: a set it cannot recognise no longer looks like its class to a net that knows it.
* **temporal energy** — mean |x[t+1] − x[t]| in the evaluator's normalised units, beside
  real test clips': how much frame-to-frame change (on the toys: the motion) is left.
* **IDTD's Diverse Segments** (rows with an IDTD checkpoint, ablations included): the same
  two measures on the K segments of every video, each labelled with its video's class —
  do the segments keep the class's evidence and the fusion lose it, or are they already
  without it?
* **IDTD's learned Temporal Fusor** (rows whose checkpoints have one): the mean over
  output frames of the largest weight in A (uniform = 1/K: every frame a blend of all K
  segments; 1: one segment per frame) and the mean taps of h (identity at init).

Rows that share sets (``idtd+τ`` evaluates ``idtd``'s) are probed once. A row already in
``probe.json`` with the same sets (folders, or Random's seeds) and the same reference
figures is reused, so a grid that grew by a row costs that row only; ``--fresh`` re-probes
everything. Writes
``benchmarks/results/synthesis_probe_<toy>/probe.json`` and ``probe.md``, and
``docs/img/synth_probe_strip_<toy>.jpg``: for classes 0–2, the first clip of each VPC-1
row's seed-0 set (all 8 frames), to see what the numbers describe.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from paired_grid import DATASETS
from vidistill.atomic import write_bytes_atomic, write_json_atomic
from vidistill.clipstore import ClipStore
from vidistill.embed.classifier import ClassifierEmbedder
from vidistill.evaluate import random_indices
from vidistill.integrity import load_safetensors
from vidistill.report import frame_strip
from vidistill.synthesize.runner import build
from vidistill.synthetic import SyntheticSet
from vidistill.transforms import to_uint8

ROOT = Path(__file__).resolve().parent
STRIP_CLASSES = (0, 1, 2)


@torch.no_grad()
def clip_measures(net: torch.nn.Module, videos: torch.Tensor, labels: torch.Tensor) -> dict:
    """Real-net top-1 (%) and temporal energy of ``videos`` (N,3,T,H,W), normalised space."""
    pred = torch.cat([net(v.float()).argmax(1) for v in videos.split(50)])
    return {
        "real_net_top1": float((pred == labels).float().mean()) * 100,
        "temporal_energy": float((videos[:, :, 1:] - videos[:, :, :-1]).abs().mean()),
    }


def idtd_state(set_dir: Path, store: ClipStore, net: torch.nn.Module) -> dict | None:
    """What an IDTD set's checkpoint holds beside its fused videos: the learned fusor (A's
    mean largest weight per output frame, h's mean taps) and the Diverse Segments' own
    real-net top-1 and temporal energy — whether the segments keep their class's evidence
    and the fusion loses it, or the segments lost it. None: not an IDTD set, or no
    checkpoint. The synthesizer is rebuilt from the set's ``done.json`` and loaded from
    the checkpoint (``IDTD.segments`` / ``mixing``, no formula restated here)."""
    ckpt = set_dir / "checkpoint.safetensors"
    done = json.loads((set_dir / "done.json").read_text())
    if done["method"] != "idtd" or not ckpt.is_file():
        return None
    synth = build(store, "idtd", done["vpc"], done["config"], done["seed"])
    tensors, _ = load_safetensors(
        ckpt, "toy_synthesis_grid.py (delete the set's folder; it re-synthesises)"
    )
    synth.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("param.")})
    classes = range(synth.num_classes)
    with torch.no_grad():
        segs = [synth.segments(c).flatten(0, 1) for c in classes]  # (M·K, 3, T, H, W) each
        labels = torch.arange(synth.num_classes).repeat_interleave(segs[0].shape[0])
        m = clip_measures(net, torch.cat(segs), labels)
        out = {"segment_real_net_top1": m["real_net_top1"], "segment_energy": m["temporal_energy"]}
        if synth.config.learns_fusor and synth.config.fusor == "aligned":
            a = torch.cat([synth.mixing(c) for c in classes])  # (classes·M, T, K)
            out["a_max_weight"] = float(a.max(-1).values.mean())
            out["a_uniform"] = 1.0 / a.shape[-1]
            h = torch.cat(list(synth.fus_kernel)).mean(0)
            out["h_taps"] = [round(float(x), 3) for x in h]
    return out


def row_sets(
    row: dict, store: ClipStore
) -> Iterator[tuple[Path | None, torch.Tensor, torch.Tensor]]:
    """A grid row's sets, seed by seed: ``(set folder or None, normalised videos, labels)`` —
    synthetic rows from their folders, ``random`` redrawn with each seed; nothing for other
    rows (herding)."""
    if row.get("synth_dirs"):
        for d in row["synth_dirs"]:
            s = SyntheticSet.load(Path(d))
            yield Path(d), s.videos, s.labels
    elif row["row"] == "random":
        for seed in row["seeds"]:
            idx = random_indices(store, row["vpc"], seed)
            yield None, store.tensor(idx), torch.from_numpy(store.labels[idx])


def probe_row(row: dict, store: ClipStore, net: torch.nn.Module) -> dict | None:
    """Every seed's measures of one grid row, averaged (with the per-seed list)."""
    per_seed = []
    for folder, videos, labels in row_sets(row, store):
        m = clip_measures(net, videos, labels)
        idtd = idtd_state(folder, store, net) if folder is not None else None
        per_seed.append({**m, **({"idtd": idtd} if idtd else {})})
    if not per_seed:
        return None
    out = {
        "row": row["row"],
        "vpc": row["vpc"],
        "seeds": len(per_seed),
        "real_net_top1": float(np.mean([p["real_net_top1"] for p in per_seed])),
        "real_net_top1_std": float(np.std([p["real_net_top1"] for p in per_seed])),
        "temporal_energy": float(np.mean([p["temporal_energy"] for p in per_seed])),
        "per_seed": per_seed,
    }
    states = [p["idtd"] for p in per_seed if "idtd" in p]
    if states:
        seg_top1 = [st["segment_real_net_top1"] for st in states]
        out["segment_real_net_top1"] = float(np.mean(seg_top1))
        out["segment_real_net_top1_std"] = float(np.std(seg_top1))
        out["segment_energy"] = float(np.mean([st["segment_energy"] for st in states]))
    fusors = [st for st in states if "a_max_weight" in st]
    if fusors:
        out["a_max_weight"] = float(np.mean([f["a_max_weight"] for f in fusors]))
        out["a_uniform"] = fusors[0]["a_uniform"]
        out["h_taps"] = [round(float(x), 3) for x in np.mean([f["h_taps"] for f in fusors], 0)]
    return out


def sets_of(row: dict) -> list:
    """What a probe of ``row`` depends on: its set folders, or (real rows) its draws' seeds."""
    return list(row.get("synth_dirs") or ()) or [f"{row['row']} seed {s}" for s in row["seeds"]]


def reusable(path: Path, reference: dict) -> dict[tuple, dict]:
    """Earlier probes of the same sets under the same full-real net, by (row, VPC, sets)."""
    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    same = set(old.get("reference", {})) == set(reference) and all(
        math.isclose(old["reference"][k], v, rel_tol=1e-5) for k, v in reference.items()
    )  # not bit-equal: the thread count changes float sums
    if not same:
        return {}  # another net (or store): every row is measured again
    return {(p["row"], p["vpc"], tuple(p["sets"])): p for p in old["rows"] if "sets" in p}


def short_name(row: str) -> str:
    """A strip label: the method, with DM's augmented variant told apart."""
    return "dm+aug" if row.startswith("dm (clip") else row.split(" (")[0]


def strip(rows: list[dict], store: ClipStore, path: Path) -> Path:
    """Classes 0–2 (row groups) × the VPC-1 rows: each row's first clip of the class."""
    first = [next(row_sets(row, store))[1:] for row in rows]  # each row's seed-0 set
    clips, labels = [], []
    for c in STRIP_CLASSES:
        for row, (videos, labs) in zip(rows, first, strict=True):
            clips.append(to_uint8(videos[labs == c][:1].float())[0].numpy())
            labels.append(f"{store.class_names[c]}: {short_name(row['row'])}")
    return frame_strip(np.stack(clips), path, scale=1, labels=labels)


def markdown(reference: dict, probes: list[dict], dataset: str) -> str:
    lines = [
        f"Synthesis probe, `{dataset}` (full-real classifier: `toy-quick`, seed 0; "
        f"real test clips: real-net top-1 {reference['real_net_top1']:.1f} %, temporal "
        f"energy {reference['temporal_energy']:.3f}):",
        "",
        "| row | VPC | seeds | real-net top-1 % | temporal energy (× real test) "
        "| IDTD segments: real-net top-1 % | segments' energy (× real test) "
        "| fusor: A's largest weight (uniform) | fusor: h taps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in probes:
        ratio = p["temporal_energy"] / reference["temporal_energy"]
        a = f"{p['a_max_weight']:.3f} ({p['a_uniform']:.3f})" if "a_max_weight" in p else "–"
        h = " / ".join(f"{x:.2f}" for x in p["h_taps"]) if "h_taps" in p else "–"
        seg, seg_e = "–", "–"
        if "segment_real_net_top1" in p:
            seg = f"{p['segment_real_net_top1']:.1f} ± {p['segment_real_net_top1_std']:.1f}"
            e = p["segment_energy"]
            seg_e = f"{e:.3f} ({e / reference['temporal_energy']:.2f}×)"
        lines.append(
            f"| {p['row']} | {p['vpc']} | {p['seeds']} | {p['real_net_top1']:.1f} ± "
            f"{p['real_net_top1_std']:.1f} | {p['temporal_energy']:.3f} ({ratio:.2f}×) "
            f"| {seg} | {seg_e} | {a} | {h} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", choices=DATASETS, default="toy")
    ap.add_argument("--work", type=Path, default=Path("/tmp/vidistill_synth_grid"))
    ap.add_argument("--grid", type=Path, help="the grid's results folder (default: its own)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--fresh", action="store_true", help="re-probe rows already in probe.json")
    args = ap.parse_args()
    grid = args.grid or ROOT / "results" / f"toy_synthesis_grid_paired_{args.dataset}"
    out = args.out or ROOT / "results" / f"synthesis_probe_{args.dataset}"
    rows = json.loads((grid / "results.json").read_text())
    store = ClipStore(args.work / args.dataset)
    net = ClassifierEmbedder(store).net.eval()
    test = store.indices("test")
    reference = clip_measures(net, store.tensor(test), torch.from_numpy(store.labels[test]))
    earlier = {} if args.fresh else reusable(out / "probe.json", reference)
    probes, seen, probed_rows = [], set(), []
    for row in rows:
        sets = tuple(row.get("synth_dirs") or ())
        if sets and sets in seen:
            continue  # idtd+τ: idtd's sets, evaluated differently
        seen.add(sets)
        key = (row["row"], row["vpc"], tuple(sets_of(row)))
        p = earlier.get(key) or probe_row(row, store, net)
        if p is not None:
            p["sets"] = list(key[2])
            probes.append(p)
            probed_rows.append(row)
            print(f"{p['row']} vpc={p['vpc']}: real-net top-1 {p['real_net_top1']:.1f}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "probe.json", {"reference": reference, "rows": probes})
    md = markdown(reference, probes, args.dataset)
    write_bytes_atomic(out / "probe.md", md.encode())
    print(md)
    name = f"synth_probe_strip_{args.dataset.replace('-', '_')}.jpg"  # JPEG: 1.6 MB as PNG
    img = ROOT.parent / "docs" / "img" / name
    print(f"wrote {strip([r for r in probed_rows if r['vpc'] == 1], store, img)}")


if __name__ == "__main__":
    main()
