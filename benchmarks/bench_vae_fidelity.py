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
import torch.nn.functional as F

from vidistill.clipstore import ClipStore
from vidistill.generate.vae import frames_to_pixels, load_vae


@torch.no_grad()
def psnr_db(vae, clips_u8: torch.Tensor, batch: int = 64) -> float:
    frames = frames_to_pixels(clips_u8)
    mse = (
        torch.stack(
            [
                F.mse_loss(
                    vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1),
                    x,
                    reduction="sum",
                )
                for x in frames.split(batch)
            ]
        ).sum()
        / frames.numel()
    )
    return float(10 * torch.log10(4.0 / mse))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vae")
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--per-class", type=int, default=8)
    args = ap.parse_args()
    vae = load_vae(args.vae)
    for path in args.stores:
        store = ClipStore(path)
        per_class = []
        for c in range(store.num_classes):
            idx = store.indices("train", c)[: args.per_class]
            per_class.append(psnr_db(vae, torch.from_numpy(store.clips(idx))))
        idx = [
            i for c in range(store.num_classes) for i in store.indices("train", c)[: args.per_class]
        ]
        overall = psnr_db(vae, torch.from_numpy(store.clips(idx)))
        print(f"{path}: PSNR {overall:.1f} dB over {len(idx)} train clips "
              f"({args.per_class} per class); per class: "
              + ", ".join(f"{n} {p:.1f}" for n, p in zip(store.class_names, per_class, strict=True)))  # fmt: skip


if __name__ == "__main__":
    main()
