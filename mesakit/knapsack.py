"""0/1 knapsack: random instances, the exact algorithm, a heuristic, and a network that
imitates the exact algorithm.

Chapter 1, Lesson 2 ("Heuristics, not clean search") tests a falsifiable prediction of
the "messy heuristics" essay: a network trained to imitate the exact knapsack solution
(dynamic programming) should end up behaving like a stack of heuristics, such as taking
items by value density, rather than running the dynamic program.

Conventions, used by every function here:

* A batch of ``B`` instances with ``n`` items each is three tensors on one device:
  ``values`` ``[B, n]`` (non-negative numbers; integers from :func:`random_instances`),
  ``weights`` ``[B, n]`` (positive integers, so the DP over capacities is exact) and
  ``capacity`` ``[B]`` (non-negative integers).
* A solution is a ``chosen`` bool tensor ``[B, n]``: ``chosen[b, i]`` is True when
  instance ``b`` puts item ``i`` in the knapsack.
* Nothing loops over instances in Python: loops run over items (DP stages) only.

The network (:class:`KnapsackNet`) has a fixed depth and lets each item see only pooled
summaries of the others, so it cannot run the DP; the lesson asks which heuristic it
resembles. :func:`dp_with_random_mistakes` is the control for that question: an imitator
of the DP that errs at random, as often as a given learner, so that a mistake metric can
be read against what chance mistakes score.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .core import check_device, check_in_range, check_positive_int, make_generator, progress

__all__ = [
    "random_instances",
    "solve_dp",
    "greedy_by_density",
    "brute_force",
    "total_value",
    "total_weight",
    "is_feasible",
    "value_ratio",
    "item_features",
    "KnapsackNet",
    "train_imitation",
    "predict_scores",
    "decode_by_score",
    "same_set",
    "item_agreement",
    "sides_with",
    "train_imitation_ensemble",
    "flip_at_random",
    "noisy_dp_scores",
    "dp_with_random_mistakes",
]


# ----------------------------------------------------------------------------- checks


def _check_instances(values, weights, capacity) -> None:
    """Raise ValueError naming the argument unless (values, weights, capacity) is a
    well-formed batch of knapsack instances (see the module docstring)."""
    for name, t in (("values", values), ("weights", weights), ("capacity", capacity)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if values.dim() != 2:
        raise ValueError(f"values must have shape [B, n], got {tuple(values.shape)}")
    if weights.shape != values.shape:
        raise ValueError(
            f"weights must have the same shape as values {tuple(values.shape)}, "
            f"got {tuple(weights.shape)}"
        )
    if capacity.shape != values.shape[:1]:
        raise ValueError(
            f"capacity must have shape [B] = {tuple(values.shape[:1])}, got {tuple(capacity.shape)}"
        )
    if values.shape[1] < 1:
        raise ValueError("values must have at least one item (shape [B, n] with n >= 1)")
    if weights.is_floating_point() or weights.dtype == torch.bool or weights.is_complex():
        raise ValueError(f"weights must be an integer tensor, got dtype {weights.dtype}")
    if capacity.is_floating_point() or capacity.dtype == torch.bool or capacity.is_complex():
        raise ValueError(f"capacity must be an integer tensor, got dtype {capacity.dtype}")
    if values.dtype == torch.bool or values.is_complex():
        raise ValueError(f"values must be a real number tensor, got dtype {values.dtype}")
    if not (weights.device == values.device == capacity.device):
        raise ValueError(
            f"values, weights and capacity must be on one device, got {values.device}, "
            f"{weights.device}, {capacity.device}"
        )
    if values.numel() and (values < 0).any():
        raise ValueError("values must be non-negative")
    if values.is_floating_point() and values.numel() and not torch.isfinite(values).all():
        raise ValueError("values must be finite")
    if weights.numel() and (weights < 1).any():
        raise ValueError("weights must be positive integers (>= 1)")
    if capacity.numel() and (capacity < 0).any():
        raise ValueError("capacity must be non-negative")


def _check_chosen(name: str, chosen, like: torch.Tensor) -> None:
    if not isinstance(chosen, torch.Tensor) or chosen.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor of shape {tuple(like.shape)}")
    if chosen.shape != like.shape:
        raise ValueError(f"{name} must have shape {tuple(like.shape)}, got {tuple(chosen.shape)}")


def _value_dtype(values: torch.Tensor) -> torch.dtype:
    return torch.float64 if values.is_floating_point() else torch.int64


# -------------------------------------------------------------------------- instances


def random_instances(
    n_instances: int,
    n_items: int,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    max_value: int = 100,
    max_weight: int = 20,
    capacity_fraction: Sequence[float] = (0.25, 0.5),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``n_instances`` random 0/1 knapsack instances with ``n_items`` items each.

    Values are integers uniform in ``1..max_value``, weights integers uniform in
    ``1..max_weight`` (independent of the values: "uncorrelated" instances), and each
    capacity is a fraction, uniform in ``capacity_fraction = (low, high)``, of that
    instance's total weight (rounded down, at least 1). Scaling the capacity with the
    total weight keeps instances of different sizes comparable: about the same share of
    the items fits whatever ``n_items`` is.

    Returns ``(values, weights, capacity)``: int64 tensors of shapes ``[B, n]``,
    ``[B, n]`` and ``[B]`` on ``device``. The same ``seed`` gives the same instances on
    any device (they are drawn on the CPU, then moved).

    Raises ValueError naming the argument for a non-positive count or maximum, a bad
    ``capacity_fraction`` or ``seed``, or a ``device`` that is not one (or CUDA where
    there is none; see :func:`mesakit.check_device`).
    """
    device = check_device("device", device)
    n_instances = check_positive_int("n_instances", n_instances)
    n_items = check_positive_int("n_items", n_items)
    max_value = check_positive_int("max_value", max_value)
    max_weight = check_positive_int("max_weight", max_weight)
    if not isinstance(capacity_fraction, (tuple, list)) or len(capacity_fraction) != 2:
        raise ValueError(
            f"capacity_fraction must be a pair (low, high), got {capacity_fraction!r}"
        )
    lo = check_in_range("capacity_fraction", capacity_fraction[0], 0.0, 1.0)
    hi = check_in_range("capacity_fraction", capacity_fraction[1], 0.0, 1.0)
    if lo > hi:
        raise ValueError(f"capacity_fraction must have low <= high, got {capacity_fraction!r}")
    gen = make_generator(seed)
    values = torch.randint(1, max_value + 1, (n_instances, n_items), generator=gen)
    weights = torch.randint(1, max_weight + 1, (n_instances, n_items), generator=gen)
    frac = lo + (hi - lo) * torch.rand(n_instances, generator=gen, dtype=torch.float64)
    capacity = torch.floor(frac * weights.sum(1).double()).long().clamp_min(1)
    return values.to(device), weights.to(device), capacity.to(device)


# ------------------------------------------------------------------ exact algorithms


def solve_dp(
    values: torch.Tensor, weights: torch.Tensor, capacity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve a batch of 0/1 knapsack instances exactly by dynamic programming.

    Arguments: ``values`` ``[B, n]`` (non-negative), ``weights`` ``[B, n]`` (integers
    >= 1), ``capacity`` ``[B]`` (integers >= 0), all on one device.

    Returns ``(chosen, best)``: ``chosen`` is a bool tensor ``[B, n]``, an optimal set of
    items (its total weight is at most the capacity and its total value is the largest
    possible); ``best`` ``[B]`` is that optimal total value (int64 for integer values,
    float64 otherwise).

    The algorithm: ``best_i[c]``, the best value using items ``0..i`` with capacity
    ``c``, is ``max(best_{i-1}[c], best_{i-1}[c - w_i] + v_i)``; one stage per item,
    every instance and every capacity at once. Backtracking from the last item recovers
    the set. Ties: an item is taken only when taking it is *strictly* better, so among
    several optimal sets the one returned leaves out the highest-index items it can: it
    is the optimal set whose bitmask ``sum_i chosen[i] * 2**i`` is smallest (what
    :func:`brute_force` returns too). Time and memory grow as ``B * n * max(capacity)``.
    """
    _check_instances(values, weights, capacity)
    B, n = values.shape
    device = values.device
    vals = values.to(_value_dtype(values))
    w = weights.long()
    cap = capacity.long()
    c_max = int(cap.max().item()) if B else 0
    cs = torch.arange(c_max + 1, device=device)  # [C+1]
    best = torch.zeros(B, c_max + 1, dtype=vals.dtype, device=device)
    keep = torch.zeros(B, n, c_max + 1, dtype=torch.bool, device=device)
    for i in range(n):  # one DP stage per item
        src = cs.unsqueeze(0) - w[:, i : i + 1]  # [B, C+1] capacity left before item i
        fits = src >= 0
        cand = best.gather(1, src.clamp_min(0)) + vals[:, i : i + 1]
        take = fits & (cand > best)
        keep[:, i] = take
        best = torch.where(take, cand, best)
    rows = torch.arange(B, device=device)
    left = cap.clone()
    chosen = torch.zeros(B, n, dtype=torch.bool, device=device)
    for i in range(n - 1, -1, -1):  # backtrack
        t = keep[rows, i, left]
        chosen[:, i] = t
        left = left - torch.where(t, w[:, i], torch.zeros_like(left))
    return chosen, best[rows, cap]


def brute_force(
    values: torch.Tensor, weights: torch.Tensor, capacity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve small instances by trying all ``2**n`` subsets (``n <= 16``); a check on
    :func:`solve_dp`.

    Same arguments and return value as :func:`solve_dp`, and the same tie rule: among
    optimal sets it returns the one with the smallest bitmask ``sum_i chosen[i] * 2**i``
    (subsets are enumerated in increasing bitmask order and the first best one wins).
    """
    _check_instances(values, weights, capacity)
    B, n = values.shape
    if n > 16:
        raise ValueError(f"values must have at most 16 items for brute_force, got n = {n}")
    device = values.device
    masks = torch.arange(2**n, device=device)
    subsets = ((masks.unsqueeze(1) >> torch.arange(n, device=device)) & 1).bool()  # [M, n]
    sub = subsets.to(_value_dtype(values))
    tot_v = values.to(sub.dtype) @ sub.T  # [B, M]
    tot_w = weights.long() @ subsets.long().T  # [B, M]
    feasible = tot_w <= capacity.long().unsqueeze(1)
    neg = torch.tensor(-1, dtype=tot_v.dtype, device=device)
    score = torch.where(feasible, tot_v, neg)  # the empty set (mask 0) is always feasible
    best_mask = score.argmax(1)  # first maximum: the smallest optimal bitmask
    rows = torch.arange(B, device=device)
    return subsets[best_mask], score[rows, best_mask]


# ------------------------------------------------------------------------ heuristic


def greedy_by_density(
    values: torch.Tensor, weights: torch.Tensor, capacity: torch.Tensor
) -> torch.Tensor:
    """The value-density heuristic: sort items by ``value / weight``, highest first, and
    take each item that still fits in the remaining capacity.

    Same arguments as :func:`solve_dp`; returns ``chosen``, a bool tensor ``[B, n]``.
    Equal densities are taken in index order (a stable sort). It is fast and usually
    near-optimal, but not exact: with values (60, 100, 120), weights (10, 20, 30) and
    capacity 50 it takes items 0 and 1 (value 160) while the optimum is items 1 and 2
    (value 220).
    """
    _check_instances(values, weights, capacity)
    density = values.double() / weights.double()
    order = torch.sort(density, dim=1, descending=True, stable=True).indices
    return _pack_in_order(order, weights, capacity)


def _pack_in_order(order: torch.Tensor, weights: torch.Tensor, capacity: torch.Tensor):
    """Walk each instance's items in ``order`` ([B, n] item indices) and take every item
    that still fits. One loop step per position, all instances at once."""
    B, n = weights.shape
    w_sorted = weights.long().gather(1, order)
    left = capacity.long().clone()
    take_sorted = torch.zeros(B, n, dtype=torch.bool, device=weights.device)
    for k in range(n):
        t = w_sorted[:, k] <= left
        take_sorted[:, k] = t
        left = left - torch.where(t, w_sorted[:, k], torch.zeros_like(left))
    chosen = torch.zeros_like(take_sorted)
    chosen.scatter_(1, order, take_sorted)
    return chosen


# -------------------------------------------------------------------------- metrics


def total_value(values: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Total value ``[B]`` of the chosen items (int64 for integer values, else float64)."""
    _check_chosen("chosen", chosen, values)
    return (values.to(_value_dtype(values)) * chosen).sum(1)


def total_weight(weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Total weight ``[B]`` (int64) of the chosen items."""
    _check_chosen("chosen", chosen, weights)
    return (weights.long() * chosen).sum(1)


def is_feasible(
    weights: torch.Tensor, capacity: torch.Tensor, chosen: torch.Tensor
) -> torch.Tensor:
    """Bool ``[B]``: does each chosen set fit in its knapsack?"""
    _check_chosen("chosen", chosen, weights)
    return total_weight(weights, chosen) <= capacity.long()


def value_ratio(
    values: torch.Tensor, chosen: torch.Tensor, optimal_value: torch.Tensor
) -> torch.Tensor:
    """Per-instance ``[B]`` float64 ratio of the chosen set's value to the optimal value
    (1.0 is optimal; an instance whose optimum is 0 counts as 1.0). Feasibility is not
    checked here: use :func:`is_feasible`."""
    _check_chosen("chosen", chosen, values)
    if not isinstance(optimal_value, torch.Tensor) or optimal_value.shape != values.shape[:1]:
        raise ValueError(f"optimal_value must be a tensor of shape {tuple(values.shape[:1])}")
    got = total_value(values, chosen).double()
    opt = optimal_value.double()
    return torch.where(opt > 0, got / opt.clamp_min(1e-12), torch.ones_like(got))


def same_set(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Bool ``[B]``: do the two solutions choose exactly the same items?"""
    _check_chosen("a", a, a)
    _check_chosen("b", b, a)
    return (a == b).all(1)


def item_agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Float ``[B]``: the fraction of items on which the two solutions make the same
    take/leave decision (1.0 = same set)."""
    _check_chosen("a", a, a)
    _check_chosen("b", b, a)
    return (a == b).double().mean(1)


def sides_with(
    candidate: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Who does ``candidate`` side with where ``a`` and ``b`` disagree?

    Over the *disputed* items (those that exactly one of ``a`` and ``b`` takes), count
    how many ``candidate`` decides like ``a`` and how many like ``b``. Returns
    ``(agree_a, agree_b)``, int64 tensors ``[B]``; they sum to the number of disputed
    items of each instance. Summed over a batch, ``agree_a / (agree_a + agree_b)`` is the
    share of disputes that ``candidate`` settles ``a``'s way.
    """
    _check_chosen("candidate", candidate, candidate)
    _check_chosen("a", a, candidate)
    _check_chosen("b", b, candidate)
    disputed = a != b
    agree_a = (disputed & (candidate == a)).sum(1)
    agree_b = (disputed & (candidate == b)).sum(1)
    return agree_a, agree_b


# -------------------------------------------------------------------------- network


def item_features(
    values: torch.Tensor,
    weights: torch.Tensor,
    capacity: torch.Tensor,
    *,
    max_value: int = 100,
    max_weight: int = 20,
) -> torch.Tensor:
    """Per-item input features ``[B, n, 4]`` (float32) for :class:`KnapsackNet`:
    ``value / max_value``, ``weight / max_weight``, ``weight / capacity`` (the share of
    the knapsack the item would fill, clipped at 4) and ``capacity / total weight`` (the
    same for every item of an instance: how much of the whole pile fits).

    The value density ``value / weight`` is deliberately *not* a feature: if the network
    uses it, it has to compute it."""
    _check_instances(values, weights, capacity)
    v = values.float() / max_value
    w = weights.float() / max_weight
    cap = capacity.float().clamp_min(1.0).unsqueeze(1)
    share = weights.float() / cap
    room = (capacity.float() / weights.float().sum(1)).unsqueeze(1).expand_as(v)
    return torch.stack([v, w, share.clamp_max(4.0), room], dim=-1)


class _EquivariantBlock(nn.Module):
    """One residual block: every item updates its vector from itself and from the mean
    and max over all items of the instance (permutation-equivariant)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.item = nn.Linear(hidden, hidden)
        self.context = nn.Linear(2 * hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # Equal to one linear layer on [item, mean, max], but the pooled part is computed
        # once per instance instead of once per item.
        pooled = torch.cat([h.mean(1), h.amax(1)], dim=-1)  # [B, 2H]
        z = torch.relu(self.item(h) + self.context(pooled).unsqueeze(1))
        return self.norm(h + self.out(z))


class KnapsackNet(nn.Module):
    """A permutation-equivariant network that scores each item of an instance.

    An MLP embeds each item's features (:func:`item_features`); ``n_blocks`` residual
    blocks then let every item see pooled summaries (mean and max) of all items of its
    instance; a linear head gives one logit per item ("take it?"). Nothing depends on the
    number of items or their order, so one network runs on instances of any size.
    """

    def __init__(self, hidden: int = 64, n_blocks: int = 3, n_features: int = 4):
        super().__init__()
        hidden = check_positive_int("hidden", hidden)
        n_blocks = check_positive_int("n_blocks", n_blocks, minimum=0)
        self.embed = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden)
        )
        self.blocks = nn.ModuleList(_EquivariantBlock(hidden) for _ in range(n_blocks))
        self.head = nn.Linear(hidden, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` ``[B, n, F]`` -> logits ``[B, n]``."""
        h = self.embed(features)
        for block in self.blocks:
            h = block(h)
        return self.head(h).squeeze(-1)


def train_imitation(
    *,
    n_items: int = 10,
    steps: int = 1500,
    batch_size: int = 256,
    hidden: int = 64,
    n_blocks: int = 3,
    lr: float = 2e-3,
    seed: int,
    device: torch.device | str = "cpu",
    max_value: int = 100,
    max_weight: int = 20,
    capacity_fraction: Sequence[float] = (0.25, 0.5),
) -> tuple[KnapsackNet, list[float]]:
    """Train a :class:`KnapsackNet` to imitate the DP: supervised, binary cross-entropy
    between each item's logit and whether :func:`solve_dp` takes it.

    Every step draws a fresh batch of ``batch_size`` random instances with ``n_items``
    items (seeded from ``seed`` and the step number) and labels it with the DP, so the
    network never sees the same instance twice. Adam with a cosine-decayed learning rate.
    Deterministic: the same arguments on the same machine give the same network.

    Returns ``(net, losses)``: the trained network (in eval mode) and the loss per step.
    """
    n_items = check_positive_int("n_items", n_items)
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (
        lr > 0 and math.isfinite(lr)
    ):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    device = check_device("device", device)
    make_generator(seed)  # validates seed (a non-negative integer)
    torch.manual_seed(seed)  # the initial weights
    net = KnapsackNet(hidden=hidden, n_blocks=n_blocks).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.BCEWithLogitsLoss()
    losses: list[float] = []
    net.train()
    bar = progress(range(steps), desc="imitating the DP")
    for step in bar:
        v, w, c = random_instances(
            batch_size, n_items, seed=seed * 1_000_003 + step + 1, device=device,
            max_value=max_value, max_weight=max_weight, capacity_fraction=capacity_fraction,
        )
        target, _ = solve_dp(v, w, c)
        logits = net(item_features(v, w, c, max_value=max_value, max_weight=max_weight))
        loss = loss_fn(logits, target.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    net.eval()
    return net, losses


@torch.no_grad()
def predict_scores(
    net: KnapsackNet,
    values: torch.Tensor,
    weights: torch.Tensor,
    capacity: torch.Tensor,
    *,
    max_value: int = 100,
    max_weight: int = 20,
) -> torch.Tensor:
    """The network's probability ``[B, n]`` that each item belongs to the optimal set."""
    feats = item_features(values, weights, capacity, max_value=max_value, max_weight=max_weight)
    return torch.sigmoid(net(feats))


def decode_by_score(
    scores: torch.Tensor, weights: torch.Tensor, capacity: torch.Tensor
) -> torch.Tensor:
    """Turn per-item scores ``[B, n]`` into a feasible set: go through the items from the
    highest score down and take each one that still fits (ties in index order).

    Note that this decoding is itself a greedy packing; only the ordering comes from the
    network. With ``scores = values / weights`` it is exactly :func:`greedy_by_density`.
    """
    if not isinstance(scores, torch.Tensor) or scores.shape != weights.shape:
        raise ValueError(f"scores must be a tensor of shape {tuple(weights.shape)}")
    _check_instances(torch.zeros_like(weights), weights, capacity)
    order = torch.sort(scores.double(), dim=1, descending=True, stable=True).indices
    return _pack_in_order(order, weights, capacity)


# ------------------------------------------------------------ several seeds at once


def train_imitation_ensemble(
    *,
    seeds: Sequence[int],
    n_items: int = 10,
    steps: int = 1500,
    batch_size: int = 256,
    hidden: int = 64,
    n_blocks: int = 3,
    lr: float = 2e-3,
    device: torch.device | str = "cpu",
    max_value: int = 100,
    max_weight: int = 20,
    capacity_fraction: Sequence[float] = (0.25, 0.5),
    checkpoints: Sequence[int] = (),
) -> tuple[list[KnapsackNet], torch.Tensor, dict[int, list[KnapsackNet]]]:
    """:func:`train_imitation` for several training seeds at once, as one batched program
    (:class:`mesakit.ensembles.Ensemble`).

    Member ``i`` starts from the weights ``KnapsackNet(hidden, n_blocks)`` gets after
    ``torch.manual_seed(seeds[i])`` and sees the same stream of instances as
    ``train_imitation(seed=seeds[i])``, with its own Adam state and the same cosine
    schedule, so it is that network up to float rounding (a unit test checks it). The
    members' batches are labelled by one call of :func:`solve_dp` and run through one
    vectorized forward pass.

    ``checkpoints``: training steps (``1 <= k <= steps``) after which a copy of every
    member is kept, for curves against training time; the learning rate still follows
    the cosine schedule of the whole run.

    Returns ``(nets, losses, snapshots)``: the E trained networks (plain
    :class:`KnapsackNet` in eval mode, in the order of ``seeds``), the losses ``[steps,
    E]`` (float64) and ``{k: [E networks after step k]}``.

    Raises ValueError naming the argument for an empty ``seeds``, a negative or
    non-integer seed, a bad ``device`` or a checkpoint outside ``1..steps``.
    """
    from .ensembles import Ensemble

    device = check_device("device", device)
    seeds = list(seeds) if isinstance(seeds, (list, tuple, range)) else None
    if not seeds:
        raise ValueError("seeds must be a non-empty list of non-negative integers")
    for s in seeds:
        make_generator(s)  # validates each seed
    n_items = check_positive_int("n_items", n_items)
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (
        lr > 0 and math.isfinite(lr)
    ):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    checkpoints = sorted({check_positive_int("checkpoints", k) for k in checkpoints})
    if checkpoints and checkpoints[-1] > steps:
        raise ValueError(f"checkpoints must lie in 1..steps = 1..{steps}, got {checkpoints[-1]}")
    E = len(seeds)
    ens = Ensemble(lambda: KnapsackNet(hidden=hidden, n_blocks=n_blocks), seeds).to(device)
    opt = torch.optim.Adam(ens.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    losses = torch.zeros(steps, E, dtype=torch.float64)
    snapshots: dict[int, list[KnapsackNet]] = {}
    ens.train()
    bar = progress(range(steps), desc=f"imitating the DP ({E} seeds)")
    for step in bar:
        batches = [
            random_instances(
                batch_size, n_items, seed=s * 1_000_003 + step + 1, device=device,
                max_value=max_value, max_weight=max_weight, capacity_fraction=capacity_fraction,
            )
            for s in seeds
        ]
        v, w, c = (torch.cat(parts) for parts in zip(*batches))  # [E * B, n], [E * B]
        target, _ = solve_dp(v, w, c)
        feats = item_features(v, w, c, max_value=max_value, max_weight=max_weight)
        logits = ens(feats.view(E, batch_size, n_items, -1))  # [E, B, n]
        per_member = nn.functional.binary_cross_entropy_with_logits(
            logits, target.view(E, batch_size, n_items).float(), reduction="none"
        ).mean(dim=(1, 2))
        opt.zero_grad()
        per_member.sum().backward()  # each member's gradient is its own loss's
        opt.step()
        sched.step()
        losses[step] = per_member.detach().double().cpu()
        if step + 1 in checkpoints:
            snapshots[step + 1] = [_eval_copy(ens, i) for i in range(E)]
        if step % 100 == 0:
            bar.set_postfix(loss=f"{losses[step].mean().item():.3f}")
    return [_eval_copy(ens, i) for i in range(E)], losses, snapshots


def _eval_copy(ens, i: int) -> KnapsackNet:
    net = ens.member(i)
    net.eval()
    return net


# ---------------------------------------------------- control: DP with random mistakes


def flip_at_random(chosen: torch.Tensor, rate: float, *, seed: int) -> torch.Tensor:
    """Flip each take/leave decision of ``chosen`` (bool ``[B, n]``) independently with
    probability ``rate``; returns a new bool tensor ``[B, n]`` (not necessarily feasible).

    Applied to the DP's sets, this is the null for decisions read off a network's raw
    probabilities: an imitator of the DP whose item-level errors have nothing to do with
    any heuristic. Raises ValueError for a non-bool ``chosen``, a ``rate`` outside
    [0, 1] or a bad ``seed``."""
    _check_chosen("chosen", chosen, chosen)
    rate = check_in_range("rate", rate, 0.0, 1.0)
    gen = make_generator(seed)
    flips = torch.rand(chosen.shape, generator=gen, dtype=torch.float64) < rate
    return chosen ^ flips.to(chosen.device)


def noisy_dp_scores(dp_chosen: torch.Tensor, noise: float, *, seed: int) -> torch.Tensor:
    """The DP's answer as per-item scores with random errors: ``1`` for the items the DP
    takes, ``0`` for the others, plus independent Gaussian noise of standard deviation
    ``noise`` (float64 ``[B, n]``). Decoded with :func:`decode_by_score`, ``noise = 0``
    gives back an optimal set and larger noise gives more, random, mistakes.

    Raises ValueError for a non-bool ``dp_chosen``, a negative or non-finite ``noise`` or
    a bad ``seed``."""
    _check_chosen("dp_chosen", dp_chosen, dp_chosen)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (
        noise >= 0 and math.isfinite(noise)
    ):
        raise ValueError(f"noise must be a non-negative number, got {noise!r}")
    gen = make_generator(seed)
    z = torch.randn(dp_chosen.shape, generator=gen, dtype=torch.float64).to(dp_chosen.device)
    return dp_chosen.double() + noise * z


def dp_with_random_mistakes(
    values: torch.Tensor,
    weights: torch.Tensor,
    capacity: torch.Tensor,
    *,
    error_rate: float,
    seed: int,
    dp_chosen: torch.Tensor | None = None,
    best: torch.Tensor | None = None,
    iters: int = 40,
) -> tuple[torch.Tensor, float]:
    """A control imitator: the exact DP, but erring at random, as often as a given
    learner errs.

    It scores items with :func:`noisy_dp_scores` and decodes them with
    :func:`decode_by_score`, the decoder the network's scores go through, so its sets are
    feasible and its mistakes come from the same greedy packing, but *which* items get
    misplaced is pure chance, unrelated to value density or any other rule. The noise
    level is set by bisection (with the noise draws held fixed) so that the share of
    instances on which its set is not optimal is as close as it gets to ``error_rate``.

    Arguments: a batch of instances (see the module docstring); ``error_rate`` in
    [0, 1), the target share of non-optimal instances (e.g. the network's own on the
    same instances); ``seed`` for the noise; ``dp_chosen`` and ``best`` from
    :func:`solve_dp` if already computed; ``iters`` bisection steps.

    Returns ``(chosen, noise)``: bool ``[B, n]`` feasible sets and the noise level used.
    Its error rate can fall short of a target above what random scores reach (a uniform
    random order still packs some instances optimally). Raises ValueError naming the
    argument for malformed instances, an ``error_rate`` outside [0, 1), a bad ``seed``,
    or ``dp_chosen``/``best`` of the wrong shape.
    """
    _check_instances(values, weights, capacity)
    error_rate = check_in_range("error_rate", error_rate, 0.0, 1.0)
    if error_rate >= 1.0:
        raise ValueError(f"error_rate must be below 1, got {error_rate!r}")
    iters = check_positive_int("iters", iters)
    make_generator(seed)  # validates seed
    if dp_chosen is None or best is None:
        dp_chosen, best = solve_dp(values, weights, capacity)
    _check_chosen("dp_chosen", dp_chosen, values)
    if not isinstance(best, torch.Tensor) or best.shape != values.shape[:1]:
        raise ValueError(f"best must be a tensor of shape {tuple(values.shape[:1])}")
    z = noisy_dp_scores(dp_chosen, 1.0, seed=seed) - dp_chosen.double()  # fixed draws
    opt = best.to(_value_dtype(values))

    def attempt(noise: float):
        chosen = decode_by_score(dp_chosen.double() + noise * z, weights, capacity)
        return chosen, (total_value(values, chosen) < opt).double().mean().item()

    tries = []  # (|error - target|, noise, chosen) of every noise level tried

    def record(noise: float) -> float:
        chosen, rate = attempt(noise)
        tries.append((abs(rate - error_rate), noise, chosen))
        return rate

    if record(0.0) >= error_rate:  # noise-free decoding is optimal: the target is 0
        return tries[0][2], 0.0
    lo, hi = 0.0, 1.0
    while record(hi) < error_rate and hi < 1e4:  # grow until the target is bracketed
        lo, hi = hi, 2 * hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if record(mid) < error_rate:
            lo = mid
        else:
            hi = mid
    _, noise, chosen = min(tries, key=lambda t: (t[0], t[1]))  # closest; then least noise
    return chosen, float(noise)
