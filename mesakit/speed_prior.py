"""Memorize the answers or run the search? Networks trained on a pool of P search problems
(Chapter 1, Lesson 4).

The task is a search problem with a finite, enumerable set of instances: a maze of
``k x k`` rooms (the mazes of :mod:`mesakit.mazes`, every door open or shut), and the
question "can the bottom-right room be reached from the top-left one?". For ``k = 3``
there are ``2**12 = 4096`` mazes, so the whole answer table can be written down, and a
network can either store the part of it that it was shown (a lookup) or compute the
answer (a search). A training *pool* is a random subset of ``P`` mazes; every other maze
is a *new instance*.

Two kinds of network, each trained as one batched program (a leading member axis: one
member per training seed and pool size; weights are slices of stacked tensors, products
are batched matrix products):

- :class:`BatchedMLP`, a compute-limited feed-forward network: the door bits, one hidden
  layer, one logit. Two serial steps of computation, while the search may need eight.
- :class:`BatchedRoomRNN`, a weight-tied recurrent network that iterates: every room holds
  a state, and one shared update, applied ``iterations`` times, lets a room read its own
  doors and its four neighbours' messages (lesson 1.3's block, on the graph of rooms).

Sources: the "simply memorized a table of those answers" remark in Demski (2020),
"Mesa-Search vs Mesa-Control"; Christiano (2018), "Open question: are minimal circuits
daemon-free?"; the task-diversity threshold of Raventós et al. (2023).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .core import check_device
from . import mazes as mz

__all__ = [
    "MazeTable", "maze_table", "room_flood_fill", "pool_splits", "BatchedMLP",
    "BatchedRoomRNN", "train_on_pools", "pool_accuracy", "crossover", "majority_rate",
]


def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_seeds(seeds) -> list[int]:
    if not isinstance(seeds, (list, tuple)) or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ValueError(f"seeds must hold ints, got {s!r}")
    return list(seeds)


@dataclass
class MazeTable:
    """Every maze of ``k x k`` rooms with its answer (the whole lookup table).

    Attributes (``N = 2**D`` mazes, ``D = 2k(k-1)`` doors, ``R = k*k`` rooms):
        k: rooms per side.
        doors: float ``[N, D]``, +1 open / -1 shut (the feed-forward network's input);
            maze ``i``'s door ``j`` is bit ``j`` of ``i``.
        rooms: float ``[N, R, 5]``, per room its doors north/east/south/west (1 open, 0
            shut or the outer wall) and whether it is the source (the recurrent input).
        neighbours: long ``[R, 4]``, the room to the north/east/south/west (``R`` = none).
        free, source: bool ``[N, 2k+1, 2k+1]``, the mazes as :mod:`mesakit.mazes` images.
        target: ``(row, col)`` pixel of the target room (bottom right).
        labels: bool ``[N]``, target reachable from the source, by breadth-first search
            (:func:`mesakit.mazes.reachable`).
    """

    k: int
    doors: torch.Tensor
    rooms: torch.Tensor
    neighbours: torch.Tensor
    free: torch.Tensor
    source: torch.Tensor
    target: tuple[int, int]
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def maze_table(k: int = 3, *, device: torch.device | str = "cpu") -> MazeTable:
    """Enumerate all ``2**(2k(k-1))`` mazes of ``k x k`` rooms, source top left, target
    bottom right, and label each by breadth-first search (see :class:`MazeTable`).

    Raises ValueError if ``k`` is not an int in 2..3 (k = 4 would be 16.7 million mazes)
    or ``device`` is not a device."""
    dev = check_device("device", device)
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 3:
        raise ValueError(f"k must be an int in 2..3, got {k!r}")
    n_east, n_south = k * (k - 1), (k - 1) * k
    D, size = n_east + n_south, 2 * k + 1
    idx = torch.arange(2 ** D)
    bits = ((idx[:, None] >> torch.arange(D)) & 1).bool()            # [N, D]
    east, south = bits[:, :n_east].view(-1, k, k - 1), bits[:, n_east:].view(-1, k - 1, k)
    free = torch.zeros(2 ** D, size, size, dtype=torch.bool)
    free[:, 1::2, 1::2] = True
    free[:, 1::2, 2:-1:2] = east
    free[:, 2:-1:2, 1::2] = south
    source = torch.zeros_like(free)
    source[:, 1, 1] = True
    target = (size - 2, size - 2)
    labels = mz.reachable(free, source)[:, target[0], target[1]]
    # Room features: doors N, E, S, W read off the image, and the source flag.
    r, c = 1 + 2 * torch.arange(k)[:, None].expand(k, k), 1 + 2 * torch.arange(k)[None, :].expand(k, k)
    feats = torch.stack([free[:, r - 1, c], free[:, r, c + 1], free[:, r + 1, c], free[:, r, c - 1],
                         source[:, r, c]], dim=-1).float().view(2 ** D, k * k, 5)
    feats[:, :, :4] *= free[:, r, c].view(-1, k * k, 1).float()        # rooms are always free
    R = k * k
    rr, cc = torch.arange(R) // k, torch.arange(R) % k
    nb = torch.stack([torch.where(rr > 0, torch.arange(R) - k, R), torch.where(cc < k - 1, torch.arange(R) + 1, R),
                      torch.where(rr < k - 1, torch.arange(R) + k, R), torch.where(cc > 0, torch.arange(R) - 1, R)], 1)
    return MazeTable(k, (bits.float() * 2 - 1).to(dev), feats.to(dev), nb.to(dev), free.to(dev),
                     source.to(dev), target, labels.to(dev))


def room_flood_fill(table: MazeTable, steps: int | None = None) -> torch.Tensor:
    """The exact algorithm, the yardstick: flood fill on the graph of rooms from the source
    room, ``steps`` rounds (default ``k*k``, enough for every maze); returns bool ``[N]``,
    whether the target room was reached. With enough steps it equals ``table.labels``."""
    if not isinstance(table, MazeTable):
        raise ValueError(f"table must be a MazeTable, got {type(table).__name__}")
    R = table.k * table.k
    steps = R if steps is None else _check_int("steps", steps, minimum=0)
    reached = table.rooms[:, :, 4] > 0                                   # [N, R]
    for _ in range(steps):
        pad = torch.cat([reached, torch.zeros_like(reached[:, :1])], 1)
        through = pad[:, table.neighbours] & (table.rooms[:, :, :4] > 0)  # [N, R, 4]
        reached = reached | through.any(-1)
    return reached[:, R - 1]


def majority_rate(labels: torch.Tensor) -> float:
    """Share of the more common answer among ``labels`` (bool ``[N]``): what a system that
    ignores the maze scores at best (the null)."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.numel() == 0:
        raise ValueError("labels must be a non-empty 1-D tensor")
    p = float(labels.float().mean())
    return max(p, 1 - p)


def pool_splits(n_instances: int, pool_sizes, seeds) -> tuple[torch.Tensor, torch.Tensor]:
    """One random pool per member: member ``e`` draws a permutation of the ``n_instances``
    mazes from ``seeds[e]``; its pool is the first ``pool_sizes[e]``, the rest are its new
    instances. Returns ``(perm long [E, N], sizes long [E])``.

    Raises ValueError if the lists differ in length or a pool size is not in 1..N-1."""
    n = _check_int("n_instances", n_instances, minimum=2)
    seeds = _check_seeds(seeds)
    if not isinstance(pool_sizes, (list, tuple)) or len(pool_sizes) != len(seeds):
        raise ValueError("pool_sizes must be a list as long as seeds")
    for p in pool_sizes:
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p < n:
            raise ValueError(f"pool_sizes must hold ints in 1..{n - 1}, got {p!r}")
    perms = [torch.randperm(n, generator=torch.Generator().manual_seed(s)) for s in seeds]
    return torch.stack(perms), torch.tensor(list(pool_sizes))


def _init(shape, fan_in: int, gen: torch.Generator) -> torch.Tensor:
    bound = 1 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


class BatchedMLP(nn.Module):
    """E one-hidden-layer networks as one module: input ``[E, B, D]`` → logits ``[E, B]``.

    Member ``e`` is initialised from ``seeds[e]`` (uniform ±1/sqrt(fan_in), like nn.Linear).
    Raises ValueError for a bad ``in_dim``, ``hidden``, ``seeds`` or ``device``."""

    def __init__(self, in_dim: int, hidden: int, seeds, *, device: torch.device | str = "cpu"):
        super().__init__()
        dev = check_device("device", device)
        in_dim, hidden, seeds = _check_int("in_dim", in_dim), _check_int("hidden", hidden), _check_seeds(seeds)
        ws = {"w1": [], "b1": [], "w2": [], "b2": []}
        for s in seeds:
            g = torch.Generator().manual_seed(s)
            ws["w1"].append(_init((in_dim, hidden), in_dim, g)); ws["b1"].append(_init((hidden,), in_dim, g))
            ws["w2"].append(_init((hidden,), hidden, g)); ws["b2"].append(_init((), hidden, g))
        for name, v in ws.items():
            setattr(self, name, nn.Parameter(torch.stack(v).to(dev)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.baddbmm(self.b1[:, None, :], x, self.w1))
        return torch.einsum("ebh,eh->eb", h, self.w2) + self.b2[:, None]


class BatchedRoomRNN(nn.Module):
    """E weight-tied recurrent networks on the graph of rooms, as one module.

    Each room holds a state ``h`` of ``width`` numbers (zeros at first). One iteration,
    the same for every room and every step: each room *says* ``m = relu(A h + a)``, then
    updates ``h' = tanh(W [h, m_north, m_east, m_south, m_west, room features] + b)``
    (a missing neighbour says zeros; the features are the room's four door bits and the
    source flag, re-read every step). After ``iterations`` steps a linear readout of the
    target room's state gives the logit. Input ``[E, B, R, 5]`` → logits ``[E, B]``.
    Raises ValueError for a bad ``width``, ``iterations``, ``neighbours``, ``seeds`` or ``device``."""

    def __init__(self, neighbours: torch.Tensor, width: int, iterations: int, seeds, *,
                 device: torch.device | str = "cpu"):
        super().__init__()
        dev = check_device("device", device)
        width, self.iterations = _check_int("width", width), _check_int("iterations", iterations)
        seeds = _check_seeds(seeds)
        if not isinstance(neighbours, torch.Tensor) or neighbours.dim() != 2 or neighbours.shape[1] != 4:
            raise ValueError("neighbours must be a long tensor [R, 4] (MazeTable.neighbours)")
        self.register_buffer("neighbours", neighbours.to(dev).long())
        fan = 5 * width + 5
        ws = {"a_w": [], "a_b": [], "u_w": [], "u_b": [], "r_w": [], "r_b": []}
        for s in seeds:
            g = torch.Generator().manual_seed(s)
            ws["a_w"].append(_init((width, width), width, g)); ws["a_b"].append(_init((width,), width, g))
            ws["u_w"].append(_init((fan, width), fan, g)); ws["u_b"].append(_init((width,), fan, g))
            ws["r_w"].append(_init((width,), width, g)); ws["r_b"].append(_init((), width, g))
        for name, v in ws.items():
            setattr(self, name, nn.Parameter(torch.stack(v).to(dev)))
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        E, B, R, F = x.shape
        C = self.width
        xf = x.reshape(E, B * R, F)
        u_h, u_m, u_x = self.u_w[:, :C], self.u_w[:, C:5 * C], self.u_w[:, 5 * C:]
        drive = torch.baddbmm(self.u_b[:, None], xf, u_x)                # the input, re-read each step
        h = x.new_zeros(E, B * R, C)
        zero = x.new_zeros(E, B, 1, C)
        for _ in range(self.iterations):
            m = torch.relu(torch.baddbmm(self.a_b[:, None], h, self.a_w)).view(E, B, R, C)
            heard = torch.cat([m, zero], 2)[:, :, self.neighbours].reshape(E, B * R, 4 * C)
            h = torch.tanh(drive + torch.bmm(h, u_h) + torch.bmm(heard, u_m))
        return torch.einsum("ebc,ec->eb", h.view(E, B, R, C)[:, :, -1], self.r_w) + self.r_b[:, None]


def _check_data(x, labels, perm, sizes):
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError("x must be a tensor [N, ...] of inputs, one row per maze")
    N = x.shape[0]
    if not isinstance(labels, torch.Tensor) or labels.dim() != 2 or labels.shape[1] != N:
        raise ValueError(f"labels must be a bool tensor [E, {N}] (one answer table per member)")
    if not isinstance(perm, torch.Tensor) or perm.shape != labels.shape:
        raise ValueError(f"perm must be a long tensor of shape {tuple(labels.shape)} (see pool_splits)")
    if not isinstance(sizes, torch.Tensor) or sizes.shape != (labels.shape[0],):
        raise ValueError(f"sizes must be a tensor [{labels.shape[0]}] of pool sizes")
    if bool((sizes < 1).any()) or bool((sizes >= N).any()):
        raise ValueError("sizes must lie in 1..N-1")


def train_on_pools(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, perm: torch.Tensor,
                   sizes: torch.Tensor, *, steps: int, batch_size: int = 128, lr: float = 1e-2,
                   seed: int = 0, optimizer: torch.optim.Optimizer | None = None,
                   desc: str | None = None) -> list[float]:
    """Train every member on its own pool: each step, member ``e`` gets ``batch_size``
    mazes drawn uniformly (with replacement) from its pool ``perm[e, :sizes[e]]``, with the
    answers ``labels[e]``; binary cross-entropy, one Adam optimizer (members do not
    interact: the loss is a sum over members, and Adam is per parameter entry). Pass the
    same ``optimizer`` (an Adam over ``model``'s parameters) and a new ``seed`` to go on
    training where an earlier call stopped. Returns the mean loss per step.

    Shapes: ``x [N, ...]`` (inputs of all mazes), ``labels [E, N]`` bool, ``perm [E, N]``,
    ``sizes [E]``. Raises ValueError on inconsistent shapes or bad ``steps``/``batch_size``/``lr``."""
    _check_data(x, labels, perm, sizes)
    steps, batch_size = _check_int("steps", steps), _check_int("batch_size", batch_size)
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    from .core import progress
    gen = torch.Generator().manual_seed(int(seed))
    E = labels.shape[0]
    dev = x.device
    perm, sizes, y = perm.to(dev), sizes.to(dev), labels.to(dev).float()
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch optimizer or None, got {type(optimizer).__name__}")
    opt = torch.optim.Adam(model.parameters(), lr=lr) if optimizer is None else optimizer
    losses = []
    for _ in progress(range(steps), desc=desc, leave=False):
        u = torch.rand(E, batch_size, generator=gen).to(dev)
        pick = perm.gather(1, (u * sizes[:, None]).long())              # [E, B] maze ids
        logits = model(x[pick])
        target = y.gather(1, pick)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()) / E)
    return losses


@torch.no_grad()
def pool_accuracy(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, perm: torch.Tensor,
                  sizes: torch.Tensor, *, true_labels: torch.Tensor | None = None,
                  chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy of every member on its pool (against the labels it was trained on) and on
    all its new instances (against ``true_labels``, default ``labels``). Returns
    ``(pool_acc [E], new_acc [E])``, shares in [0, 1], exact over the whole table."""
    _check_data(x, labels, perm, sizes)
    E, N = labels.shape
    if true_labels is None:
        true_labels = labels
    if not isinstance(true_labels, torch.Tensor) or true_labels.shape != (E, N):
        raise ValueError(f"true_labels must have shape {(E, N)}")
    logits = torch.cat([model(x[i:i + chunk].unsqueeze(0).expand(E, *x[i:i + chunk].shape))
                        for i in range(0, N, chunk)], 1)                 # [E, N]
    guess = logits > 0
    dev = guess.device
    rank = torch.empty_like(perm)
    rank.scatter_(1, perm, torch.arange(N).expand(E, N).contiguous())
    in_pool = (rank.to(dev) < sizes.to(dev)[:, None])
    right_pool = (guess == labels.to(dev)) & in_pool
    right_new = (guess == true_labels.to(dev)) & ~in_pool
    return (right_pool.sum(1) / in_pool.sum(1)).cpu(), (right_new.sum(1) / (~in_pool).sum(1)).cpu()


def crossover(pool_sizes, accuracy, level: float) -> float:
    """Where a curve of accuracy against pool size first reaches ``level``: the pool size,
    interpolated linearly in log P between the two neighbouring sizes; ``inf`` if it never
    does, the smallest size if it starts there. ``pool_sizes`` increasing, same length as
    ``accuracy``. Raises ValueError otherwise."""
    P = [float(p) for p in pool_sizes]
    a = [float(v) for v in accuracy]
    if len(P) != len(a) or len(P) < 2 or any(q <= p for p, q in zip(P, P[1:])) or P[0] <= 0:
        raise ValueError("pool_sizes must be increasing positive numbers, as many as accuracy (>= 2)")
    if not isinstance(level, (int, float)) or not 0 <= level <= 1:
        raise ValueError(f"level must be a number in [0, 1], got {level!r}")
    if a[0] >= level:
        return P[0]
    for i in range(1, len(P)):
        if a[i] >= level:
            t = (level - a[i - 1]) / (a[i] - a[i - 1])
            return math.exp(math.log(P[i - 1]) + t * (math.log(P[i]) - math.log(P[i - 1])))
    return math.inf
