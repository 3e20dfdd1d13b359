"""In-context tasks that tell a recurrence from attention over the whole history, and the
per-step price each architecture pays at inference.

Two task families, both vectorized (a batch of sequences is a few tensors):

* ``coin_flip_batch`` -- predict the next flip of a coin of unknown bias. The history can
  be compressed into a small *sufficient statistic* (the number of flips and of heads),
  so a fixed-size recurrent state loses nothing.
* ``associative_recall_batch`` -- a list of key -> value pairs, then queries of earlier
  keys. Answering needs the pairs themselves; as their number grows, the information
  to keep outgrows any fixed-size state, while attention can look each one up.

The cost half measures what one generated step costs: a GRU carries a constant-size
state; a causal transformer decoding with a key/value cache carries a cache that grows
with the length ``t`` of the history, and reads all of it at every step. Both analytic
formulas (bytes, multiply-adds) and wall-clock timings are provided, plus an exact
cached decoder for ``mesakit.nets.CausalTransformer`` so the timings are of real
incremental inference, not of recomputing the whole sequence.

A claim about what training produces must hold across training seeds and training
budgets, so the module also trains several seeds of one architecture as one batched
program (``GRUEnsemble``, ``TransformerEnsemble``, ``train_ensemble``), with a constant
learning rate and evaluations at checkpoints: one run gives recall against training
steps for every seed (``steps_to_reach`` reads off how long each took).
"""
from __future__ import annotations

import math
import statistics
import time
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .core import check_choice, check_device, check_positive_int, make_generator, progress
from .ensembles import clip_grad_norm_per_member_
from .nets import CausalTransformer, GRUSequenceModel

__all__ = [
    "CoinBatch",
    "RecallBatch",
    "coin_flip_batch",
    "coin_bayes_predictive",
    "expected_log_loss",
    "coin_scores",
    "recall_input_dim",
    "associative_recall_batch",
    "recall_accuracy",
    "bag_of_values_accuracy",
    "recurrent_state_bytes",
    "kv_cache_bytes",
    "recurrent_step_macs",
    "attention_step_macs",
    "step_cost_table",
    "KVCache",
    "transformer_decode_step",
    "transformer_stepwise",
    "measure_step_time",
    "GRUEnsemble",
    "TransformerEnsemble",
    "train_ensemble",
    "recall_accuracy_per_member",
    "steps_to_reach",
]


# ----------------------------------------------------------------------------- helpers
def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    return make_generator(0 if seed is None else seed)


def _check_lengths(name: str, lengths) -> list[int]:
    try:
        values = list(lengths)
    except TypeError:
        raise ValueError(f"{name} must be a non-empty sequence of integers >= 1, got {lengths!r}") from None
    if not values:
        raise ValueError(f"{name} must be a non-empty sequence of integers >= 1, got {lengths!r}")
    return [check_positive_int(name, v) for v in values]


# ------------------------------------------------------------ task (a): a biased coin
class CoinBatch(NamedTuple):
    """A batch of coin-flip sequences.

    ``inputs`` [B, T, 3]: at step t the previous flip as a one-hot (tails, heads) or, at
    t = 0, a start marker (channel 2). ``targets`` [B, T] (float 0/1): the flip to predict
    at step t. ``bias`` [B]: each sequence's probability of heads. ``bayes`` [B, T]: the
    Bayes-optimal predictive probability of heads given the flips before t."""

    inputs: torch.Tensor
    targets: torch.Tensor
    bias: torch.Tensor
    bayes: torch.Tensor


def coin_bayes_predictive(flips: torch.Tensor) -> torch.Tensor:
    """Bayes-optimal P(next flip = heads) under a uniform prior on the bias (Laplace's
    rule of succession): ``(heads so far + 1) / (flips so far + 2)``, for every position.

    ``flips`` [B, T] of 0/1; the value at position t uses flips 0..t-1 only. Two numbers,
    the count of flips and of heads, summarize the whole history: a sufficient statistic."""
    if not isinstance(flips, torch.Tensor) or flips.dim() != 2:
        raise ValueError(f"flips must be a [batch, time] tensor, got {getattr(flips, 'shape', flips)!r}")
    flips = flips.float()
    heads_before = torch.cumsum(flips, 1) - flips
    seen = torch.arange(flips.shape[1], device=flips.device, dtype=flips.dtype)
    return (heads_before + 1.0) / (seen + 2.0)


def coin_flip_batch(batch: int, length: int, *, seed: int | None = None,
                    generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu") -> CoinBatch:
    """Sequences of ``length`` flips of coins whose biases are drawn uniformly from [0, 1],
    one coin per sequence. A model that predicts each next flip well must infer the bias
    in context, after its weights are frozen. Draws from ``generator`` when given (as in
    ``train_supervised``), else from a fresh one seeded with ``seed``."""
    batch = check_positive_int("batch", batch)
    length = check_positive_int("length", length)
    device = check_device("device", device)
    gen = _generator(seed, generator)
    bias = torch.rand(batch, generator=gen)
    flips = (torch.rand(batch, length, generator=gen) < bias[:, None]).float()
    inputs = torch.zeros(batch, length, 3)
    inputs[:, 0, 2] = 1.0
    if length > 1:
        inputs[:, 1:, :2] = F.one_hot(flips[:, :-1].long(), 2).float()
    bayes = coin_bayes_predictive(flips)
    return CoinBatch(inputs.to(device), flips.to(device), bias.to(device), bayes.to(device))


def expected_log_loss(prob: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Expected cross-entropy (nats) of predicting heads with probability ``prob`` when the
    coin's true bias is ``bias`` (broadcast over time). Averaging over the coin rather than
    over sampled flips removes most of the noise from the comparison."""
    prob = prob.clamp(1e-6, 1 - 1e-6)
    if bias.dim() == prob.dim() - 1:
        bias = bias.unsqueeze(-1)
    return -(bias * prob.log() + (1 - bias) * (1 - prob).log())


def coin_scores(logits: torch.Tensor, batch: CoinBatch) -> dict:
    """How much of the in-context gain a model captures on a ``CoinBatch``.

    ``logits`` [B, T] or [B, T, 1]: the model's log-odds of heads. Returns expected losses
    (nats per flip, averaged over positions) of the model, of the Bayes predictor and of a
    know-nothing 50/50 guess; ``gain_captured`` = (uniform - model) / (uniform - Bayes),
    1 for Bayes-optimal and 0 for no in-context learning; ``mean_abs_gap``, the mean
    |model probability - Bayes probability|; and ``loss_by_position`` for each of the three."""
    if logits.dim() == 3:
        if logits.shape[-1] != 1:
            raise ValueError(f"logits must be [batch, time] or [batch, time, 1], got {tuple(logits.shape)}")
        logits = logits[..., 0]
    if logits.shape != batch.targets.shape:
        raise ValueError(f"logits shape {tuple(logits.shape)} does not match targets {tuple(batch.targets.shape)}")
    prob = torch.sigmoid(logits.detach().float())
    model = expected_log_loss(prob, batch.bias)
    bayes = expected_log_loss(batch.bayes, batch.bias)
    uniform = expected_log_loss(torch.full_like(prob, 0.5), batch.bias)
    m, b, u = model.mean().item(), bayes.mean().item(), uniform.mean().item()
    return {
        "model_loss": m,
        "bayes_loss": b,
        "uniform_loss": u,
        "gain_captured": (u - m) / (u - b),
        "mean_abs_gap": (prob - batch.bayes).abs().mean().item(),
        "loss_by_position": {"model": model.mean(0).cpu(), "bayes": bayes.mean(0).cpu(),
                             "uniform": uniform.mean(0).cpu()},
    }


# -------------------------------------------------------- task (b): associative recall
class RecallBatch(NamedTuple):
    """A batch of associative-recall sequences.

    Layout "query last" (default): ``n_pairs`` pair tokens, then ``n_queries`` query
    tokens, each answered where it stands. Layout "query first": the ``n_queries`` query
    tokens, then the pairs, then ``n_queries`` answer markers (the i-th answers the i-th
    query). Either way the answers are due at the last ``n_queries`` positions.

    ``inputs`` [B, T, n_keys + n_values + 1]: a pair token is one-hot(key) | one-hot(value)
    | 0; a query token is one-hot(key) | zeros | 1; an answer marker is zeros | zeros | 1.
    ``targets`` [B, n_queries]: the value stored with each queried key. ``keys`` and
    ``values`` [B, n_pairs]: the stored pairs (keys distinct within a sequence).
    ``query_keys`` [B, n_queries]."""

    inputs: torch.Tensor
    targets: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    query_keys: torch.Tensor
    n_pairs: int
    query_first: bool = False

    @property
    def sequence_targets(self) -> torch.Tensor:
        """Targets aligned with every position [B, T]: the answer where one is due and -100
        (``cross_entropy``'s default ``ignore_index``) elsewhere, so a loss over the whole
        output sequence trains only on the answers."""
        n_q = self.targets.shape[1]
        pad = torch.full((self.targets.shape[0], self.inputs.shape[1] - n_q), -100,
                         dtype=self.targets.dtype, device=self.targets.device)
        return torch.cat([pad, self.targets], 1)


def recall_input_dim(n_keys: int, n_values: int) -> int:
    """Feature width of a recall token: key one-hot, value one-hot, and a query flag."""
    return check_positive_int("n_keys", n_keys) + check_positive_int("n_values", n_values) + 1


def associative_recall_batch(batch: int, n_pairs: int, *, n_keys: int = 8, n_values: int = 8,
                             n_queries: int = 1, query_first: bool = False, seed: int | None = None,
                             generator: torch.Generator | None = None,
                             device: torch.device | str = "cpu") -> RecallBatch:
    """Sequences of ``n_pairs`` random key -> value pairs (distinct keys from ``n_keys``,
    values from ``n_values``) and ``n_queries`` queries of keys drawn from the stored ones.

    With the queries last (default), the answer depends on the pairs themselves, not on a
    small summary: a reader that cannot look back must have kept the whole table, about
    ``n_pairs * log2(n_values)`` bits. With ``query_first=True`` the same question comes
    before the pairs, so a reader only has to keep the ``n_queries`` values it was asked
    for: the same content, but now with a small sufficient statistic.
    Draws from ``generator`` when given, else from a fresh one seeded with ``seed``."""
    batch = check_positive_int("batch", batch)
    n_pairs = check_positive_int("n_pairs", n_pairs)
    n_keys = check_positive_int("n_keys", n_keys)
    n_values = check_positive_int("n_values", n_values)
    n_queries = check_positive_int("n_queries", n_queries)
    if not isinstance(query_first, bool):
        raise ValueError(f"query_first must be True or False, got {query_first!r}")
    device = check_device("device", device)
    if n_pairs > n_keys:
        raise ValueError(f"n_pairs ({n_pairs}) must be <= n_keys ({n_keys}): keys are distinct")
    gen = _generator(seed, generator)
    keys = torch.rand(batch, n_keys, generator=gen).argsort(-1)[:, :n_pairs]
    values = torch.randint(0, n_values, (batch, n_pairs), generator=gen)
    which = torch.randint(0, n_pairs, (batch, n_queries), generator=gen)
    query_keys = keys.gather(1, which)
    targets = values.gather(1, which)
    dim = n_keys + n_values + 1
    pairs = torch.cat([F.one_hot(keys, n_keys), F.one_hot(values, n_values),
                       torch.zeros(batch, n_pairs, 1, dtype=torch.long)], -1).float()
    queries = torch.cat([F.one_hot(query_keys, n_keys).float(), torch.zeros(batch, n_queries, n_values),
                         torch.ones(batch, n_queries, 1)], -1)
    if query_first:
        answers = torch.zeros(batch, n_queries, dim)
        answers[..., -1] = 1.0
        inputs = torch.cat([queries, pairs, answers], 1)
    else:
        inputs = torch.cat([pairs, queries], 1)
    return RecallBatch(inputs.to(device), targets.to(device), keys.to(device), values.to(device),
                       query_keys.to(device), n_pairs, query_first)


def recall_accuracy(logits: torch.Tensor, batch: RecallBatch) -> float:
    """Fraction of queries answered with the stored value. ``logits`` is the model's output
    over the whole sequence [B, T, n_values] (answers are read at the last ``n_queries``
    positions) or over the answers only [B, n_queries, n_values]."""
    n_q = batch.targets.shape[1]
    if logits.dim() != 3 or logits.shape[0] != batch.targets.shape[0] \
            or logits.shape[1] not in (n_q, batch.inputs.shape[1]):
        raise ValueError(f"logits must be [batch, {batch.inputs.shape[1]} or {n_q}, n_values], "
                         f"got {tuple(logits.shape)}")
    return (logits[:, -n_q:].argmax(-1) == batch.targets).float().mean().item()


def bag_of_values_accuracy(batch: RecallBatch) -> float:
    """Expected accuracy of the best reader that kept only *which values* appeared (a
    multiset), not which key each belonged to: it answers the most frequent stored value,
    so it is right with probability (count of that value) / n_pairs for each query.
    A yardstick for a lossy summary of the history."""
    counts = F.one_hot(batch.values).sum(1)  # [B, max value + 1]: how often each value was stored
    best = counts.max(-1).values.float()
    return (best / batch.n_pairs).mean().item()


# -------------------------------------------------------------- analytic step costs
def recurrent_state_bytes(n_layers: int, hidden: int, *, batch: int = 1, bytes_per_element: int = 4) -> int:
    """Bytes a GRU carries from one step to the next: ``n_layers * batch * hidden`` numbers,
    whatever the length of the history."""
    return (check_positive_int("n_layers", n_layers) * check_positive_int("batch", batch)
            * check_positive_int("hidden", hidden) * check_positive_int("bytes_per_element", bytes_per_element))


def kv_cache_bytes(n_layers: int, d_model: int, length: int, *, batch: int = 1, bytes_per_element: int = 4) -> int:
    """Bytes of a transformer's key/value cache after ``length`` tokens: one key and one
    value vector of width ``d_model`` per token, per layer, per sequence:
    ``2 * n_layers * batch * length * d_model * bytes_per_element``. Grows linearly in t."""
    return (2 * check_positive_int("n_layers", n_layers) * check_positive_int("batch", batch)
            * check_positive_int("length", length) * check_positive_int("d_model", d_model)
            * check_positive_int("bytes_per_element", bytes_per_element))


def _gru_dims(model: GRUSequenceModel) -> tuple[int, int, int, int]:
    if not isinstance(model, GRUSequenceModel):
        raise ValueError(f"model must be a GRUSequenceModel, got {type(model).__name__}")
    return model.gru.input_size, model.hidden, model.layers, model.head.out_features


def _transformer_dims(model: CausalTransformer) -> tuple[int, int, int, int, int]:
    if not isinstance(model, CausalTransformer):
        raise ValueError(f"model must be a CausalTransformer, got {type(model).__name__}")
    layer = model.blocks.layers[0]
    return (model.embed.in_features, model.embed.out_features, len(model.blocks.layers),
            layer.linear1.out_features, model.head.out_features)


def recurrent_step_macs(model: GRUSequenceModel, length: int = 1) -> int:
    """Multiply-adds of one GRU step (per sequence): three gates, each an input and a
    hidden matrix product, per layer, then the output head. ``length`` is accepted to
    make the point: it does not appear in the formula."""
    check_positive_int("length", length)
    in_dim, h, n_layers, out = _gru_dims(model)
    total = 3 * (in_dim * h + h * h) + (n_layers - 1) * 3 * (h * h + h * h)
    return total + h * out


def attention_step_macs(model: CausalTransformer, length: int, *, cached: bool = True) -> int:
    """Multiply-adds (per sequence) of generating one output when the history holds
    ``length`` tokens (the current one included).

    ``cached=True`` (key/value cache): per layer, the new token's query/key/value and output
    projections (4 d^2), the feed-forward block (2 d f), and attention scores plus the
    weighted sum over all ``length`` cached positions (2 t d): linear in t.
    ``cached=False`` (recompute the whole history at every step, as a model without any
    carried state must): the full causal forward pass over t tokens, quadratic in t."""
    t = check_positive_int("length", length)
    in_dim, d, n_layers, ff, out = _transformer_dims(model)
    per_token = 4 * d * d + 2 * d * ff
    if cached:
        return in_dim * d + n_layers * (per_token + 2 * t * d) + d * out
    attention = t * (t + 1) * d  # sum over positions i = 1..t of 2 * i * d
    return t * in_dim * d + n_layers * (t * per_token + attention) + d * out


def step_cost_table(gru: GRUSequenceModel, transformer: CausalTransformer, lengths: Sequence[int], *,
                    batch: int = 1, bytes_per_element: int = 4) -> dict:
    """Analytic per-step cost at each history length: state/cache bytes (for ``batch``
    sequences) and multiply-adds per sequence, for the GRU, the cached transformer and the
    transformer recomputing its history. Returns lists keyed by name, plus ``lengths``."""
    lengths = _check_lengths("lengths", lengths)
    _, h, gl, _ = _gru_dims(gru)
    in_dim, d, tl, _, _ = _transformer_dims(transformer)
    return {
        "lengths": lengths,
        "gru_bytes": [recurrent_state_bytes(gl, h, batch=batch, bytes_per_element=bytes_per_element)
                      for _ in lengths],
        "cache_bytes": [kv_cache_bytes(tl, d, t, batch=batch, bytes_per_element=bytes_per_element)
                        for t in lengths],
        "history_bytes": [check_positive_int("batch", batch) * t * in_dim * bytes_per_element for t in lengths],
        "gru_macs": [recurrent_step_macs(gru, t) for t in lengths],
        "cached_macs": [attention_step_macs(transformer, t, cached=True) for t in lengths],
        "recompute_macs": [attention_step_macs(transformer, t, cached=False) for t in lengths],
    }


# ------------------------------------------------------- cached transformer decoding
class KVCache:
    """Per-layer keys and values of the tokens seen so far, for incremental decoding of a
    ``CausalTransformer``: tensors [n_layers, batch, capacity, d_model] and a fill
    ``length``. Capacity doubles when full, so decoding can run to any length."""

    def __init__(self, model: CausalTransformer, batch: int, *, capacity: int = 64,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        _, d, n_layers, _, _ = _transformer_dims(model)
        batch = check_positive_int("batch", batch)
        capacity = check_positive_int("capacity", capacity)
        device = check_device("device", device)
        self.k = torch.zeros(n_layers, batch, capacity, d, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.length = 0

    @classmethod
    def of_length(cls, model: CausalTransformer, batch: int, length: int, *, spare: int = 1,
                  device: torch.device | str = "cpu") -> "KVCache":
        """A cache already holding ``length`` (zero) entries, with room for ``spare`` more:
        for timing a step at a given history length without paying to build the history
        (the cost of a step does not depend on the cached values)."""
        length = check_positive_int("length", length, minimum=0)
        device = check_device("device", device)
        cache = cls(model, batch, capacity=length + check_positive_int("spare", spare), device=device)
        cache.length = length
        return cache

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def nbytes(self) -> int:
        """Bytes of the filled part of the cache (keys and values)."""
        return 2 * self.k[:, :, :self.length].numel() * self.k.element_size()

    def _grow(self) -> None:
        self.k = torch.cat([self.k, torch.zeros_like(self.k)], 2)
        self.v = torch.cat([self.v, torch.zeros_like(self.v)], 2)


@torch.no_grad()
def transformer_decode_step(model: CausalTransformer, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """One step of incremental inference: feed token ``x`` [B, in_dim], append its keys and
    values to ``cache``, attend over everything cached, return the output [B, out_dim].

    Running it over a sequence reproduces ``model(sequence)`` exactly (see
    ``transformer_stepwise``); each step reads the whole cache, so its cost grows with t."""
    in_dim, d, n_layers, _, _ = _transformer_dims(model)
    if x.dim() != 2 or x.shape[1] != in_dim:
        raise ValueError(f"x must have shape [batch, {in_dim}], got {tuple(x.shape)}")
    if x.shape[0] != cache.k.shape[1]:
        raise ValueError(f"x has batch {x.shape[0]} but the cache holds batch {cache.k.shape[1]}")
    t = cache.length
    if model.pos is not None and t >= model.max_len:
        raise ValueError(f"position {t} exceeds max_len={model.max_len}; use positional='none' to decode further")
    if t >= cache.capacity:
        cache._grow()
    h = model.embed(x)
    if model.pos is not None:
        h = h + model.pos[t]
    batch = x.shape[0]
    for i, layer in enumerate(model.blocks.layers):
        attn: nn.MultiheadAttention = layer.self_attn
        n_heads, dh = attn.num_heads, d // attn.num_heads
        q, k, v = F.linear(layer.norm1(h), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
        cache.k[i, :, t], cache.v[i, :, t] = k, v
        keys = cache.k[i, :, :t + 1].view(batch, t + 1, n_heads, dh).transpose(1, 2)    # [B, H, t+1, dh]
        vals = cache.v[i, :, :t + 1].view(batch, t + 1, n_heads, dh).transpose(1, 2)
        scores = (keys @ q.view(batch, n_heads, dh, 1)).squeeze(-1) / math.sqrt(dh)    # [B, H, t+1]
        mixed = (scores.softmax(-1).unsqueeze(-2) @ vals).reshape(batch, d)
        h = h + attn.out_proj(mixed)
        h = h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))
    cache.length = t + 1
    return model.head(model.norm(h))


@torch.no_grad()
def transformer_stepwise(model: CausalTransformer, x: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
    """Run ``model`` over ``x`` [B, T, in_dim] one token at a time with a key/value cache;
    returns the outputs [B, T, out_dim] (equal to ``model(x)``) and the filled cache."""
    if x.dim() != 3:
        raise ValueError(f"x must have shape [batch, time, features], got {tuple(x.shape)}")
    cache = KVCache(model, x.shape[0], capacity=x.shape[1], device=x.device, dtype=x.dtype)
    outs = [transformer_decode_step(model, x[:, s], cache) for s in range(x.shape[1])]
    return torch.stack(outs, 1), cache


# ------------------------------------------------------------ measured step costs
@torch.no_grad()
def measure_step_time(model: nn.Module, lengths: Sequence[int], *, batch: int = 1, repeats: int = 20,
                      warmup: int = 3, seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """Wall-clock seconds for one generated step after a history of each length in
    ``lengths`` (median of ``repeats``), and the bytes the model carries between steps.

    A ``GRUSequenceModel`` steps from a state of fixed size; a ``CausalTransformer`` steps
    with a key/value cache already holding ``t - 1`` entries (zeros: the cost does not
    depend on the values), so each timed step attends over t positions.
    Returns ``{"lengths", "seconds", "state_bytes"}`` (lists)."""
    lengths = _check_lengths("lengths", lengths)
    batch = check_positive_int("batch", batch)
    repeats = check_positive_int("repeats", repeats)
    warmup = check_positive_int("warmup", warmup, minimum=0)
    if not isinstance(model, (GRUSequenceModel, CausalTransformer)):
        raise ValueError(f"model must be a GRUSequenceModel or a CausalTransformer, got {type(model).__name__}")
    device = check_device("device", device)
    model = model.to(device).eval()
    gen = make_generator(seed)
    in_dim = model.gru.input_size if isinstance(model, GRUSequenceModel) else model.embed.in_features
    x = torch.randn(batch, in_dim, generator=gen).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    seconds, state_bytes = [], []
    for t in lengths:
        if isinstance(model, GRUSequenceModel):
            state = torch.randn(model.layers, batch, model.hidden, generator=gen).to(device)

            def one_step():
                return model.step(x, state)[1]
        else:
            cache = KVCache.of_length(model, batch, t - 1, device=device)

            def one_step():
                transformer_decode_step(model, x, cache)
                cache.length = t - 1  # rewind, so every timed step sees the same history length
                return cache
        times = []
        for r in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            carried = one_step()
            sync()
            if r >= warmup:
                times.append(time.perf_counter() - start)
        seconds.append(statistics.median(times))
        if isinstance(carried, KVCache):
            carried.length = t
            state_bytes.append(carried.nbytes())
        else:
            state_bytes.append(carried.numel() * carried.element_size())
    return {"lengths": lengths, "seconds": seconds, "state_bytes": state_bytes}


# ------------------------------------------- several training seeds as one program
def _check_seeds(seeds) -> list[int]:
    try:
        values = list(seeds)
    except TypeError:
        raise ValueError(f"seeds must be a non-empty sequence of integers >= 0, got {seeds!r}") from None
    if not values:
        raise ValueError(f"seeds must be a non-empty sequence of integers >= 0, got {seeds!r}")
    return [check_positive_int("seeds[i]", s, minimum=0) for s in values]


def _stack_members(factory, seeds: list[int]) -> tuple[nn.ParameterDict, list[str]]:
    """Build ``factory()`` after ``torch.manual_seed(s)`` for every seed and stack each
    parameter along a new leading member dimension."""
    members = []
    for s in seeds:
        torch.manual_seed(s)
        members.append(factory())
    names = [n for n, _ in members[0].named_parameters()]
    params = nn.ParameterDict({n.replace(".", "__"): nn.Parameter(torch.stack(
        [dict(m.named_parameters())[n].detach() for m in members])) for n in names})
    return params, names


def _check_member_input(x: torch.Tensor, n_members: int, in_dim: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != n_members or x.shape[-1] != in_dim:
        raise ValueError(f"x must have shape [members={n_members}, batch, time, {in_dim}], "
                         f"got {tuple(getattr(x, 'shape', ()))}")


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-member ``nn.Linear``: ``x`` [E, N, in], ``weight`` [E, out, in], ``bias`` [E, out]."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class GRUEnsemble(nn.Module):
    """E one-layer ``GRUSequenceModel``s with their own weights, run as one program.

    Member ``i`` starts from exactly the weights ``GRUSequenceModel(in_dim, hidden,
    out_dim)`` gets after ``torch.manual_seed(seeds[i])``; its parameters are a slice of
    a leading member dimension, so its gradients (and Adam's state) are its own. The
    recurrence is written out with batched matrix products (``nn.GRU`` has no batched
    form over weights), with PyTorch's GRU equations {Cho et al. 2014}.

    ``forward(x)``: ``x`` [E, B, T, in_dim] (one batch per member) -> [E, B, T, out_dim].
    ``member(i)`` returns a plain ``GRUSequenceModel`` with member i's current weights.
    Raises ValueError for a bad size, an empty ``seeds``, or a wrongly shaped ``x``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, seeds: Sequence[int]):
        super().__init__()
        self.in_dim = check_positive_int("in_dim", in_dim)
        self.hidden = check_positive_int("hidden", hidden)
        self.out_dim = check_positive_int("out_dim", out_dim)
        self.seeds = _check_seeds(seeds)
        self.params, self._names = _stack_members(
            lambda: GRUSequenceModel(self.in_dim, self.hidden, self.out_dim), self.seeds)

    def __len__(self) -> int:
        return len(self.seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_member_input(x, len(self), self.in_dim)
        p = self.params
        e, b, t, _ = x.shape
        h = self.hidden
        gates_in = _linear(x.reshape(e, b * t, -1), p["gru__weight_ih_l0"], p["gru__bias_ih_l0"])
        gates_in = gates_in.view(e, b, t, 3 * h)
        w_hh, b_hh = p["gru__weight_hh_l0"].transpose(1, 2), p["gru__bias_hh_l0"].unsqueeze(1)
        state = x.new_zeros(e, b, h)
        outs = []
        for s in range(t):
            gh = torch.baddbmm(b_hh, state, w_hh)
            i_r, i_z, i_n = gates_in[:, :, s].chunk(3, -1)
            h_r, h_z, h_n = gh.chunk(3, -1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            state = n + z * (state - n)          # = (1 - z) n + z h
            outs.append(state)
        hs = torch.stack(outs, 2).view(e, b * t, h)
        return _linear(hs, p["head__weight"], p["head__bias"]).view(e, b, t, self.out_dim)

    def member(self, i: int) -> GRUSequenceModel:
        """Member ``i`` as a plain ``GRUSequenceModel`` (a copy of its current weights)."""
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self):
            raise ValueError(f"i must be an integer in [0, {len(self) - 1}], got {i!r}")
        model = GRUSequenceModel(self.in_dim, self.hidden, self.out_dim)
        model.load_state_dict({n: self.params[n.replace(".", "__")][i].detach().clone() for n in self._names})
        return model.to(self.params["head__bias"].device).eval()


class TransformerEnsemble(nn.Module):
    """E ``CausalTransformer``s (``positional="none"``) with their own weights, run as one
    program: the same pre-norm blocks as ``nn.TransformerEncoderLayer(norm_first=True)``
    (causal self-attention, then a ReLU feed-forward of width 4 d, each with a residual),
    written with batched matrix products over a leading member dimension {Vaswani et al.
    2017}.

    Member ``i`` starts from exactly the weights ``CausalTransformer(in_dim, out_dim,
    d_model=..., n_heads=..., n_layers=..., positional="none")`` gets after
    ``torch.manual_seed(seeds[i])``. ``forward(x)``: ``x`` [E, B, T, in_dim] ->
    [E, B, T, out_dim]. ``member(i)`` returns that plain ``CausalTransformer``.
    Raises ValueError for a bad size, an empty ``seeds``, or a wrongly shaped ``x``."""

    def __init__(self, in_dim: int, out_dim: int, seeds: Sequence[int], *, d_model: int = 32,
                 n_heads: int = 2, n_layers: int = 2):
        super().__init__()
        self.in_dim = check_positive_int("in_dim", in_dim)
        self.out_dim = check_positive_int("out_dim", out_dim)
        self.d_model = check_positive_int("d_model", d_model)
        self.n_heads = check_positive_int("n_heads", n_heads)
        self.n_layers = check_positive_int("n_layers", n_layers)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.seeds = _check_seeds(seeds)
        self.params, self._names = _stack_members(self._plain, self.seeds)

    def _plain(self) -> CausalTransformer:
        return CausalTransformer(self.in_dim, self.out_dim, d_model=self.d_model, n_heads=self.n_heads,
                                 n_layers=self.n_layers, positional="none")

    def __len__(self) -> int:
        return len(self.seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_member_input(x, len(self), self.in_dim)
        p = self.params
        e, b, t, _ = x.shape
        d, n_heads = self.d_model, self.n_heads
        dh = d // n_heads

        def norm(y, name):
            return F.layer_norm(y, (d,), eps=1e-5) * p[f"{name}__weight"].unsqueeze(1) \
                + p[f"{name}__bias"].unsqueeze(1)

        h = _linear(x.reshape(e, b * t, -1), p["embed__weight"], p["embed__bias"])      # [E, B*T, d]
        for i in range(self.n_layers):
            pre = f"blocks__layers__{i}__"
            qkv = _linear(norm(h, pre + "norm1"), p[pre + "self_attn__in_proj_weight"],
                          p[pre + "self_attn__in_proj_bias"])
            q, k, v = qkv.view(e * b, t, 3, n_heads, dh).permute(2, 0, 3, 1, 4)         # [E*B, H, T, dh]
            mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            mixed = mixed.permute(0, 2, 1, 3).reshape(e, b * t, d)
            h = h + _linear(mixed, p[pre + "self_attn__out_proj__weight"], p[pre + "self_attn__out_proj__bias"])
            ff = torch.relu(_linear(norm(h, pre + "norm2"), p[pre + "linear1__weight"], p[pre + "linear1__bias"]))
            h = h + _linear(ff, p[pre + "linear2__weight"], p[pre + "linear2__bias"])
        out = _linear(norm(h, "norm"), p["head__weight"], p["head__bias"])
        return out.view(e, b, t, self.out_dim)

    def member(self, i: int) -> CausalTransformer:
        """Member ``i`` as a plain ``CausalTransformer`` (a copy of its current weights)."""
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self):
            raise ValueError(f"i must be an integer in [0, {len(self) - 1}], got {i!r}")
        model = self._plain()
        model.load_state_dict({n: self.params[n.replace(".", "__")][i].detach().clone() for n in self._names})
        return model.to(self.params["head__bias"].device).eval()


def train_ensemble(model: GRUEnsemble | TransformerEnsemble, make_batch, loss_fn, *, steps: int,
                   lr: float = 1e-3, seed: int = 0, device: torch.device | str = "cpu",
                   clip_grad: float | None = 1.0, schedule: str = "constant",
                   checkpoints: Sequence[int] = (), evaluate=None, desc: str = "training") -> dict:
    """Train every member of ``model`` with Adam on freshly drawn batches, as one program.

    ``make_batch(generator)`` returns ``(inputs [E, B, ...], targets [E, B, ...])`` drawn
    from the seeded generator (each member gets its own slice of data); ``loss_fn(outputs,
    targets)`` returns one loss per member, shape [E]. Their sum is minimized, so each
    member's gradient is that of its own loss; gradients are clipped to norm ``clip_grad``
    per member. ``schedule="constant"`` keeps the learning rate fixed, so the model after
    step s is the same whatever the total ``steps`` (a curve over checkpoints of one run
    is a curve over training budgets); ``"cosine"`` decays it to 0 at ``steps``.
    ``evaluate(model)`` (under ``torch.no_grad``) is called after each step listed in
    ``checkpoints`` (integers in [1, steps]) and should return a tensor.

    Returns ``{"losses": [steps, E] tensor, "checkpoints": sorted list, "evaluations":
    tensor stacked over checkpoints}`` (``evaluations`` is None without checkpoints).
    Raises ValueError naming a bad argument."""
    if not isinstance(model, (GRUEnsemble, TransformerEnsemble)):
        raise ValueError(f"model must be a GRUEnsemble or a TransformerEnsemble, got {type(model).__name__}")
    steps = check_positive_int("steps", steps)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    seed = check_positive_int("seed", seed, minimum=0)
    device = check_device("device", device)
    if clip_grad is not None and (isinstance(clip_grad, bool) or not isinstance(clip_grad, (int, float))
                                  or not clip_grad > 0):
        raise ValueError(f"clip_grad must be a positive number or None, got {clip_grad!r}")
    check_choice("schedule", schedule, ("constant", "cosine"))
    try:
        marks = sorted({int(c) for c in checkpoints})
    except (TypeError, ValueError):
        raise ValueError(f"checkpoints must be integers in [1, {steps}], got {checkpoints!r}") from None
    if marks and (marks[0] < 1 or marks[-1] > steps):
        raise ValueError(f"checkpoints must be integers in [1, {steps}], got {checkpoints!r}")
    if marks and not callable(evaluate):
        raise ValueError("evaluate must be a function of the model when checkpoints are given")
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = None
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    losses, evaluations, todo = [], [], set(marks)
    for step in progress(range(1, steps + 1), desc=desc):
        x, y = make_batch(gen)
        loss = loss_fn(model(x.to(device)), y.to(device))
        if loss.dim() != 1 or loss.shape[0] != len(model):
            raise ValueError(f"loss_fn must return one loss per member, shape [{len(model)}], "
                             f"got {tuple(loss.shape)}")
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        if clip_grad:
            clip_grad_norm_per_member_(model, clip_grad)
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.detach().cpu())
        if step in todo:
            model.eval()
            with torch.no_grad():
                evaluations.append(torch.as_tensor(evaluate(model)).detach().cpu())
            model.train()
    model.eval()
    return {"losses": torch.stack(losses), "checkpoints": marks,
            "evaluations": torch.stack(evaluations) if evaluations else None}


def recall_accuracy_per_member(logits: torch.Tensor, batch: RecallBatch) -> torch.Tensor:
    """Recall accuracy of each member of an ensemble on one ``RecallBatch`` (the same
    sequences for every member). ``logits`` [E, B, T or n_queries, n_values]; returns [E]."""
    n_q = batch.targets.shape[1]
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4 or logits.shape[1] != batch.targets.shape[0] \
            or logits.shape[2] not in (n_q, batch.inputs.shape[1]):
        raise ValueError(f"logits must be [members, {batch.targets.shape[0]}, {batch.inputs.shape[1]} or {n_q}, "
                         f"n_values], got {tuple(getattr(logits, 'shape', ()))}")
    return (logits[:, :, -n_q:].argmax(-1) == batch.targets.unsqueeze(0)).float().mean((1, 2))


def steps_to_reach(curve: torch.Tensor, checkpoints: Sequence[int], threshold: float) -> list[float]:
    """The first checkpoint at which each column of ``curve`` [C, E] (a score per
    checkpoint and member) reaches ``threshold`` and stays at or above it for the rest of
    the run; ``math.inf`` for a member that never does. Returns a list of E numbers."""
    checkpoints = [check_positive_int("checkpoints", c) for c in checkpoints]
    if not isinstance(curve, torch.Tensor) or curve.dim() != 2 or curve.shape[0] != len(checkpoints):
        raise ValueError(f"curve must be [len(checkpoints)={len(checkpoints)}, members], "
                         f"got {tuple(getattr(curve, 'shape', ()))}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    result = []
    for column in curve.T.tolist():
        first = math.inf
        for c, value in zip(reversed(checkpoints), reversed(column)):
            if value < threshold:
                break
            first = c
        result.append(first)
    return result
