"""`vidistill generate train`: VAE → cached latents → DDPM training of a class-conditional Latte.

The loop (DiT/Latte recipe, choices stated): uniform timesteps t ∈ [0, 1000), x_t =
√ᾱ_t x_0 + √(1-ᾱ_t) ε, MSE between the prediction and ε (or v with
``prediction_type="v_prediction"``); with ``learn_sigma`` (the official Latte) plus the
improved-DDPM variational term of the variance channels with the mean prediction frozen
(:func:`learned_variance_vlb`, the official ``training_losses`` with ``LossType.MSE``); the
label is replaced by the null label with probability ``label_dropout`` (0.1) for
classifier-free guidance; AdamW (no weight decay, as Latte), linear warm-up then constant
LR, optional gradient clipping, EMA of the weights with decay ``min(ema_decay,
(1+s)/(10+s))`` (the usual warm-up), bf16 autocast on CUDA through ``accelerate`` (fp32 on
CPU). No augmentation: a horizontal flip would turn slide-left into slide-right (the
official UCF101 recipe flips). Latents are the VAE posterior means (the official loop
samples the posterior).

``init``: fine-tune from an official checkpoint or a converted folder (``pretrained.py``):
its architecture and diffusion settings replace the preset's, every weight is loaded, the
label table is mapped by class name (the report is printed and kept in ``config.json``).

Exact resume: every random draw of the loop comes from one ``torch.Generator`` whose
state is checkpointed with the weights, EMA, optimizer and global RNG states
(``checkpoint.py``); the global batch is drawn identically on every process and each
process takes its slice, so the state is the same everywhere.

Run folder::

    config.json            generator config + data facts (written first; checked on resume)
    vae/                   the trained VAE (save_pretrained, safetensors) unless --vae
    latents.safetensors    cached training latents (N, C, T, h, w), labels, store index
    checkpoints/           checkpoint-XXXXXXX.safetensors + latest.json
    model.safetensors      final weights;  ema.safetensors: final EMA weights (sampled from)
    done.json              steps, wall time, loss curve
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vidistill import __version__
from vidistill.atomic import save_safetensors_atomic, write_json_atomic
from vidistill.clipstore import ClipStore
from vidistill.errors import stop_if_not_finite
from vidistill.generate import checkpoint as ckpt
from vidistill.generate.config import GenerateConfig
from vidistill.generate.latte import Latte, build_latte, count_params
from vidistill.generate.pretrained import init_config, init_from_pretrained, load_latte
from vidistill.generate.vae import cache_latents, downsample_factor, load_vae, train_vae

# Config fields that may change between a run and its resume (they do not change the
# trajectory up to the checkpoint): more steps, checkpoint cadence.
_RESUMABLE = {"steps", "checkpoint_every", "keep_checkpoints"}


def make_scheduler(cfg: GenerateConfig):
    """The training DDPM. Its sampling settings are the official respaced diffusion's:
    ``timestep_spacing="linspace"`` visits round(linspace(0, 999, n)) — the official
    ``space_timesteps(1000, "n")`` — and the variance is learned (``learned_range``) with
    ``learn_sigma``, else β_t (the official ``FIXED_LARGE``)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        beta_schedule=cfg.beta_schedule,
        prediction_type=cfg.prediction_type,
        variance_type="learned_range" if cfg.learn_sigma else "fixed_large",
        timestep_spacing="linspace",
        clip_sample=False,  # latents are not in [-1, 1]
    )


def diffusion_loss(
    model: torch.nn.Module,
    scheduler,
    x0: torch.Tensor,
    labels: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    prediction_type: str,
    learn_sigma: bool = False,
) -> torch.Tensor:
    """MSE of the ε (or v) prediction at timesteps ``t`` — the DDPM simple loss — plus, with
    ``learn_sigma``, the variational term of the variance channels (mean frozen)."""
    xt = scheduler.add_noise(x0, noise, t)
    target = noise if prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
    pred = model(xt, t, labels).float()
    c = x0.shape[1]
    loss = F.mse_loss(pred[:, :c], target.float())
    if learn_sigma:
        ac = scheduler.alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1, 1)
        p = pred[:, :c].detach()
        if prediction_type == "epsilon":
            x0_pred = (xt.float() - (1 - ac).sqrt() * p) / ac.sqrt()
        else:
            x0_pred = ac.sqrt() * xt.float() - (1 - ac).sqrt() * p
        vb = learned_variance_vlb(scheduler, x0.float(), xt.float(), t, x0_pred, pred[:, c:])
        loss = loss + vb.mean()
    return loss


def learned_variance_vlb(
    scheduler,
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    x0_pred: torch.Tensor,
    var_values: torch.Tensor,
) -> torch.Tensor:
    """Per-sample L_vlb term in bits (Nichol & Dhariwal; the official ``_vb_terms_bpd``):
    KL(q(x_{t-1}|x_t,x_0) ‖ p(x_{t-1}|x_t)) for t > 0, the discretised-Gaussian decoder NLL
    at t = 0. p's mean comes from ``x0_pred`` (detached: this term trains only the variance),
    its log-variance is ``frac·log β_t + (1−frac)·log β̃_t`` with ``frac = (v + 1) / 2``."""
    betas = scheduler.betas.double().to(x0.device)
    ac = scheduler.alphas_cumprod.double().to(x0.device)
    ac_prev = torch.cat([ac.new_ones(1), ac[:-1]])
    post_var = betas * (1 - ac_prev) / (1 - ac)
    post_logvar = torch.log(torch.cat([post_var[1:2], post_var[1:]]))  # clipped at t = 0
    coef1 = betas * ac_prev.sqrt() / (1 - ac)
    coef2 = (1 - ac_prev) * (1 - betas).sqrt() / (1 - ac)

    def at(table: torch.Tensor) -> torch.Tensor:
        return table[t].float().view(-1, 1, 1, 1, 1)

    true_mean = at(coef1) * x0 + at(coef2) * xt
    true_logvar = at(post_logvar)
    mean = at(coef1) * x0_pred + at(coef2) * xt
    frac = (var_values + 1) / 2
    logvar = frac * at(torch.log(betas)) + (1 - frac) * true_logvar
    kl = 0.5 * (
        -1.0 + logvar - true_logvar + torch.exp(true_logvar - logvar)
        + (true_mean - mean) ** 2 * torch.exp(-logvar)
    )  # fmt: skip
    nll = -_discretized_gaussian_log_likelihood(x0, mean, 0.5 * logvar)
    dims = tuple(range(1, x0.ndim))
    return torch.where(t == 0, nll.mean(dims), kl.mean(dims)) / math.log(2.0)


def _discretized_gaussian_log_likelihood(
    x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor
) -> torch.Tensor:
    """The official (ADM) decoder likelihood of 8-bit data in [-1, 1], bins of width 2/255."""

    def cdf(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))

    inv = torch.exp(-log_scales)
    cdf_plus = cdf(inv * (x - means + 1.0 / 255.0))
    cdf_min = cdf(inv * (x - means - 1.0 / 255.0))
    log_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_plus, torch.where(x > 0.999, log_one_minus_min, log_delta))


def prepare_latents(
    store: ClipStore,
    out: Path,
    cfg: GenerateConfig,
    vae_dir: str | None,
    device: torch.device,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Load or train the VAE, then encode (or reuse) the training latents."""
    source = str(Path(vae_dir).resolve()) if vae_dir else "trained"
    info_path = out / "vae.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    if info is not None and info.get("source") != source:
        (out / "latents.safetensors").unlink(missing_ok=True)  # a different VAE: re-encode
        info = None
    if vae_dir:
        vae = load_vae(vae_dir).to(device)
        info = info or {"source": source, "dir": source}
    elif info is not None and (out / "vae" / "config.json").is_file():
        vae = load_vae(out / "vae").to(device)
    else:
        (out / "latents.safetensors").unlink(missing_ok=True)
        t0 = time.time()
        vae, stats = train_vae(store, cfg, out / "vae", device, progress)
        info = {
            "source": source,
            "dir": str((out / "vae").resolve()),
            **stats,
            "train_seconds": round(time.time() - t0, 1),
        }
    info["downsample"] = downsample_factor(vae)
    write_json_atomic(info_path, info)
    latents, labels = cache_latents(store, vae, out / "latents.safetensors", progress=progress)
    return latents, labels, info


def train(
    store_path: str | Path,
    out: str | Path,
    cfg: GenerateConfig,
    vae_dir: str | None = None,
    init: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    cpu: bool = False,
    on_step: Callable[[int], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or resume) a generator run in ``out``; returns the ``done.json`` summary.

    ``stop_after`` ends this call after that many steps *without* a checkpoint — what a
    kill looks like; the next call resumes from the last checkpoint. ``on_step(step)`` is
    called after every step (and its checkpoint, if one is due): the benchmark times the
    real loop with it. ``init``: an official Latte checkpoint or a converted folder to
    fine-tune from (``log`` receives what was mapped).
    """
    from accelerate import Accelerator

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = ClipStore(store_path)
    use_cuda = torch.cuda.is_available() and not cpu
    acc = Accelerator(mixed_precision="bf16" if use_cuda else "no", cpu=not use_cuda)
    device = acc.device
    t_start = time.time()

    pre, changed = None, []
    if init is not None:
        pre = load_latte(init)
        cfg, changed = init_config(cfg, pre)
        vae_dir = vae_dir or pre.vae_dir
        if not vae_dir:
            raise ValueError(
                f"--init {init}: pass --vae, the VAE whose latents the checkpoint was trained "
                "on (ucf101.pt: stabilityai/sd-vae-ft-ema), or convert it with "
                "`vidistill convert latte --vae`"
            )
    run_cfg = _check_run_config(out, cfg, store, vae_dir, init)
    if acc.is_main_process:
        prepare_latents(store, out, cfg, vae_dir, device, progress)
    acc.wait_for_everyone()
    latents, labels, vae_info = prepare_latents(store, out, cfg, vae_dir, device, progress=False)
    n, c, t_frames, h, _ = latents.shape
    data = {
        "num_classes": store.num_classes,
        "class_names": store.class_names,
        "frames": store.spec.frames,
        "size": store.spec.size,
        "latent_shape": [c, t_frames, h, h],
        "train_clips": int(n),
        "store": str(Path(store_path).resolve()),
        "vae_dir": vae_info["dir"],
        "init": None,
    }
    torch.manual_seed(cfg.seed)
    model = build_latte(cfg, store.num_classes, c, t_frames, h)
    last = ckpt.list_checkpoints(out / "checkpoints")
    if pre is not None and last:  # resuming: the weights come from the checkpoint
        data["init"] = json.loads((out / "config.json").read_text())["data"].get("init")
    elif pre is not None:
        report = init_from_pretrained(model, pre, store.class_names)
        if changed:
            report["message"] += "; from the checkpoint: " + ", ".join(
                f"{k}={getattr(cfg, k)}" for k in changed
            )
        report["config_from_checkpoint"] = changed
        data["init"] = report
        if acc.is_main_process:
            log(report["message"])
        del pre
    run_cfg["data"] = data
    if acc.is_main_process:
        write_json_atomic(out / "config.json", run_cfg)

    scheduler = make_scheduler(cfg)
    trainable = [p for p in model.parameters() if p.requires_grad]  # not the sin-cos tables
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    step, history = 0, []
    if last:
        tensors, meta = ckpt.load_checkpoint(last[-1])
        model.load_state_dict(ckpt.split_prefix(tensors, "model"))
        ema = {k: v.float() for k, v in ckpt.split_prefix(tensors, "ema").items()}
        ckpt.optimizer_from_tensors(opt, tensors, meta["param_groups"])
        ckpt.restore_rng(gen, tensors)
        step = int(meta["step"])
        history = json.loads(meta.get("history", "[]"))
    model, opt = acc.prepare(model, opt)
    ema = {k: v.to(device) for k, v in ema.items()}
    latents, labels = latents.to(device), labels.to(device)
    alphas = scheduler.alphas_cumprod.to(device)
    scheduler.alphas_cumprod = alphas  # add_noise indexes it with device timesteps
    world, rank = acc.num_processes, acc.process_index
    unwrapped: Latte = acc.unwrap_model(model)
    null = unwrapped.null_label

    bar = tqdm(
        total=cfg.steps,
        initial=step,
        desc="latte",
        dynamic_ncols=True,
        disable=not (progress and acc.is_main_process),
    )
    run_steps, running = 0, None
    # Training seconds are cumulative over calls, carried in the history rows [step, loss,
    # seconds], so time spent before a kill counts up to the last checkpoint.
    seconds_base = history[-1][2] if history and len(history[-1]) > 2 else 0.0
    t_loop = time.time()
    model.train()
    while step < cfg.steps:
        if stop_after is not None and run_steps >= stop_after:
            break
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr
        for g in opt.param_groups:
            g["lr"] = lr
        gb = cfg.batch * world  # global batch drawn identically on every process
        idx = torch.randint(n, (gb,), generator=gen)
        drop = torch.rand(gb, generator=gen) < cfg.label_dropout
        noise = torch.randn((gb, c, t_frames, h, h), generator=gen)
        tt = torch.randint(0, cfg.num_train_timesteps, (gb,), generator=gen)
        sl = slice(rank * cfg.batch, (rank + 1) * cfg.batch)
        x0 = latents[idx[sl].to(device)]
        y = labels[idx[sl].to(device)]
        y = torch.where(drop[sl].to(device), torch.full_like(y, null), y)
        with acc.autocast():
            loss = diffusion_loss(
                model,
                scheduler,
                x0,
                y,
                noise[sl].to(device),
                tt[sl].to(device),
                cfg.prediction_type,
                learn_sigma=cfg.learn_sigma,
            )
        lv = float(loss.detach())
        if not math.isfinite(lv):
            last = ckpt.list_checkpoints(out / "checkpoints")
            kept = (
                f"the last good checkpoint, {last[-1]}, is kept (the run resumes from it)"
                if last
                else "no checkpoint was written yet"
            )
            stop_if_not_finite(
                lv,
                f"generate train, step {step + 1}",
                kept,
                "Lower --lr or set grad_clip, and train again (a changed lr starts afresh)",
            )
        acc.backward(loss)
        if cfg.grad_clip:
            acc.clip_grad_norm_(trainable, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        run_steps += 1
        _ema_update(ema, unwrapped, min(cfg.ema_decay, (1 + step) / (10 + step)))
        running = lv if running is None else 0.98 * running + 0.02 * lv
        if step % 10 == 0 or step == 1:
            history.append([step, round(lv, 5), round(seconds_base + time.time() - t_loop, 1)])
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.1e}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            acc.wait_for_everyone()
            if acc.is_main_process:
                _save(out, step, unwrapped, ema, opt, gen, run_cfg, history, cfg.keep_checkpoints)
        if on_step is not None:
            on_step(step)
    bar.close()
    finished = step >= cfg.steps
    summary = {
        "step": step,
        "finished": finished,
        "seconds_this_call": round(time.time() - t_start, 1),
        "params": count_params(unwrapped),
        "processes": world,
        "device": str(device),
        "mixed_precision": acc.mixed_precision,
        "vae": vae_info,
        "loss_history": history,
        # a call that only finalises a finished checkpoint trains no step: last logged loss
        "final_loss_ema": running if running is not None else (history[-1][1] if history else None),
        "train_seconds_total": round(seconds_base + time.time() - t_loop, 1),
    }
    if finished and acc.is_main_process:
        sd = unwrapped.state_dict()
        save_safetensors_atomic(out / "model.safetensors", sd)
        save_safetensors_atomic(out / "ema.safetensors", {k: ema[k] for k in sd})
        write_json_atomic(out / "done.json", summary)
    return summary


@torch.no_grad()
def _ema_update(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float) -> None:
    for name, p in model.named_parameters():
        if p.requires_grad:  # the fixed sin-cos tables stay as they are
            ema[name].lerp_(p.detach().float(), 1.0 - decay)


def _save(out: Path, step: int, model, ema, opt, gen, run_cfg, history, keep) -> None:
    sd = model.state_dict()
    ckpt.save_checkpoint(
        out / "checkpoints",
        step,
        sd,
        {k: ema[k] for k in sd},
        opt,
        gen,
        run_cfg,
        keep=keep,
        history=history,
    )


def _check_run_config(out: Path, cfg: GenerateConfig, store: ClipStore, vae_dir, init) -> dict:
    """A resumed run must use the same config (except steps/cadence) and the same store."""
    run_cfg = {"generator": cfg.to_dict(), "versions": _versions()}
    path = out / "config.json"
    if path.is_file() and ckpt.list_checkpoints(out / "checkpoints"):
        old = json.loads(path.read_text())
        old_g, new_g = old.get("generator", {}), cfg.to_dict()
        diff = sorted(
            k
            for k in set(old_g) | set(new_g)
            if k not in _RESUMABLE and old_g.get(k) != new_g.get(k)
        )
        if diff:
            raise ValueError(
                f"{out} holds a run with a different config ({', '.join(diff)}); "
                f"use a new --out or the same options to resume"
            )
        old_store = old.get("data", {}).get("store")
        if old_store and old_store != str(Path(store.root).resolve()):
            raise ValueError(f"{out} was trained on {old_store}, not {store.root}; use a new --out")
    return run_cfg


def _versions() -> dict[str, str]:
    import diffusers

    return {
        "vidistill": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
    }
