"""The generator shipped inside the package, and the command that packs one.

Why: the demo and `vidistill run toy-quick` sample a pool without first training a
generator (an hour or more on a laptop CPU). A finished `generate train` run is packed
into ``vidistill/resources/<name>_generator/``: the EMA denoiser, its config, the VAE, and
the training log — a few MB — plus ``hashes.json`` (SHA-256 of every file), which
:func:`shipped_generator` checks before handing the folder out, so a damaged or
half-copied install is named instead of sampled from.

    vidistill generate ship RUNS/toy-gen --name toy   # → src/vidistill/resources/toy_generator/
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vidistill.atomic import write_json_atomic
from vidistill.integrity import file_sha256, read_json

# what sampling reads (`load_generator`, `load_vae`) and what documents the run
FILES = ("config.json", "ema.safetensors", "vae.json", "done.json")
VAE_DIR = "vae"
HASHES = "hashes.json"


def resource_dir(name: str) -> Path:
    return Path(str(importlib.resources.files("vidistill") / "resources" / f"{name}_generator"))


def _hashes(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != HASHES)
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in files}


def ship_run(run_dir: str | Path, out: str | Path) -> dict[str, str]:
    """Pack the finished run ``run_dir`` into ``out`` (replaced whole, atomically); returns
    the file hashes. The config's machine paths become relative (``vae_dir: vae``) or
    provenance only (``store``)."""
    run_dir, out = Path(run_dir), Path(out)
    missing = [f for f in (*FILES, VAE_DIR) if not (run_dir / f).exists()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir} is not a finished `vidistill generate train` run with its own VAE "
            f"(missing: {', '.join(missing)}); finish it by re-running train with the same --out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name in FILES[1:]:
            shutil.copy2(run_dir / name, tmp / name)
        shutil.copytree(run_dir / VAE_DIR, tmp / VAE_DIR)
        cfg: dict[str, Any] = json.loads((run_dir / "config.json").read_text())
        data = cfg["data"]
        data["vae_dir"] = VAE_DIR  # relative to the folder (load: sample.py)
        data["store"] = f"shipped from {Path(data.get('store') or '?').name}"
        write_json_atomic(tmp / "config.json", cfg)
        hashes = _hashes(tmp)
        write_json_atomic(tmp / HASHES, hashes)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return hashes


def verify(root: str | Path) -> None:
    """Every file listed in ``hashes.json`` is there with its hash (else one clear error)."""
    root = Path(root)
    listed = read_json(root / HASHES, "a reinstall of vidistill")
    bad = [f for f, h in listed.items() if not (root / f).is_file() or file_sha256(root / f) != h]
    if bad:
        raise ValueError(
            f"{root}: the shipped generator is damaged ({', '.join(bad)} missing or changed); "
            "reinstall vidistill"
        )


def shipped_generator(name: str = "toy") -> Path:
    """The checked folder of the generator shipped for dataset ``name``."""
    root = resource_dir(name)
    if not (root / HASHES).is_file():
        raise FileNotFoundError(
            f"no {name!r} generator is shipped in this install ({root}); train one with "
            f"`vidistill generate train` (docs/generation.md) and give its folder as "
            "generate.weights"
        )
    verify(root)
    return root
