"""A learned optimizer: a coordinate-wise LSTM meta-trained on random quadratics.

Chapter 2, lesson 6 ("A learned optimizer"). After Andrychowicz et al., "Learning to
learn by gradient descent by gradient descent", NeurIPS 2016 (arXiv:1606.04474): a small
LSTM, shared across the coordinates of the problem, reads each coordinate's gradient and
writes that coordinate's update; its weights are trained by backpropagation through the
unrolled (truncated) optimization of random problems. This is *meta-optimization*: the
task we train for is itself optimization.

The problems are quadratics ``f(x) = 0.5 * ||W x - y||^2`` with ``W`` square
(``dim x dim``), ``x0 = 0`` and minimum value 0 (``W`` is full rank). ``W = U diag(s) V^T``
with ``U, V`` random rotations, largest singular value 1 and smallest ``1 / kappa``, where
the condition number ``kappa`` of ``W`` is drawn log-uniformly from ``cond``; the Hessian
``W^T W`` has condition number ``kappa**2``. ``y`` is standard normal.

What is here:

* :class:`Quadratics`, :func:`sample_quadratics`, :func:`quadratic_loss`,
  :func:`quadratic_grad`: the task, for any leading batch shape.
* :func:`run_sgd`, :func:`run_adam`: the hand-written optimizers, vectorized over a grid
  of learning rates; :func:`grid_search` picks the best one on a tuning set.
* :class:`LSTMOptimizer`: E coordinate-wise LSTM optimizers (one per meta-training seed)
  as slices of a leading dimension, written with batched matrix products.
* :func:`unroll` (run it on a batch of problems), :func:`meta_train` (truncated
  backpropagation through the unrolled optimization, all members as one program).
* :func:`log_final_loss`: the score, ``log10`` of the loss after the last step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .core import check_device, check_positive_int, make_generator, progress

__all__ = ["Quadratics", "sample_quadratics", "quadratic_loss", "quadratic_grad", "run_sgd",
           "run_adam", "grid_search", "log_final_loss", "LSTMOptimizer", "unroll", "meta_train",
           "LOSS_FLOOR"]

LOSS_FLOOR = 1e-12   # losses are floored here before taking logs (float32 round-off)


@dataclass
class Quadratics:
    """A batch of quadratics ``0.5 * ||W x - y||^2``: ``W`` [..., dim, dim], ``y`` [..., dim]."""
    W: torch.Tensor
    y: torch.Tensor

    @property
    def dim(self) -> int:
        return self.W.shape[-1]

    @property
    def shape(self) -> torch.Size:
        return self.y.shape[:-1]


def _check_cond(cond) -> tuple[float, float]:
    try:
        lo, hi = (float(c) for c in cond)
    except (TypeError, ValueError):
        raise ValueError(f"cond must be a pair (low, high), got {cond!r}") from None
    if not (1.0 <= lo <= hi) or not math.isfinite(hi):
        raise ValueError(f"cond must satisfy 1 <= low <= high < inf, got {cond!r}")
    return lo, hi


def _random_rotation(shape, dim, gen):
    q, r = torch.linalg.qr(torch.randn(*shape, dim, dim, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def sample_quadratics(shape, dim: int, cond=(1.0, 10.0), *, scale=(1.0, 1.0), seed: int,
                      device=None) -> Quadratics:
    """Random quadratics, drawn on the CPU from ``seed`` and moved to ``device``.

    ``shape``: int or tuple, the batch shape (e.g. ``(E, B)``). ``dim``: the number of
    coordinates. ``cond``: (low, high), the range of the condition number of ``W`` (drawn
    log-uniformly per problem; the Hessian's is its square). ``scale``: (low, high), the
    range of ``W``'s largest singular value (log-uniform per problem; the other singular
    values are scaled with it). float32.
    Raises ValueError for a bad shape, dim, cond, seed or device.
    """
    device = check_device("device", device)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not shape or any((not isinstance(s, int)) or s < 1 for s in shape):
        raise ValueError(f"shape must be a positive int or a tuple of them, got {shape!r}")
    dim = check_positive_int("dim", dim)
    lo, hi = _check_cond(cond)
    try:
        s_lo, s_hi = (float(c) for c in scale)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a pair (low, high), got {scale!r}") from None
    if not (0 < s_lo <= s_hi < math.inf):
        raise ValueError(f"scale must satisfy 0 < low <= high < inf, got {scale!r}")
    if not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    gen = make_generator(seed)
    kappa = torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * torch.rand(*shape, 1, generator=gen,
                                                                              dtype=torch.float64))
    if dim == 1:
        s = torch.ones(*shape, 1, dtype=torch.float64) / kappa   # 1-D: the one singular value is 1/kappa
    else:
        inner = torch.rand(*shape, dim - 2, generator=gen, dtype=torch.float64)
        frac = torch.cat([torch.zeros(*shape, 1, dtype=torch.float64), inner,
                          torch.ones(*shape, 1, dtype=torch.float64)], -1)
        s = torch.exp(-frac * torch.log(kappa))   # from 1 down to 1/kappa, log-uniform in between
    U, V = _random_rotation(shape, dim, gen), _random_rotation(shape, dim, gen)
    top = torch.exp(math.log(s_lo) + (math.log(s_hi) - math.log(s_lo)) * torch.rand(*shape, 1, generator=gen,
                                                                                dtype=torch.float64))
    W = (U * (top * s).unsqueeze(-2)) @ V.transpose(-1, -2)
    y = torch.randn(*shape, dim, generator=gen, dtype=torch.float64)
    return Quadratics(W.float().to(device), y.float().to(device))


def _check_problems(problems):
    if not isinstance(problems, Quadratics):
        raise ValueError(f"problems must be a Quadratics, got {type(problems).__name__}")


def quadratic_loss(problems: Quadratics, x: torch.Tensor) -> torch.Tensor:
    """``0.5 * ||W x - y||^2`` for every problem: x [..., *problems.shape, dim] -> [..., *problems.shape]."""
    _check_problems(problems)
    if not torch.is_tensor(x) or x.shape[-1] != problems.dim:
        raise ValueError(f"x must be a tensor whose last axis has size dim={problems.dim}")
    r = (problems.W @ x.unsqueeze(-1)).squeeze(-1) - problems.y
    return 0.5 * (r * r).sum(-1)


def quadratic_grad(problems: Quadratics, x: torch.Tensor) -> torch.Tensor:
    """The gradient ``W^T (W x - y)``, same shape as ``x``."""
    _check_problems(problems)
    if not torch.is_tensor(x) or x.shape[-1] != problems.dim:
        raise ValueError(f"x must be a tensor whose last axis has size dim={problems.dim}")
    r = (problems.W @ x.unsqueeze(-1)).squeeze(-1) - problems.y
    return (problems.W.transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1)


def _check_lrs(lrs) -> torch.Tensor:
    lrs = torch.as_tensor(lrs, dtype=torch.float32).flatten()
    if lrs.numel() == 0 or not torch.isfinite(lrs).all() or (lrs <= 0).any():
        raise ValueError("lrs must be a non-empty list of positive, finite learning rates")
    return lrs


def run_sgd(problems: Quadratics, lrs, steps: int, *, momentum: float = 0.0) -> torch.Tensor:
    """Gradient descent (optionally heavy-ball momentum) from ``x0 = 0``, one run per learning rate.

    Returns the losses [L, steps + 1, *problems.shape] (index 0 is the start).
    Raises ValueError for bad problems, lrs, steps or momentum.
    """
    _check_problems(problems)
    lrs = _check_lrs(lrs).to(problems.W.device)
    steps = check_positive_int("steps", steps)
    if not (0.0 <= float(momentum) < 1.0):
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    lr = lrs.view(-1, *([1] * (len(problems.shape) + 1)))
    x = torch.zeros(len(lrs), *problems.shape, problems.dim, device=problems.W.device)
    v = torch.zeros_like(x)
    losses = [quadratic_loss(problems, x)]
    for _ in range(steps):
        v = momentum * v + quadratic_grad(problems, x)
        x = x - lr * v
        losses.append(quadratic_loss(problems, x))
    return torch.stack(losses, 1)


def run_adam(problems: Quadratics, lrs, steps: int, *, betas=(0.9, 0.999), eps: float = 1e-8) -> torch.Tensor:
    """Adam (Kingma & Ba 2015, with bias correction) from ``x0 = 0``, one run per learning rate.

    Returns the losses [L, steps + 1, *problems.shape]. Raises ValueError for bad arguments.
    """
    _check_problems(problems)
    lrs = _check_lrs(lrs).to(problems.W.device)
    steps = check_positive_int("steps", steps)
    b1, b2 = (float(b) for b in betas)
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    lr = lrs.view(-1, *([1] * (len(problems.shape) + 1)))
    x = torch.zeros(len(lrs), *problems.shape, problems.dim, device=problems.W.device)
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    losses = [quadratic_loss(problems, x)]
    for t in range(1, steps + 1):
        g = quadratic_grad(problems, x)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
        losses.append(quadratic_loss(problems, x))
    return torch.stack(losses, 1)


def log_final_loss(losses: torch.Tensor) -> torch.Tensor:
    """``log10`` of the loss after the last step, floored at ``LOSS_FLOOR``; non-finite
    losses (a diverged run) count as ``+inf``. losses [..., steps + 1, *batch] -> [..., *batch]
    when called on :func:`run_sgd`'s output, so pass the time axis as dim 1 (or use [..., -1])."""
    if not torch.is_tensor(losses) or losses.dim() < 2:
        raise ValueError("losses must be a tensor with a time axis at dim 1")
    last = losses[:, -1]
    out = torch.log10(last.clamp_min(LOSS_FLOOR))
    return torch.where(torch.isfinite(last), out, torch.full_like(out, math.inf))


def grid_search(losses: torch.Tensor, lrs) -> tuple[float, torch.Tensor]:
    """The learning rate whose mean ``log10`` final loss over the problems is lowest.

    ``losses`` [L, steps + 1, *batch] from :func:`run_sgd` or :func:`run_adam` with ``lrs``.
    Returns (best lr, mean log10 final loss per lr [L]). Raises ValueError on a mismatch.
    """
    lrs = _check_lrs(lrs)
    if not torch.is_tensor(losses) or losses.dim() < 3 or losses.shape[0] != len(lrs):
        raise ValueError("losses must be [len(lrs), steps + 1, ...]")
    score = log_final_loss(losses).flatten(1).mean(1)
    return float(lrs[int(torch.argmin(score))]), score


class LSTMOptimizer(nn.Module):
    """E coordinate-wise LSTM optimizers, one per seed, as slices of a leading dimension.

    Each coordinate of each problem is one row of a batch that shares the member's weights
    (Andrychowicz et al. 2016, section 2.1). Input per coordinate: the gradient, preprocessed
    as in the paper's appendix A, ``(log|g| / p, sign g)`` when ``|g| >= e^-p`` and
    ``(-1, e^p g)`` otherwise (``p = 10``); one LSTM layer of ``hidden`` units; output: the
    update ``out_scale * (h W_out + b_out)``, added to the coordinate.
    Member ``i``'s weights are drawn after ``torch.manual_seed(seeds[i])``.
    """

    def __init__(self, seeds, hidden: int = 20, *, out_scale: float = 0.1, p: float = 10.0):
        super().__init__()
        if not isinstance(seeds, (list, tuple)) or not seeds or not all(isinstance(s, int) for s in seeds):
            raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
        hidden = check_positive_int("hidden", hidden)
        if not out_scale > 0:
            raise ValueError(f"out_scale must be positive, got {out_scale!r}")
        if not p > 0:
            raise ValueError(f"p must be positive, got {p!r}")
        self.seeds, self.hidden, self.out_scale, self.p = list(seeds), hidden, float(out_scale), float(p)
        k = 1.0 / math.sqrt(hidden)
        members = []
        for s in seeds:
            torch.manual_seed(s)
            members.append([torch.empty(2, 4 * hidden).uniform_(-k, k),
                            torch.empty(hidden, 4 * hidden).uniform_(-k, k),
                            torch.empty(1, 4 * hidden).uniform_(-k, k),
                            torch.empty(hidden, 1).uniform_(-k, k),
                            torch.zeros(1, 1)])
        stack = [torch.stack([m[j] for m in members]) for j in range(5)]
        self.w_in, self.w_h, self.b, self.w_out, self.b_out = (nn.Parameter(t) for t in stack)

    @property
    def members(self) -> int:
        return len(self.seeds)

    def preprocess(self, g: torch.Tensor) -> torch.Tensor:
        """[E, M] gradients -> [E, M, 2] features (the paper's log-magnitude and sign)."""
        big = g.abs() >= math.exp(-self.p)
        a = torch.where(big, torch.log(g.abs().clamp_min(math.exp(-self.p))) / self.p, -torch.ones_like(g))
        b = torch.where(big, torch.sign(g), math.exp(self.p) * g)
        return torch.stack([a, b], -1)

    def init_state(self, rows: int, device=None):
        """Zero (h, c), each [E, rows, hidden]; rows = problems x coordinates."""
        device = check_device("device", device)
        rows = check_positive_int("rows", rows)
        z = torch.zeros(self.members, rows, self.hidden, device=device)
        return z, z.clone()

    def forward(self, g: torch.Tensor, state):
        """g [E, M] gradients (one row per coordinate) -> (updates [E, M], new state)."""
        if not torch.is_tensor(g) or g.dim() != 2 or g.shape[0] != self.members:
            raise ValueError(f"g must be [E={self.members}, rows], got {tuple(getattr(g, 'shape', ()))}")
        h, c = state
        gates = torch.baddbmm(self.b, self.preprocess(g), self.w_in) + torch.bmm(h, self.w_h)
        i, f, o, u = gates.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
        h = torch.sigmoid(o) * torch.tanh(c)
        update = (torch.baddbmm(self.b_out, h, self.w_out)).squeeze(-1) * self.out_scale
        return update, (h, c)


def _check_member_problems(opt, problems):
    _check_problems(problems)
    if len(problems.shape) != 2 or problems.shape[0] != opt.members:
        raise ValueError(f"problems must have batch shape (E={opt.members}, B), got {tuple(problems.shape)}")


def unroll(opt: LSTMOptimizer, problems: Quadratics, steps: int, *, x=None, state=None,
           track_grad: bool = False):
    """Run the learned optimizers for ``steps`` steps on ``problems`` (batch shape (E, B)).

    Member e optimizes problems[e]. Starts from ``x`` (default 0) and ``state`` (default
    zero). Returns (losses [steps + 1, E, B], final x [E, B, dim], final state). The
    gradient fed to the LSTM is detached, as in the paper; with ``track_grad`` the losses
    depend on the optimizer's weights through the iterates. Raises ValueError on bad input.
    """
    _check_member_problems(opt, problems)
    steps = check_positive_int("steps", steps)
    E, B = problems.shape
    d = problems.dim
    dev = problems.W.device
    if x is None:
        x = torch.zeros(E, B, d, device=dev)
    if state is None:
        state = opt.init_state(B * d, dev)
    with torch.set_grad_enabled(track_grad):
        losses = [quadratic_loss(problems, x)]
        for _ in range(steps):
            g = quadratic_grad(problems, x).detach()
            upd, state = opt(g.reshape(E, B * d), state)
            x = x + upd.view(E, B, d)
            losses.append(quadratic_loss(problems, x))
    return torch.stack(losses), x, state


def meta_train(opt: LSTMOptimizer, *, dim: int, cond, scale=(1.0, 1.0), iterations: int, horizon: int, truncation: int,
               batch: int = 32, lr: float = 3e-3, clip: float = 1.0, seed: int, device=None,
               schedule: str = "constant", callback=None, desc: str = "meta-training") -> torch.Tensor:
    """Meta-train all members at once by truncated backpropagation through the unrolled optimization.

    Every iteration draws ``batch`` fresh quadratics per member (dimension ``dim``, condition
    range ``cond``), runs ``horizon`` steps in pieces of ``truncation`` steps, and after each
    piece takes an Adam step on the meta-loss: the mean over the piece's steps and problems
    of ``log(f(x_t))`` (each member its own, gradients clipped per member to norm ``clip``).
    ``schedule``: "constant" or "cosine" (the meta-learning rate annealed from ``lr`` to 0
    over the iterations). ``callback(i, opt)``, if given, is called after iteration ``i`` (1-based), e.g. to
    evaluate checkpoints. Returns the meta-loss per iteration [iterations, E] (mean over
    pieces). Raises ValueError for bad arguments.
    """
    if not isinstance(opt, LSTMOptimizer):
        raise ValueError("opt must be an LSTMOptimizer")
    device = check_device("device", device)
    dim = check_positive_int("dim", dim)
    _check_cond(cond)
    iterations = check_positive_int("iterations", iterations)
    horizon = check_positive_int("horizon", horizon)
    truncation = check_positive_int("truncation", truncation)
    if horizon % truncation:
        raise ValueError(f"horizon ({horizon}) must be a multiple of truncation ({truncation})")
    batch = check_positive_int("batch", batch)
    if not lr > 0 or not clip > 0:
        raise ValueError("lr and clip must be positive")
    if not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    if callback is not None and not callable(callback):
        raise ValueError("callback must be callable or None")
    opt.to(device)
    adam = torch.optim.Adam(opt.parameters(), lr=lr)
    E = opt.members
    history = torch.zeros(iterations, E)
    for it in progress(range(iterations), desc=desc):
        if schedule == "cosine":
            for group in adam.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * it / iterations))
        problems = sample_quadratics((E, batch), dim, cond, scale=scale, seed=seed * 100_003 + it, device=device)
        x, state, total = None, None, torch.zeros(E)
        for _ in range(horizon // truncation):
            losses, x, state = unroll(opt, problems, truncation, x=x, state=state, track_grad=True)
            per_member = torch.log(losses[1:].clamp_min(LOSS_FLOOR)).mean((0, 2))   # [E]
            adam.zero_grad()
            per_member.sum().backward()
            with torch.no_grad():
                norms = torch.sqrt(sum((p.grad.flatten(1) ** 2).sum(1) for p in opt.parameters()))
                factor = (clip / (norms + 1e-6)).clamp(max=1.0)
                for p in opt.parameters():
                    p.grad.mul_(factor.view(-1, *([1] * (p.dim() - 1))))
            adam.step()
            total += per_member.detach().cpu()
            x, state = x.detach(), (state[0].detach(), state[1].detach())
        history[it] = total / (horizon // truncation)
        if callback is not None:
            callback(it + 1, opt)
    return history
