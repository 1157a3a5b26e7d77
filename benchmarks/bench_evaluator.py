"""Evaluator training throughput vs a bare PyTorch loop over the same model and tensors.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_evaluator.py            # CPU, 8×64²
    python benchmarks/bench_evaluator.py --device cuda --amp --clips 4096      # GPU

The bare loop is the DESIGN §6 reference: pre-normalised float clips already on the
device, SGD on a fixed permutation, nothing else. ``train_net`` keeps clips as uint8 on
the device and normalises each batch, draws a permutation per epoch, sets the lr per
epoch and syncs once per epoch for the loss. Overhead ratio = bare clips/s ÷ evaluator
clips/s (target ≤ 1.1). Both sides are repeated ``--repeats`` times, interleaved, best
taken. "end-to-end" adds what train_net also does once per call: build the net, move the
set to the device, and the eval-mode pass over the training set for train accuracy.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from vidistill.evaluate import Recipe, TrainingSet, train_net
from vidistill.evaluate.train import build_net, resolve_device
from vidistill.transforms import to_model_input


def bare_loop(
    x: torch.Tensor, y: torch.Tensor, recipe: Recipe, seed: int, device: torch.device, amp: bool
) -> float:
    torch.manual_seed(seed)
    model = build_net(recipe, int(y.max()) + 1, x.shape[2], x.shape[3]).to(device)
    opt = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    perm = torch.randperm(len(x), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(recipe.epochs):
        for s in range(0, len(x), recipe.batch_size):
            idx = perm[s : s + recipe.batch_size]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) * recipe.epochs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--net", default="convnet3d")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    amp = args.amp and device.type == "cuda"
    gen = torch.Generator().manual_seed(0)
    u8 = torch.randint(
        0, 256, (args.clips, args.frames, args.size, args.size, 3), dtype=torch.uint8, generator=gen
    )
    labels = torch.arange(args.clips) % args.classes
    names = [f"c{i}" for i in range(args.classes)]
    recipe = Recipe(
        net=args.net, width=args.width, epochs=args.epochs, batch_size=args.batch_size, amp_bf16=amp
    )
    ts = TrainingSet.from_tensors(u8, labels, names)
    x, y = to_model_input(u8.to(device)), labels.to(device)
    print(
        f"device={device} threads={torch.get_num_threads()} net={args.net}×{args.width:g} "
        f"clips={args.clips} {args.frames}×{args.size}² batch={args.batch_size} "
        f"epochs={args.epochs} amp={amp}"
    )
    bare, ev, e2e = [], [], []
    for r in range(args.repeats):
        bare.append(bare_loop(x, y, recipe, r, device, amp))
        t0 = time.perf_counter()
        _, stats = train_net(ts, recipe, seed=r, device=device)
        e2e.append(args.clips * args.epochs / (time.perf_counter() - t0))
        ev.append(stats.clips_per_s)
        print(
            f"  repeat {r}: bare {bare[-1]:.1f} clips/s | evaluator loop {ev[-1]:.1f} clips/s | "
            f"evaluator end-to-end {e2e[-1]:.1f} clips/s"
        )
    b, e, ee = max(bare), max(ev), max(e2e)
    print(f"bare loop          : {b:.1f} clips/s")
    print(f"evaluator (loop)   : {e:.1f} clips/s   overhead ratio {b / e:.3f} (target ≤ 1.1)")
    print(f"evaluator (e2e)    : {ee:.1f} clips/s   overhead ratio {b / ee:.3f}")


if __name__ == "__main__":
    main()
