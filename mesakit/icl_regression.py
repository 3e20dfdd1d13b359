"""In-context linear regression: task location versus task learning.

Chapter 2, lesson 3 trains a small causal transformer on sequences of ``(x_i, y_i)``
pairs, where each sequence has its own hidden task ``w`` and ``y_i = w . x_i + noise``.
The model must predict every ``y_i`` from the pairs before it. Pretraining draws the task
of each sequence from a *task pool* of ``M`` weight vectors (drawn once per seed from the
prior ``w ~ N(0, I_d)``); "unseen" tasks are fresh draws from the prior. Two Bayes
predictors are the reference points (Raventós et al. 2023):

* **ridge**: the posterior mean under the Gaussian prior, i.e. ridge regression on the
  context with ``lam = noise_std**2 / prior_var``. A general learning algorithm: it works
  for any ``w``.
* **dMMSE**: the posterior mean when the prior is uniform over the ``M`` pool tasks. It
  weighs each pool task by the likelihood of the context under it and averages their
  predictions: it *locates* a task it already knows and cannot learn a new one.

Token layout (documented choice). For a sequence of ``T`` pairs the model reads ``T``
tokens; token ``i`` is the concatenation ``(x_{i-1}, y_{i-1}, x_i)`` of the previous pair
and the current query (zeros stand in for the missing pair at ``i = 0``), so it has
``2 d + 1`` features. The output at token ``i`` is the prediction of ``y_i``; with the
causal mask it has seen exactly the pairs ``0 .. i-1`` and the query ``x_i``, so every
position is one in-context regression problem with ``i`` examples, and a single forward
pass scores all ``T`` of them. (Garg et al. 2022 and Raventós et al. 2023 interleave ``x``
and ``y`` tokens instead; this layout carries the same information in half the tokens.)

Everything is vectorized over sequences and pool tasks; the only Python loops are over
training steps and over memory-bounding chunks of a test batch.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .core import check_device, check_in_range, check_positive_int, make_generator
from .nets import CausalTransformer, train_supervised

__all__ = [
    "sample_tasks",
    "sample_inputs",
    "sample_sequences",
    "make_tokens",
    "ridge_predict",
    "dmmse_predict",
    "ridge_predict_all",
    "dmmse_predict_all",
    "prediction_distance",
    "crossover",
    "mean_squared_error",
    "make_icl_transformer",
    "train_icl_transformer",
    "transformer_predict_all",
]


# ---------------------------------------------------------------------------------------
# argument checks


def _check_nonneg(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_tensor(name: str, value, ndim: int, shape_doc: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {shape_doc}, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def _check_context(xs, ys) -> tuple[torch.Tensor, torch.Tensor]:
    xs = _check_tensor("xs", xs, 3, "[batch, n, d]")
    ys = _check_tensor("ys", ys, 2, "[batch, n]")
    if ys.shape != xs.shape[:2]:
        raise ValueError(f"ys must have shape [batch, n] = {tuple(xs.shape[:2])} to match xs, got {tuple(ys.shape)}")
    return xs, ys


def _check_pool(task_pool, d: int) -> torch.Tensor:
    task_pool = _check_tensor("task_pool", task_pool, 2, "[M, d]")
    if task_pool.shape[0] < 1 or task_pool.shape[1] != d:
        raise ValueError(f"task_pool must have shape [M >= 1, d={d}], got {tuple(task_pool.shape)}")
    return task_pool


# ---------------------------------------------------------------------------------------
# tasks and data


def sample_tasks(n_tasks: int, d: int, *, prior_std: float = 1.0, seed: int = 0,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """``n_tasks`` weight vectors ``w ~ N(0, prior_std**2 I_d)``, shape ``[n_tasks, d]``.

    Called once per seed with ``n_tasks = M`` it gives the pretraining *task pool*; with a
    different seed it gives fresh, unseen tasks from the same prior."""
    check_positive_int("n_tasks", n_tasks)
    check_positive_int("d", d)
    if not (isinstance(prior_std, (int, float)) and prior_std > 0):
        raise ValueError(f"prior_std must be a positive number, got {prior_std!r}")
    gen = make_generator(seed)
    return (prior_std * torch.randn(n_tasks, d, generator=gen)).to(device)


def sample_inputs(batch: int, n_points: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """Inputs ``x ~ N(0, I_d)``, shape ``[batch, n_points, d]``, drawn from ``generator``."""
    check_positive_int("batch", batch)
    check_positive_int("n_points", n_points)
    check_positive_int("d", d)
    return torch.randn(batch, n_points, d, generator=generator)


def sample_sequences(tasks: torch.Tensor, n_points: int, noise_std: float, *, seed: int = 0,
                     generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """One sequence per row of ``tasks`` (``[batch, d]``): returns ``xs [batch, n_points, d]``
    and ``ys [batch, n_points]`` with ``y_i = w . x_i + noise_std * eps_i``.

    Randomness comes from ``generator`` when given (training loops), else from ``seed``."""
    tasks = _check_tensor("tasks", tasks, 2, "[batch, d]")
    check_positive_int("n_points", n_points)
    noise_std = _check_nonneg("noise_std", noise_std)
    gen = generator if generator is not None else make_generator(seed)
    b, d = tasks.shape
    xs = sample_inputs(b, n_points, d, gen)
    noise = torch.randn(b, n_points, generator=gen)
    tasks_cpu = tasks.detach().to("cpu", torch.float32)
    ys = torch.einsum("bnd,bd->bn", xs, tasks_cpu) + noise_std * noise
    return xs.to(device), ys.to(device)


def make_tokens(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The transformer's input, ``[batch, n, 2 d + 1]``: token ``i`` is
    ``(x_{i-1}, y_{i-1}, x_i)`` (zeros for the missing pair at ``i = 0``), so the causal
    output at token ``i`` can use every pair before ``i`` and the query ``x_i``, never ``y_i``."""
    xs, ys = _check_context(xs, ys)
    prev_x = torch.zeros_like(xs)
    prev_x[:, 1:] = xs[:, :-1]
    prev_y = torch.zeros_like(ys)
    prev_y[:, 1:] = ys[:, :-1]
    return torch.cat([prev_x, prev_y.unsqueeze(-1), xs], dim=-1)


# ---------------------------------------------------------------------------------------
# the two Bayes predictors (exercise references: one query after a context)


def ridge_predict(xs: torch.Tensor, ys: torch.Tensor, x_query: torch.Tensor, lam: float) -> torch.Tensor:
    """Ridge regression on each context, evaluated at its query: returns ``[batch]``.

    ``xs [batch, n, d]``, ``ys [batch, n]``, ``x_query [batch, d]``. The weights are
    ``w_hat = (X^T X + lam I)^{-1} X^T y``; with the prior ``w ~ N(0, tau^2 I)`` and noise
    ``sigma``, ``lam = sigma^2 / tau^2`` makes ``w_hat . x_query`` the Bayes posterior
    mean. ``lam = 0`` gives the minimum-norm least-squares fit (the ``lam -> 0`` limit).
    An empty context (``n = 0``) predicts 0, the prior mean."""
    xs, ys = _check_context(xs, ys)
    x_query = _check_tensor("x_query", x_query, 2, "[batch, d]")
    if x_query.shape != (xs.shape[0], xs.shape[2]):
        raise ValueError(f"x_query must have shape [batch, d] = {(xs.shape[0], xs.shape[2])}, got {tuple(x_query.shape)}")
    lam = _check_nonneg("lam", lam)
    if lam > 0:
        d = xs.shape[-1]
        gram = xs.transpose(1, 2) @ xs + lam * torch.eye(d, dtype=xs.dtype, device=xs.device)
        w_hat = torch.linalg.solve(gram, (xs.transpose(1, 2) @ ys.unsqueeze(-1))).squeeze(-1)
    else:
        w_hat = (torch.linalg.pinv(xs) @ ys.unsqueeze(-1)).squeeze(-1)
    return (w_hat * x_query).sum(-1)


def dmmse_predict(xs: torch.Tensor, ys: torch.Tensor, x_query: torch.Tensor, task_pool: torch.Tensor,
                  noise_std: float) -> torch.Tensor:
    """The Bayes prediction when the prior is uniform over the rows of ``task_pool``
    (``[M, d]``): returns ``[batch]``.

    Each pool task ``w_m`` gets posterior weight proportional to the Gaussian likelihood of
    the context, ``exp(-sum_j (y_j - w_m . x_j)^2 / (2 noise_std^2))``; the prediction is
    the weighted average of ``w_m . x_query``. ``noise_std`` must be > 0."""
    xs, ys = _check_context(xs, ys)
    x_query = _check_tensor("x_query", x_query, 2, "[batch, d]")
    if x_query.shape != (xs.shape[0], xs.shape[2]):
        raise ValueError(f"x_query must have shape [batch, d] = {(xs.shape[0], xs.shape[2])}, got {tuple(x_query.shape)}")
    task_pool = _check_pool(task_pool, xs.shape[-1])
    if _check_nonneg("noise_std", noise_std) <= 0:
        raise ValueError(f"noise_std must be > 0 for the likelihood, got {noise_std!r}")
    resid = ys.unsqueeze(-1) - xs @ task_pool.T                      # [batch, n, M]
    log_lik = -(resid ** 2).sum(1) / (2 * noise_std ** 2)             # [batch, M]
    post = torch.softmax(log_lik, dim=-1)
    return (post * (x_query @ task_pool.T)).sum(-1)


# ---------------------------------------------------------------------------------------
# the same predictors at every position of a sequence (what the notebook compares)


def ridge_predict_all(xs: torch.Tensor, ys: torch.Tensor, lam: float) -> torch.Tensor:
    """``[batch, n]``: entry ``i`` is ``ridge_predict`` on the first ``i`` pairs, queried
    at ``x_i`` -- the prediction the transformer makes at token ``i``. Uses running sums of
    ``x x^T`` and ``x y`` so all positions cost one batched solve. ``lam`` must be > 0."""
    xs, ys = _check_context(xs, ys)
    lam = _check_nonneg("lam", lam)
    if lam <= 0:
        raise ValueError(f"lam must be > 0 here (the first positions have too few pairs), got {lam!r}")
    d = xs.shape[-1]
    outer = xs.unsqueeze(-1) * xs.unsqueeze(-2)                         # [b, n, d, d]
    gram = torch.cumsum(outer, 1) - outer                             # pairs strictly before i
    xy = xs * ys.unsqueeze(-1)
    rhs = torch.cumsum(xy, 1) - xy
    eye = torch.eye(d, dtype=xs.dtype, device=xs.device)
    w_hat = torch.linalg.solve(gram + lam * eye, rhs.unsqueeze(-1)).squeeze(-1)
    return (w_hat * xs).sum(-1)


def dmmse_predict_all(xs: torch.Tensor, ys: torch.Tensor, task_pool: torch.Tensor, noise_std: float,
                      chunk: int = 256) -> torch.Tensor:
    """``[batch, n]``: entry ``i`` is ``dmmse_predict`` on the first ``i`` pairs, queried
    at ``x_i``. Running sums of squared residuals give every position at once; the batch is
    processed ``chunk`` sequences at a time to bound memory (``chunk * n * M`` floats)."""
    xs, ys = _check_context(xs, ys)
    task_pool = _check_pool(task_pool, xs.shape[-1])
    if _check_nonneg("noise_std", noise_std) <= 0:
        raise ValueError(f"noise_std must be > 0 for the likelihood, got {noise_std!r}")
    check_positive_int("chunk", chunk)
    out = []
    for start in range(0, xs.shape[0], chunk):   # a loop over memory chunks, not over sequences
        x, y = xs[start:start + chunk], ys[start:start + chunk]
        task_preds = x @ task_pool.T                                   # [b, n, M]
        sq = (y.unsqueeze(-1) - task_preds) ** 2
        log_lik = -(torch.cumsum(sq, 1) - sq) / (2 * noise_std ** 2)  # context strictly before i
        post = torch.softmax(log_lik, dim=-1)
        out.append((post * task_preds).sum(-1))
    return torch.cat(out)


def prediction_distance(pred_a: torch.Tensor, pred_b: torch.Tensor, per_sequence: bool = False):
    """Mean squared difference between two predictors' outputs on the same test sequences
    (``[batch, n]`` each): how far apart the two *functions* are, whatever the targets.
    Raventós et al. 2023 compare a transformer to dMMSE and ridge this way.

    Returns a float averaged over sequences and positions, or with ``per_sequence=True``
    a CPU tensor ``[batch]`` (averaged over positions only), for confidence intervals."""
    if not isinstance(pred_a, torch.Tensor) or not isinstance(pred_b, torch.Tensor):
        raise ValueError("pred_a and pred_b must be torch.Tensors")
    if pred_a.shape != pred_b.shape or pred_a.dim() < 1:
        raise ValueError(f"pred_a and pred_b must have the same shape [batch, ...], got {tuple(pred_a.shape)} and {tuple(pred_b.shape)}")
    sq = (pred_a.detach().float() - pred_b.detach().float()) ** 2
    if per_sequence:
        return sq.reshape(sq.shape[0], -1).mean(1).cpu()
    return float(sq.mean().cpu())


def crossover(m_values: Sequence[float], dist_to_a: Sequence[float], dist_to_b: Sequence[float]) -> float | None:
    """The pool size at which a model stops being closer to predictor A and becomes closer
    to predictor B: the first place where ``log(dist_to_a / dist_to_b)`` goes from below 0
    to above 0, interpolated linearly in ``log M`` between the two pool sizes that bracket
    it. Returns None when the ordering never flips that way."""
    m = [float(v) for v in m_values]
    if len(m) < 2 or len(dist_to_a) != len(m) or len(dist_to_b) != len(m):
        raise ValueError("m_values, dist_to_a and dist_to_b must have the same length >= 2")
    if any(v <= 0 for v in m) or any(b <= a for a, b in zip(m, m[1:])):
        raise ValueError(f"m_values must be positive and increasing, got {list(m_values)}")
    if any(v <= 0 for v in list(dist_to_a) + list(dist_to_b)):
        raise ValueError("dist_to_a and dist_to_b must be positive")
    r = [math.log(a / b) for a, b in zip(dist_to_a, dist_to_b)]
    for i in range(len(m) - 1):
        if r[i] < 0 <= r[i + 1]:
            frac = -r[i] / (r[i + 1] - r[i])
            return math.exp(math.log(m[i]) + frac * (math.log(m[i + 1]) - math.log(m[i])))
    return None


def mean_squared_error(pred: torch.Tensor, ys: torch.Tensor) -> float:
    """Mean squared error of predictions against the (noisy) targets, over sequences and
    positions. The irreducible part is ``noise_std**2``."""
    if not isinstance(pred, torch.Tensor) or not isinstance(ys, torch.Tensor):
        raise ValueError("pred and ys must be torch.Tensors")
    if pred.shape != ys.shape:
        raise ValueError(f"pred and ys must have the same shape, got {tuple(pred.shape)} and {tuple(ys.shape)}")
    return float(((pred.detach().float() - ys.detach().float()) ** 2).mean().cpu())


# ---------------------------------------------------------------------------------------
# the transformer


def make_icl_transformer(d: int, n_points: int, *, d_model: int = 32, n_heads: int = 4, n_layers: int = 2,
                         positional: str = "learned", seed: int = 0,
                         device: torch.device | str = "cpu") -> CausalTransformer:
    """A small ``CausalTransformer`` reading ``make_tokens`` output (``2 d + 1`` features)
    and emitting one number per token, the prediction of ``y_i``. Seeded initialisation."""
    check_positive_int("d", d)
    check_positive_int("n_points", n_points)
    torch.manual_seed(seed)
    model = CausalTransformer(2 * d + 1, 1, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
                              max_len=n_points, positional=positional)
    return model.to(device)


def train_icl_transformer(task_pool: torch.Tensor | None, *, d: int, n_points: int, noise_std: float,
                          steps: int, batch: int = 64, lr: float = 3e-3, d_model: int = 32, n_heads: int = 4,
                          n_layers: int = 2, positional: str = "learned", seed: int = 0,
                          device: torch.device | str = "cpu",
                          desc: str | None = None) -> tuple[CausalTransformer, list[float]]:
    """Pretrain a fresh transformer on sequences whose tasks are drawn uniformly from
    ``task_pool`` (``[M, d]``), or fresh from the prior ``N(0, I_d)`` at every sequence when
    ``task_pool`` is None (``M = infinity``). Returns ``(model, losses)``; the loss is the
    mean squared error of the prediction at every position. Deterministic given ``seed``."""
    check_positive_int("d", d)
    check_positive_int("n_points", n_points)
    check_positive_int("steps", steps)
    check_positive_int("batch", batch)
    noise_std = _check_nonneg("noise_std", noise_std)
    if task_pool is not None:
        task_pool = _check_pool(task_pool, d).detach().to("cpu", torch.float32)
    model = make_icl_transformer(d, n_points, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
                                 positional=positional, seed=seed, device=device)

    def make_batch(gen: torch.Generator):
        if task_pool is None:
            w = torch.randn(batch, d, generator=gen)
        else:
            w = task_pool[torch.randint(task_pool.shape[0], (batch,), generator=gen)]
        xs, ys = sample_sequences(w, n_points, noise_std, generator=gen)
        return make_tokens(xs, ys), ys

    def loss_fn(out: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return ((out.squeeze(-1) - ys) ** 2).mean()

    m_label = "inf" if task_pool is None else str(task_pool.shape[0])
    losses = train_supervised(model, make_batch, loss_fn, steps=steps, lr=lr, seed=seed, device=device,
                              desc=desc or f"M={m_label}")
    return model, losses


@torch.no_grad()
def transformer_predict_all(model: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor,
                            chunk: int = 1024) -> torch.Tensor:
    """``[batch, n]``: the model's prediction of every ``y_i`` from the pairs before it
    (one causal forward pass per chunk of sequences), on the model's device."""
    xs, ys = _check_context(xs, ys)
    check_positive_int("chunk", chunk)
    model.eval()
    dev = next(model.parameters()).device
    tokens = make_tokens(xs, ys).to(dev)
    return torch.cat([model(tokens[s:s + chunk]).squeeze(-1) for s in range(0, tokens.shape[0], chunk)])
