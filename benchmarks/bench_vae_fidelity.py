"""How well a generator's VAE reconstructs a store's real clips — one of the things that
bounds a generated pool's quality (docs/generation.md: the toy generators and their pools).

    python benchmarks/bench_vae_fidelity.py VAE_DIR STORE [STORE ...] [--per-class 8]

VAE_DIR: an ``AutoencoderKL`` folder (``src/vidistill/resources/toy_generator/vae``, a
``generate train`` run's ``vae/``, the SD VAE). Prints, per store, the reconstruction PSNR
on [-1, 1] pixels (the measure ``generate train`` records as ``vae_psnr_db``, there on the
first 64 training frames) over the first ``--per-class`` training clips of every class,
and per class. Posterior mean, as the latents the denoiser is trained on.
"""

from __future__ import annotations

import argparse

import torch

from vidistill.clipstore import ClipStore
from vidistill.generate.vae import frames_to_pixels, load_vae, psnr_db, reconstruction_error


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vae")
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--per-class", type=int, default=8)
    args = ap.parse_args()
    vae = load_vae(args.vae)
    for path in args.stores:
        store = ClipStore(path)
        # one pass: per-class errors, summed for the whole set
        errors, clips = [], 0
        for c in range(store.num_classes):
            idx = store.indices("train", c)[: args.per_class]
            frames = frames_to_pixels(torch.from_numpy(store.clips(idx)))
            errors.append(reconstruction_error(vae, frames))
            clips += len(idx)
        overall = psnr_db(sum(e for e, _ in errors), sum(n for _, n in errors))
        print(f"{path}: PSNR {overall:.1f} dB over {clips} train clips "
              f"({args.per_class} per class); per class: "
              + ", ".join(f"{n} {psnr_db(*e):.1f}" for n, e in zip(store.class_names, errors, strict=True)))  # fmt: skip


if __name__ == "__main__":
    main()
