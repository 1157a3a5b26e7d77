"""Training checkpoints as ONE safetensors file each — no pickle anywhere.

A checkpoint holds everything an exact resume needs:

* ``model.*`` and ``ema.*`` — the denoiser's and the EMA weights;
* ``optim.<param index>.<key>`` — AdamW's per-parameter tensors (``step``, ``exp_avg``,
  ``exp_avg_sq``); its ``param_groups`` (plain numbers) go into the JSON metadata;
* ``rng.data`` — the state of the training loop's own ``torch.Generator`` (batches,
  noise, timesteps, label dropout all draw from it), ``rng.torch`` and ``rng.cuda.<i>``
  (global states: a ``uint8`` tensor each, so they fit safetensors);
* metadata ``step``, ``config`` and the loss ``history`` (JSON strings; safetensors
  metadata is str → str).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from vidistill.atomic import save_safetensors_atomic, write_json_atomic
from vidistill.integrity import load_safetensors

CKPT_RE = re.compile(r"^checkpoint-(\d{7})\.safetensors$")


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, val in state.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"optim.{pid}.{key}"] = t.detach().cpu()
    return tensors, json.dumps(sd["param_groups"])


def optimizer_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], param_groups: str
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = t
    opt.load_state_dict({"state": state, "param_groups": json.loads(param_groups)})


def rng_tensors(data_gen: torch.Generator) -> dict[str, torch.Tensor]:
    out = {"rng.data": data_gen.get_state(), "rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = s
    return out


def restore_rng(data_gen: torch.Generator, tensors: dict[str, torch.Tensor]) -> None:
    data_gen.set_state(tensors["rng.data"])
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def save_checkpoint(
    folder: str | Path,
    step: int,
    model_sd: dict,
    ema_sd: dict,
    opt: torch.optim.Optimizer,
    data_gen: torch.Generator,
    config: dict[str, Any],
    keep: int = 2,
    history: list | None = None,
) -> Path:
    folder = Path(folder)
    tensors = {f"model.{k}": v.detach().cpu() for k, v in model_sd.items()}
    tensors.update({f"ema.{k}": v.detach().cpu() for k, v in ema_sd.items()})
    opt_t, groups = optimizer_to_tensors(opt)
    tensors.update(opt_t)
    tensors.update(rng_tensors(data_gen))
    path = folder / f"checkpoint-{step:07d}.safetensors"
    meta = {
        "step": str(step),
        "param_groups": groups,
        "config": json.dumps(config),
        "history": json.dumps(history or []),
    }
    save_safetensors_atomic(path, tensors, metadata=meta)
    write_json_atomic(folder / "latest.json", {"step": step, "file": path.name})
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CKPT_RE.match(p.name))


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint; a damaged one is refused, naming it (the run
    keeps ``keep_checkpoints``: deleting the damaged one resumes from the one before)."""
    return load_safetensors(
        path, "`vidistill generate train` (it resumes from the previous checkpoint, if any)"
    )


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
