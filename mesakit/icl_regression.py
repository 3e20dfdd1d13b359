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

A sweep (training seeds x pool sizes) trains as one program: ``BatchedICLTransformer``
holds E independent small transformers whose weights are stacked on a leading member
dimension and run with batched matrix products (``torch.bmm``), and
``train_icl_sweep`` trains them together, each member on its own pool with its own seed.
(``mesakit.ensembles.Ensemble`` would vmap ``CausalTransformer``, but attention falls
back to a slow per-member path under vmap; hand-batched attention avoids it.)
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .core import check_device, check_in_range, check_positive_int, make_generator, progress
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
    "BatchedICLTransformer",
    "train_icl_sweep",
    "batched_predict_all",
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
    device = check_device("device", device)
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
    device = check_device("device", device)
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
    device = check_device("device", device)
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
    device = check_device("device", device)
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


# ---------------------------------------------------------------------------------------
# a sweep of transformers (seeds x pool sizes) as one batched program


class BatchedICLTransformer(nn.Module):
    """E independent pre-norm causal transformers, run in one call.

    Member ``e`` reads ``make_tokens`` output (``2 d + 1`` features per token) and emits one
    number per token, the prediction of ``y_i``. Every weight has a leading member
    dimension ``E``; the linear maps are batched matrix products and the attention is
    written out with a causal mask, so E members cost about as much as one model on an
    E times larger batch. Architecture per member: a linear embedding plus a learned
    position embedding, ``n_layers`` blocks of (LayerNorm, ``n_heads``-head causal
    softmax attention, residual; LayerNorm, GELU MLP of width ``ffn_mult * d_model``,
    residual), a final LayerNorm and a linear head (as ``CausalTransformer``, with a
    narrower MLP).

    ``seeds`` (length E) seeds each member's initialisation: member ``e`` is initialised
    from ``torch.Generator().manual_seed(seeds[e])``, whatever the other members are.
    Raises ValueError for non-positive sizes, an empty ``seeds`` or ``d_model`` not
    divisible by ``n_heads``.
    """

    def __init__(self, seeds: Sequence[int], d: int, n_points: int, *, d_model: int = 32, n_heads: int = 4,
                 n_layers: int = 2, ffn_mult: int = 2, device: torch.device | str = "cpu"):
        super().__init__()
        device = check_device("device", device)
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds must name at least one member, got an empty sequence")
        for s in seeds:
            check_positive_int("seeds[i]", s, minimum=0)
        for name, value in (("d", d), ("n_points", n_points), ("d_model", d_model), ("n_heads", n_heads),
                            ("n_layers", n_layers), ("ffn_mult", ffn_mult)):
            check_positive_int(name, value)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.seeds, self.d, self.n_points = seeds, d, n_points
        self.d_model, self.n_heads, self.n_layers, self.ffn_mult = d_model, n_heads, n_layers, ffn_mult
        in_dim, hid = 2 * d + 1, ffn_mult * d_model
        shapes = [("embed", in_dim, d_model)]
        for layer in range(n_layers):
            shapes += [(f"qkv{layer}", d_model, 3 * d_model), (f"out{layer}", d_model, d_model),
                       (f"up{layer}", d_model, hid), (f"down{layer}", hid, d_model)]
        shapes.append(("head", d_model, 1))
        weights = {name: [] for name, _, _ in shapes}
        biases = {name: [] for name, _, _ in shapes}
        pos = []
        for s in seeds:   # initialisation only: one member at a time, from its own seed
            gen = torch.Generator().manual_seed(int(s))
            for name, fan_in, fan_out in shapes:   # nn.Linear's default uniform(+-1/sqrt(fan_in))
                bound = 1 / math.sqrt(fan_in)
                weights[name].append((torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound)
                biases[name].append((torch.rand(fan_out, generator=gen) * 2 - 1) * bound)
            pos.append(0.02 * torch.randn(n_points, d_model, generator=gen))
        self.w = nn.ParameterDict({k: nn.Parameter(torch.stack(v)) for k, v in weights.items()})
        self.b = nn.ParameterDict({k: nn.Parameter(torch.stack(v)) for k, v in biases.items()})
        self.pos = nn.Parameter(torch.stack(pos))
        E = len(seeds)
        self.ln_g = nn.Parameter(torch.ones(E, 2 * n_layers + 1, d_model))
        self.ln_b = nn.Parameter(torch.zeros(E, 2 * n_layers + 1, d_model))
        self.to(device)

    def __len__(self) -> int:
        return len(self.seeds)

    def _linear(self, h: torch.Tensor, name: str) -> torch.Tensor:
        E, B, T, _ = h.shape
        out = torch.baddbmm(self.b[name].unsqueeze(1), h.reshape(E, B * T, -1), self.w[name])
        return out.reshape(E, B, T, -1)

    def _norm(self, h: torch.Tensor, i: int) -> torch.Tensor:
        h = F.layer_norm(h, (self.d_model,))
        return h * self.ln_g[:, i, None, None] + self.ln_b[:, i, None, None]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [E, B, T, 2 d + 1]`` (one batch per member) -> predictions ``[E, B, T]``."""
        if tokens.dim() != 4 or tokens.shape[0] != len(self) or tokens.shape[-1] != 2 * self.d + 1:
            raise ValueError(f"tokens must have shape [E={len(self)}, batch, time, {2 * self.d + 1}], "
                             f"got {tuple(tokens.shape)}")
        E, B, T, _ = tokens.shape
        if T > self.n_points:
            raise ValueError(f"sequence length {T} exceeds n_points={self.n_points}")
        H, dh = self.n_heads, self.d_model // self.n_heads
        mask = torch.full((T, T), float("-inf"), device=tokens.device).triu(1)
        h = self._linear(tokens, "embed") + self.pos[:, None, :T]
        for layer in range(self.n_layers):
            qkv = self._linear(self._norm(h, 2 * layer), f"qkv{layer}")
            q, k, v = qkv.reshape(E, B, T, 3, H, dh).permute(3, 0, 1, 4, 2, 5)   # [E, B, H, T, dh] each
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + mask, dim=-1)
            h = h + self._linear((att @ v).transpose(2, 3).reshape(E, B, T, self.d_model), f"out{layer}")
            up = F.gelu(self._linear(self._norm(h, 2 * layer + 1), f"up{layer}"))
            h = h + self._linear(up, f"down{layer}")
        return self._linear(self._norm(h, 2 * self.n_layers), "head").squeeze(-1)


def train_icl_sweep(task_pools: Sequence[torch.Tensor | None], seeds: Sequence[int], *, d: int, n_points: int,
                    noise_std: float, steps: int, batch: int = 32, lr: float = 1e-2, warmup: int = 50,
                    clip_grad: float | None = 1.0, d_model: int = 32, n_heads: int = 4, n_layers: int = 2,
                    ffn_mult: int = 2, checkpoints: Sequence[int] = (), on_checkpoint=None,
                    device: torch.device | str = "cpu",
                    desc: str = "sweep") -> tuple[BatchedICLTransformer, torch.Tensor]:
    """Pretrain E transformers at once: member ``e`` trains on sequences whose tasks are
    drawn uniformly from ``task_pools[e]`` (``[M_e, d]``; None means a fresh task from the
    prior ``N(0, I_d)`` for every sequence) and is initialised from ``seeds[e]``.

    Data: members that share a seed share their random stream, so they see the same
    inputs ``x``, the same noise and the same uniform draws ``u`` that pick the task
    (index ``floor(u * M_e)``; with nested pools, the same task wherever it exists).
    Recipe: Adam, ``batch`` sequences per member and step, a linear warm-up over
    ``warmup`` steps then a cosine decay to 0, each member's gradient clipped to norm
    ``clip_grad`` on its own; the loss of each member is the mean squared error of its
    prediction at every position, and the members' losses are summed so that each one's
    gradient is what it would be alone. After step ``s`` in ``checkpoints`` (1-based),
    ``on_checkpoint(s, model)`` is called (for learning curves).

    Returns ``(model, losses)`` with ``losses [steps, E]``. Same arguments, same numbers.
    Raises ValueError when the lengths of ``task_pools`` and ``seeds`` differ, a pool is
    not ``[M >= 1, d]``, or a size or rate is not positive.
    """
    device = check_device("device", device)
    seeds = [check_positive_int("seeds[i]", s, minimum=0) for s in seeds]
    task_pools = list(task_pools)
    if len(task_pools) != len(seeds) or not seeds:
        raise ValueError(f"task_pools and seeds must have the same length >= 1, got {len(task_pools)} and {len(seeds)}")
    check_positive_int("d", d)
    check_positive_int("n_points", n_points)
    check_positive_int("steps", steps)
    check_positive_int("batch", batch)
    check_positive_int("warmup", warmup, minimum=0)
    noise_std = _check_nonneg("noise_std", noise_std)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if clip_grad is not None and (isinstance(clip_grad, bool) or not isinstance(clip_grad, (int, float)) or not clip_grad > 0):
        raise ValueError(f"clip_grad must be a positive number or None, got {clip_grad!r}")
    checkpoints = sorted({check_positive_int("checkpoints[i]", c) for c in checkpoints})
    if checkpoints and (checkpoints[-1] > steps or on_checkpoint is None):
        raise ValueError("checkpoints must lie in [1, steps] and come with an on_checkpoint callable")
    E = len(seeds)
    sizes = torch.tensor([0 if p is None else _check_pool(p, d).shape[0] for p in task_pools])
    bank = torch.zeros(E, max(1, int(sizes.max())), d)
    for e, p in enumerate(task_pools):
        if p is not None:
            bank[e, :p.shape[0]] = p.detach().to("cpu", torch.float32)
    is_prior = sizes == 0
    unique = sorted(set(seeds))
    which = torch.tensor([unique.index(s) for s in seeds])
    gens = [torch.Generator().manual_seed(int(s)) for s in unique]

    model = BatchedICLTransformer(seeds, d, n_points, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
                                  ffn_mult=ffn_mult, device=device)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=lr)

    def schedule(s: int) -> float:
        warm = min(1.0, (s + 1) / warmup) if warmup else 1.0
        return warm * 0.5 * (1 + math.cos(math.pi * s / steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    losses = torch.zeros(steps, E)
    rows = torch.arange(E)[:, None]
    for step in progress(range(steps), desc=desc):
        draws = [(torch.randn(batch, n_points, d, generator=g), torch.randn(batch, n_points, generator=g),
                  torch.rand(batch, generator=g), torch.randn(batch, d, generator=g)) for g in gens]
        xs, noise, u, w_prior = (torch.stack(t)[which] for t in zip(*draws))   # [E, batch, ...]
        idx = (u * sizes.clamp(min=1)[:, None]).long()
        w = torch.where(is_prior[:, None, None], w_prior, bank[rows, idx])        # [E, batch, d]
        ys = torch.einsum("ebnd,ebd->ebn", xs, w) + noise_std * noise
        xs, ys = xs.to(device), ys.to(device)
        pred = model(make_tokens(xs.reshape(E * batch, n_points, d), ys.reshape(E * batch, n_points))
                     .reshape(E, batch, n_points, -1))
        per_member = ((pred - ys) ** 2).mean(dim=(1, 2))
        opt.zero_grad(set_to_none=True)
        per_member.sum().backward()
        if clip_grad:
            sq = sum(p.grad.pow(2).reshape(E, -1).sum(1) for p in params)
            scale = (clip_grad / (sq.sqrt() + 1e-6)).clamp(max=1.0)
            for p in params:
                p.grad.mul_(scale.view(-1, *([1] * (p.grad.dim() - 1))))
        opt.step()
        sched.step()
        losses[step] = per_member.detach().cpu()
        if checkpoints and step + 1 in checkpoints:
            model.eval()
            on_checkpoint(step + 1, model)
            model.train()
    model.eval()
    return model, losses


@torch.no_grad()
def batched_predict_all(model: BatchedICLTransformer, xs: torch.Tensor, ys: torch.Tensor,
                        chunk: int = 512) -> torch.Tensor:
    """``[E, batch, n]``: every member's prediction of every ``y_i`` from the pairs before
    it, on the same test sequences ``xs [batch, n, d]``, ``ys [batch, n]`` (or one set per
    member, ``xs [E, batch, n, d]``, ``ys [E, batch, n]``), ``chunk`` sequences at a time."""
    if not isinstance(model, BatchedICLTransformer):
        raise ValueError(f"model must be a BatchedICLTransformer, got {type(model).__name__}")
    check_positive_int("chunk", chunk)
    E = len(model)
    if isinstance(xs, torch.Tensor) and xs.dim() == 4:
        if not isinstance(ys, torch.Tensor) or ys.dim() != 3 or xs.shape[0] != E or ys.shape[0] != E:
            raise ValueError(f"per-member xs, ys must have shapes [E={E}, batch, n, d] and [E, batch, n]")
        tokens = make_tokens(xs.flatten(0, 1), ys.flatten(0, 1)).reshape(E, xs.shape[1], xs.shape[2], -1)
    else:
        tokens = make_tokens(xs, ys).unsqueeze(0).expand(E, -1, -1, -1)
    model.eval()
    dev = model.pos.device
    tokens = tokens.to(dev)
    return torch.cat([model(tokens[:, s:s + chunk]) for s in range(0, tokens.shape[1], chunk)], dim=1)
