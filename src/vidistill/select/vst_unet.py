"""``vst-unet``: the Video Spatio-Temporal U-Net selector (paper 003, §3.1, Algorithm 1).

One model is trained on all classes (Algorithm 1: for E_s epochs, for each class c, the
class's whole pool V̂_c of VAE latents is ONE input), then each class keeps the VPC clips
with the highest probability (line 13, ``argsort(p_c)[:VPC]``). On one screen:

    x: (N_c, C, T, h, w)   latents of one class (``latent`` embedder rows, un-flattened)
    U-Net, 2 levels, Conv3d blocks over each clip's (T, h, w) → f = mean over (T, h, w)
    logits = Linear(F → classes)(f)                                    class evidence (CE)
    g = Linear([f, self-attention across ALL N_c clips of f])          class context
    s_i = log-odds of p_c(clip i) + g_i,  p_i = σ(s_i)                 selection probability
    L = CE(logits, c) − mean_e (R(S_e) − b_c) · log P(S_e)             (REINFORCE)
    S_e ~ Gumbel-top-VPC(s)  (e = 1..episodes),  P = Plackett–Luce probability of S_e
    R(S) = λ_d · (1 − L_div(S)) + λ_r · exp(−mean_t min_{i∈S} d(x_t, x_i))
    select: top-VPC clips by p (= by s)

Choices where the paper is vague (each written down because the paper is silent):

* **What p is.** The model "outputs both the probabilities p_c and the feature
  embeddings f_c from its penultimate layer", is trained with a cross-entropy
  "class-dependent objective", and Table 6 has a CE-only VST-UNet that still selects.
  We read p as DR-DSN's per-item *selection* probability whose logit starts from the
  clip's own-class evidence: p_i = σ(log-odds of the class posterior + g_i). With g = 0
  (its init, and what CE-only training leaves) ranking by p is ranking by the class
  posterior — the CE-only row is a confidence ranker, as Table 6 needs.
* **How L_div and L_rep reach the selection.** The paper calls them "reward-based losses,
  inspired by reinforcement learning" after DR-DSN (Zhou et al., AAAI'18), where the
  diversity and representativeness *rewards* of a sampled selection reach the selection
  probabilities by a policy gradient. A hard top-k has no gradient, so acting on the
  features alone (our previous reading) could never change which clips are picked. We
  sample ``episodes`` (4) sets S_e of VPC clips by Gumbel-top-k on the own-class
  log-odds s (exactly Plackett–Luce sampling ∝ exp(s) without replacement), and minimise
  ``−(R − b)·log P(S_e)`` with the exact Plackett–Luce log-probability of the sampled
  order; b_c is a per-class moving average of R (momentum 0.9, DR-DSN's baseline). The
  CE term keeps p a class posterior; the reward term moves probability mass, within
  the class, toward sets that are diverse and representative.
* **Why log-odds, not log p.** CE drives every p_c to 1, where log p_c saturates at 0
  and its gradient (1 − p_c) vanishes: measured, the policy then cannot move (all
  scores −3e-5 after 300 epochs, the rewards ignored). The log-odds rank clips exactly as
  p does (Algorithm 1's top-VPC by p is unchanged) but stay unbounded.
* **Rewards are computed on the inputs, detached** (DR-DSN computes them on its fixed
  frame features): rewards on the learned features could be gamed by shrinking them.
  Per class, the flattened inputs are centred on the class mean (so a shared offset
  does not make every cosine ≈ 1) and scaled so the mean pairwise MSE is 1 (so
  ``exp(−d)`` sits in its sensitive range whatever the embedder's scale; the ranking
  of sets is unchanged). L_div = Eq. 1, mean pairwise cosine similarity within S;
  d = MSE (the paper's "mean square error"); R_rep = Eq. 2 as printed, which is
  DR-DSN's representativeness reward (a reward, so no sign flip is needed).
* **Class-wide context, independent of clip order.** The paper treats "all videos in a
  class as a single structured input". A pool has no order, so mixing along an axis of
  clips (our earlier kernel-3 Conv1d, where a clip saw about six others) is wrong: the
  clip vectors pass one multi-head self-attention across ALL clips of the class (no
  positions), so the model is permutation-equivariant. The context feeds the selection
  term g only, not the class head: every training input is one class, so a class head
  that saw a class-wide summary could read the label off the summary and stop looking at
  the clip (measured: with the context in the U-Net blocks, CE-only picked clips that
  carry the other class's pattern).
* **λ** from §4.1: VPC 1 → λ_r = 0.1, λ_d = 0; VPC ≥ 5 → λ_r = 1, λ_d = 0.1 (VPC 2–4,
  not in the paper, use the VPC ≥ 5 setting). ``losses`` reproduces Table 6:
  ``ce`` (λ_d = λ_r = 0: a CE-trained confidence ranker), ``ce+div``, ``ce+rep``, ``all``
  (default); ``lambda_div`` / ``lambda_rep`` override the values.
* **Not stated, chosen**: E_s = ``epochs`` 100 (one step per class per epoch), Adam lr
  1e-3, base width 16, GroupNorm + SiLU, 4 attention heads; ``baseline_kind`` "greedy"
  (default: b = R of the current top-VPC set, the self-critical baseline of Rennie et al.
  2017 — the paper's "subset with the highest probabilities chosen in each epoch" used in
  the loss) or "average" (DR-DSN's moving average).
* **``class_batch``** (G, default 1 = Algorithm 1: one Adam step per class): G > 1 takes
  one step per group of G consecutive classes on the mean of their losses, and draws each
  class's Gumbel noise from its own generator (seeded by (seed, label)), so a class's
  draws do not depend on where it is fitted. Under torchrun (every rank in
  ``vidistill select``) the classes of a group are shared out across the ranks and their
  gradients all-reduced: the one-process G-group fit, up to the float order of the
  gradient sum. G = 1 is sequential by nature: every rank then fits the same model.
* **Input**: rows of the ``latent`` embedder (shape from its ``latent_shape``, or the
  ``latent_shape`` option). Any other (n, D) embedding is treated as latents of shape
  (D, 1, 1, 1), so the method also runs on VideoMAE/classifier vectors (the 3D convs
  then see one voxel); say which in the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from vidistill import distributed
from vidistill.errors import stop_if_not_finite
from vidistill.select.base import ClassData, selector

LOSSES = ("ce", "ce+div", "ce+rep", "all")


class Block3D(nn.Module):
    """Conv3d over one clip's (T, h, w) + GroupNorm + SiLU; the clips are the batch."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv3d = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, cout), cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, T, h, w)
        return F.silu(self.norm(self.conv3d(x)))


class VSTUNet(nn.Module):
    """Per-clip spatio-temporal U-Net → clip vectors f; class head on f (CE); self-attention
    across the class's clips → a selection term g added to the own-class log-odds."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, heads: int = 4):
        super().__init__()
        self.enc1 = Block3D(in_channels, width)
        self.enc2 = Block3D(width, 2 * width)
        self.dec1 = Block3D(3 * width, 2 * width)
        self.head = nn.Linear(2 * width, num_classes)
        self.attn_norm = nn.LayerNorm(2 * width)
        self.attn = nn.MultiheadAttention(2 * width, heads, batch_first=True)
        self.select = nn.Linear(4 * width, 1)
        nn.init.zeros_(self.select.weight)  # g = 0 at init: CE-only ranks by class evidence
        nn.init.zeros_(self.select.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(N, C, T, h, w)`` → (features ``(N, F)``, logits ``(N, classes)``, g ``(N,)``)."""
        e1 = self.enc1(x)
        pool = (1, 2, 2) if x.shape[-1] >= 2 else (1, 1, 1)
        e2 = self.enc2(F.avg_pool3d(e1, pool))
        up = F.interpolate(e2, size=e1.shape[2:], mode="nearest")
        f = self.dec1(torch.cat([e1, up], dim=1)).mean(dim=(2, 3, 4))
        h = self.attn_norm(f)[None]  # the class's clips as one unordered sequence
        ctx = self.attn(h, h, h, need_weights=False)[0][0]
        return f, self.head(f), self.select(torch.cat([f, ctx], dim=1))[:, 0]

    def selection_score(self, x: torch.Tensor, label: int) -> torch.Tensor:
        """s = own-class log-odds + g: the logit of p, each clip's selection probability."""
        _, logits, g = self(x)
        return own_class_log_odds(logits, label) + g


def diversity_loss(f_sel: torch.Tensor) -> torch.Tensor:
    """Eq. 1: mean pairwise cosine similarity among the selected clips (0 for one clip)."""
    k = len(f_sel)
    if k < 2:
        return f_sel.sum() * 0
    z = F.normalize(f_sel, dim=1)
    sim = z @ z.T
    return (sim.sum() - sim.diagonal().sum()) / (k * (k - 1))


def representativeness_reward(d_to_sel: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``exp(−mean_t min_{i∈S} d(x_t, x_i))`` from the distances ``(..., N, k)``."""
    return torch.exp(-d_to_sel.min(dim=-1).values.mean(dim=-1))


class ClassRewards:
    """The detached rewards of selections within one class, from its inputs ``(N, D)``."""

    def __init__(self, x: torch.Tensor):
        x = x.reshape(len(x), -1).double()
        x = x - x.mean(0)
        d = torch.cdist(x, x).square() / x.shape[1]  # pairwise MSE
        n = len(x)
        scale = d.sum() / max(1, n * (n - 1))
        self.d = (d / scale if scale > 0 else d).float()
        z = F.normalize(x, dim=1)
        self.cos = (z @ z.T).float()

    def __call__(self, sel: torch.Tensor, lambda_div: float, lambda_rep: float) -> torch.Tensor:
        """Rewards of ``sel`` ``(episodes, k)`` → ``(episodes,)``."""
        k = sel.shape[1]
        reward = torch.zeros(len(sel))
        if lambda_div and k > 1:
            sim = self.cos[sel[:, :, None], sel[:, None, :]]  # (E, k, k)
            l_div = (sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(1)) / (k * (k - 1))
            reward += lambda_div * (1 - l_div)
        if lambda_rep:
            reward += lambda_rep * representativeness_reward(self.d[:, sel].permute(1, 0, 2))
        return reward


def gumbel_top_k(scores: torch.Tensor, k: int, episodes: int, gen: torch.Generator) -> torch.Tensor:
    """``episodes`` ordered samples of k distinct positions ∝ softmax(scores), no replacement."""
    u = torch.rand(episodes, len(scores), generator=gen).clamp_(1e-12, 1 - 1e-12)
    return (scores[None] - torch.log(-torch.log(u))).topk(k, dim=1).indices


def plackett_luce_log_prob(scores: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
    """``log P(sel)`` ``(episodes,)`` of ordered draws ``sel`` ``(episodes, k)`` without
    replacement from softmax(scores): Σ_j [s_{i_j} − logsumexp(s over the not-yet-drawn)]."""
    s = scores[None].expand(len(sel), -1)
    chosen = s.gather(1, sel)  # (E, k)
    # logsumexp over the remaining after each draw: all, minus the already drawn
    total = torch.logsumexp(s, dim=1, keepdim=True)
    drawn = torch.logcumsumexp(chosen, dim=1)
    before = torch.cat([torch.full_like(drawn[:, :1], float("-inf")), drawn[:, :-1]], dim=1)
    rest = total + torch.log1p(-torch.exp(before - total).clamp(max=1 - 1e-7))
    return (chosen - rest).sum(1)


def own_class_log_odds(logits: torch.Tensor, label: int) -> torch.Tensor:
    """``log p_c − log(1 − p_c)`` per clip: monotone in p_c (so top-k by it = top-k by p) but
    unbounded, with gradient 1 in the own logit where ``log p_c`` saturates at 0."""
    others = torch.cat([logits[:, :label], logits[:, label + 1 :]], dim=1)
    return logits[:, label] - torch.logsumexp(others, dim=1)


def _latents(data: ClassData, shape: tuple[int, ...]) -> torch.Tensor:
    rows = np.concatenate([b for _, b in data.chunks()])  # check_vpc guarantees n >= 1
    return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)).reshape(-1, *shape)


def _shape(data: ClassData, latent_shape: Any) -> tuple[int, int, int, int]:
    shape = latent_shape or data.details.get("latent_shape") or (data.dim, 1, 1, 1)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or int(np.prod(shape)) != data.dim:
        raise ValueError(
            f"vst-unet: latent_shape {list(shape)} does not match embedding dim {data.dim} "
            f"(need C·T·h·w = D; embed with --embedder latent, which records it)"
        )
    return shape  # type: ignore[return-value]


def lambdas(
    vpc: int, losses: str = "all", lambda_div: float | None = None, lambda_rep: float | None = None
) -> tuple[float, float]:
    """(λ_d, λ_r): §4.1's values per VPC, overridden, then switched off per Table 6's row."""
    if losses not in LOSSES:
        raise ValueError(f"vst-unet: losses must be one of {', '.join(LOSSES)}, got {losses!r}")
    paper_div, paper_rep = (0.0, 0.1) if vpc == 1 else (0.1, 1.0)  # §4.1
    div = paper_div if lambda_div is None else float(lambda_div)
    rep = paper_rep if lambda_rep is None else float(lambda_rep)
    return (
        div if losses in ("ce+div", "all") else 0.0,
        rep if losses in ("ce+rep", "all") else 0.0,
    )


class _Policy:
    """One class's part of the fit: its inputs, rewards, Gumbel generator and baseline."""

    def __init__(
        self, data: ClassData, shape: tuple[int, ...], gen: torch.Generator, rewards: bool
    ):
        self.label = data.label
        self.x = _latents(data, shape)
        self.rewards = ClassRewards(self.x) if rewards else None
        self.gen = gen
        self.baseline: float | None = None  # DR-DSN's moving average of R

    def loss(
        self, model: VSTUNet, vpc: int, ld: float, lrep: float, episodes: int, baseline_kind: str
    ) -> tuple[torch.Tensor, float]:
        """L = CE − mean_e (R(S_e) − b)·log P(S_e), and R of the greedy top-VPC set."""
        _, logits, g = model(self.x)
        loss = F.cross_entropy(logits, torch.full((len(self.x),), self.label, dtype=torch.long))
        if self.rewards is None or vpc >= len(self.x):
            return loss, 0.0
        score = own_class_log_odds(logits, self.label) + g
        sel = gumbel_top_k(score.detach(), vpc, episodes, self.gen)
        r = self.rewards(sel, ld, lrep)
        greedy = float(self.rewards(score.detach().topk(vpc).indices[None], ld, lrep)[0])
        average = self.baseline if self.baseline is not None else float(r.mean())
        b = greedy if baseline_kind == "greedy" else average
        loss = loss - ((r - b) * plackett_luce_log_prob(score, sel)).mean()
        self.baseline = 0.9 * average + 0.1 * float(r.mean())
        return loss, greedy


def _all_reduce_grads(model: nn.Module) -> None:
    """Sum every parameter's gradient over the ranks (one flat tensor, one collective)."""
    params = list(model.parameters())
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
    )
    distributed.all_reduce_sum(flat, "vst-unet gradients")
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad = g.view_as(p).clone()


def fit_vst_unet(
    classes: list[ClassData],
    vpc: int,
    seed: int = 0,
    epochs: int = 100,
    lr: float = 1e-3,
    width: int = 16,
    losses: str = "all",
    lambda_div: float | None = None,
    lambda_rep: float | None = None,
    latent_shape: Any = None,
    episodes: int = 4,
    baseline_kind: str = "greedy",
    class_batch: int = 1,
) -> dict[str, Any]:
    """Algorithm 1, lines 1–10: one VST-UNet trained for ``epochs``, one Adam step per
    class (``class_batch`` 1) or per group of ``class_batch`` classes, a group's classes
    shared out across the ranks working together (:func:`vidistill.distributed.current`)."""
    shape = _shape(classes[0], latent_shape)
    ld, lrep = lambdas(vpc, losses, lambda_div, lambda_rep)
    if baseline_kind not in ("greedy", "average"):
        raise ValueError(
            f"vst-unet: baseline_kind must be greedy or average, not {baseline_kind!r}"
        )
    group = int(class_batch)
    if group < 1:
        raise ValueError(f"vst-unet: class_batch must be >= 1, got {class_batch}")
    # one step per class cannot be shared: then every rank fits the same model alone
    ctx = distributed.current() if group > 1 else distributed.Context()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # at least 2 outputs: fitted on label 0 alone (run_selector on one class), a lone logit
    # has no competitor, its log-odds are +inf and the policy-gradient term NaN
    model = VSTUNet(shape[0], max(2, max(d.label for d in classes) + 1), width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # position j of every group is fitted by rank j % world, the same rank every epoch
    policies = {
        c: _Policy(
            data,
            shape,
            gen if group == 1 else torch.Generator().manual_seed(_class_seed(seed, data.label)),
            bool(ld or lrep),
        )
        for c, data in enumerate(classes)
        if (c % group) % ctx.world == ctx.rank
    }
    history: list[float] = []
    reward_history: list[float] = []
    bar = tqdm(range(epochs), desc="vst-unet fit", unit="epoch", disable=None, leave=False)
    for epoch in bar:
        stats: dict[int, tuple[float, float]] = {}  # class → (its loss, greedy reward)
        for first in range(0, len(classes), group):
            opt.zero_grad()
            for c in range(first, min(first + group, len(classes))):
                if c in policies:
                    loss, greedy = policies[c].loss(model, vpc, ld, lrep, episodes, baseline_kind)
                    stop_if_not_finite(
                        float(loss.detach()),
                        f"vst-unet fit, epoch {epoch + 1}, class {classes[c].name!r}",
                        "nothing was written (the selection is made only after the fit)",
                        "Lower -o lr=... or change -o seed / the embeddings and select again",
                    )
                    (loss if group == 1 else loss / group).backward()
                    stats[c] = (float(loss.detach()), greedy)
            if ctx.distributed:
                _all_reduce_grads(model)
            opt.step()
        if ctx.distributed:  # every rank: every class's numbers, summed in class order below
            for part in distributed.all_gather(stats, "vst-unet epoch losses"):
                stats.update(part)
        total, total_r = 0.0, 0.0
        for c in range(len(classes)):
            total += stats[c][0]
            total_r += stats[c][1]
        history.append(total / len(classes))
        reward_history.append(total_r / len(classes))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    return {
        "model": model.eval(),
        "shape": shape,
        "seed": seed,
        "loss": history,
        "reward": reward_history,
        "lambdas": {"div": ld, "rep": lrep},
    }


def _class_seed(seed: int, label: int) -> int:
    """The Gumbel generator's seed of one class (``class_batch`` > 1)."""
    return int(np.random.SeedSequence([seed, label]).generate_state(1, np.uint32)[0])


@selector("vst-unet", fit=fit_vst_unet)
def vst_unet(
    data: ClassData, vpc: int, seed: int = 0, fitted: dict[str, Any] | None = None, **_: Any
) -> np.ndarray:
    """Algorithm 1, lines 11–13: the top-VPC clips by p of the class (ties: lower index)."""
    assert fitted is not None  # run_selector fits on this class alone when not given
    with torch.no_grad():
        score = (
            fitted["model"]
            .double()
            .selection_score(_latents(data, fitted["shape"]).double(), data.label)
        )
    return np.argsort(-score.numpy(), kind="stable")[:vpc]
