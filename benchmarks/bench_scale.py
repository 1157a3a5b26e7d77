"""Out-of-core check: peak RSS and time of prepare → embed → tac-dt as the pool grows 1×, 4×, 16×.

    OMP_NUM_THREADS=1 python benchmarks/bench_scale.py [--base 80] [--factors 1 4 16]

Data (stated): ``base × factor`` synthetic h264 videos (the panning-noise clips of
``bench_prepare.py``, 5 classes, 32 frames 160×120, ¾ train) in a ``folder`` dataset. Each
stage is the real CLI command in a fresh subprocess, reaped with ``os.wait4`` so its peak
RSS (``ru_maxrss``, including its reaped workers) and CPU seconds are that stage's alone:

- ``vidistill prepare folder`` (8 frames at 64², 2 decode workers),
- ``vidistill embed --embedder videomae`` with a random ViT (hidden 384, 4 layers, 6
  heads — ViT-S width; a stand-in for VideoMAE-v2, no weights can be downloaded),
- ``vidistill select --method tac-dt --vpc 10``.

What "out of core" means here: prepare writes clips to the memory-mapped store as they
decode, embed streams batches into the safetensors file, select reads one class at a time.
If a stage held the pool, its RSS would grow with the factor; the aim is an RSS about flat
and a time about linear. Wall seconds on a shared 2-core machine measure the other
tenants too, so CPU seconds are printed beside them; "CPU ms per added video" is the
marginal cost over the smallest pool (the start-up — imports, model load — is paid once).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_prepare import make_videos

STAGES = ["prepare", "embed", "tac-dt"]


def run_stage(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one command run to completion in a child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def tiny_vit(path: Path) -> Path:
    import transformers

    cfg = transformers.VideoMAEConfig(
        image_size=64,
        patch_size=16,
        num_frames=8,
        tubelet_size=2,
        hidden_size=384,
        num_hidden_layers=4,
        num_attention_heads=6,
        intermediate_size=1536,
    )
    transformers.VideoMAEModel(cfg).save_pretrained(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=int, default=80, help="videos at factor 1")
    ap.add_argument("--vpc", type=int, default=10, help="tac-dt VPC (≤ the smallest class)")
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--work", type=Path, default=None, help="keep files here (default: a tmp dir)")
    args = ap.parse_args()
    cli = [sys.executable, "-m", "vidistill.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        weights = tiny_vit(work / "vit")
        rows = []
        for factor in args.factors:
            n = args.base * factor
            root = work / f"videos_x{factor}"
            if not root.is_dir():
                make_videos(root, n, frames=32, h=120, w=160)
            store = work / f"store_x{factor}"
            stages = {
                "prepare": cli
                + ["prepare", "folder", "--root", str(root), "--out", str(store)]
                + ["--frames", "8", "--size", "64", "--workers", "2"],
                "embed": cli
                + ["embed", str(store), "--embedder", "videomae", "--weights", str(weights)],
                "tac-dt": cli
                + ["select", str(store), "--method", "tac-dt", "--vpc", str(args.vpc)]
                + ["--out", str(work / f"sel_x{factor}.json")],
            }
            for stage, cmd in stages.items():
                wall, cpu, rss = run_stage(cmd)
                rows.append((stage, factor, n, wall, cpu, rss))
                print(
                    f"{stage:8s} ×{factor:<3d} {n:6d} videos  wall {wall:7.1f} s  "
                    f"CPU {cpu:7.1f} s  peak RSS {rss:6.0f} MB",
                    flush=True,
                )
    print()
    print("| stage | pool | videos | wall s | CPU s | CPU ms per added video | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    first = {st: min((n, cpu) for s2, _, n, _, cpu, _ in rows if s2 == st) for st in STAGES}
    for stage, factor, n, wall, cpu, rss in sorted(rows, key=lambda r: (STAGES.index(r[0]), r[1])):
        n0, cpu0 = first[stage]
        added = f"{1000 * (cpu - cpu0) / (n - n0):.1f}" if n > n0 else "–"
        print(f"| {stage} | ×{factor} | {n} | {wall:.1f} | {cpu:.1f} | {added} | {rss:.0f} |")


if __name__ == "__main__":
    main()
