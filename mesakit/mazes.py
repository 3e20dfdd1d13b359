"""Mazes, breadth-first search, and networks that think for longer (Chapter 1, Lesson 3).

A maze is a square image of ``size x size`` pixels (``size`` odd). Pixels at odd
coordinates are *rooms* and are always free; pixels between two neighbouring rooms are
*doors*, each open (free) with probability ``open_prob``; every other pixel is wall. One
room is the *source*. The task is reachability: which pixels can be reached from the
source by steps between free pixels that share an edge. Its exact solution is a flood
fill, i.e. breadth-first search (BFS), which needs as many steps as the farthest
reachable pixel is from the source, so bigger mazes need more steps.

Everything here works on a batch of mazes at once (tensors ``[B, H, W]``); loops run over
propagation steps or network iterations, never over mazes.

Networks (after Schwarzschild et al. 2021 and Bansal et al. 2022), built from one small
block whose only spatial operation is a 3x3 max-pool (every pixel hears the loudest of
its neighbours), the rest being per-pixel (1x1) convolutions:

* :class:`RecurrentMazeNet` applies one block again and again, re-reading the maze at
  every iteration ("recall"); the number of iterations is a knob at test time.
* :class:`FeedForwardMazeNet` stacks ``depth`` blocks with separate weights: the recurrent
  net unrolled ``depth`` times with untied weights, and no way to run longer.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .core import check_device, check_in_range, check_positive_int, check_probability, make_generator, progress

__all__ = [
    "random_mazes",
    "flood_fill_step",
    "bfs_distances",
    "reachable",
    "maze_inputs",
    "RecurrentMazeNet",
    "FeedForwardMazeNet",
    "count_parameters",
    "train_maze_net",
    "predict",
    "exact_accuracy",
    "trace_thinking",
    "spearman",
    "fit_slope",
]


# ---------------------------------------------------------------------------------------
# Mazes and the clean algorithm
# ---------------------------------------------------------------------------------------
def _device(device) -> torch.device:
    return check_device("device", device)


def random_mazes(
    n: int,
    size: int,
    *,
    open_prob: float = 0.6,
    seed: int,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` random mazes of ``size x size`` pixels; return ``(free, source)``.

    Rooms sit at odd coordinates (a ``k x k`` lattice of rooms, ``k = (size - 1) // 2``);
    each door between two neighbouring rooms is open with probability ``open_prob``,
    independently, so mazes have loops and some parts are cut off from the source. The
    source is one room drawn uniformly. ``free`` and ``source`` are bool tensors of
    shape ``[n, size, size]`` on ``device``; ``source`` has exactly one True pixel per
    maze, always a free one. All randomness comes from ``seed`` (drawn on the CPU, so the
    mazes are the same on every device).
    """
    n = check_positive_int("n", n)
    size = check_positive_int("size", size, minimum=5)
    if size % 2 == 0:
        raise ValueError(f"size must be odd (rooms at odd pixels, walls around), got {size!r}")
    open_prob = check_probability("open_prob", open_prob)
    gen = make_generator(seed)
    k = (size - 1) // 2
    free = torch.zeros(n, size, size, dtype=torch.bool)
    free[:, 1::2, 1::2] = True
    free[:, 1::2, 2:-1:2] = torch.rand(n, k, k - 1, generator=gen) < open_prob  # east doors
    free[:, 2:-1:2, 1::2] = torch.rand(n, k - 1, k, generator=gen) < open_prob  # south doors
    room = torch.randint(0, k * k, (n,), generator=gen)
    source = torch.zeros(n, size, size, dtype=torch.bool)
    source[torch.arange(n), 1 + 2 * (room // k), 1 + 2 * (room % k)] = True
    dev = _device(device)
    return free.to(dev), source.to(dev)


def _check_grid(name: str, x, *, ndim: int = 3) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor of shape [B, H, W], got {type(x).__name__}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have shape [B, H, W], got shape {tuple(x.shape)}")
    if x.dtype != torch.bool:
        if x.is_floating_point() or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
            if not bool(((x == 0) | (x == 1)).all()):
                raise ValueError(f"{name} must hold only 0/1 (or bool) values")
            x = x.bool()
        else:
            raise ValueError(f"{name} must be a bool or 0/1 tensor, got dtype {x.dtype}")
    return x


def _check_pair(free, source, source_name: str = "source") -> tuple[torch.Tensor, torch.Tensor]:
    free = _check_grid("free", free)
    source = _check_grid(source_name, source)
    if source.shape != free.shape:
        raise ValueError(
            f"{source_name} must have the same shape as free {tuple(free.shape)}, got {tuple(source.shape)}"
        )
    if source.device != free.device:
        raise ValueError(f"{source_name} is on {source.device} but free is on {free.device}")
    return free, source


def _dilate(mask: torch.Tensor, diagonal: bool = False) -> torch.Tensor:
    """``mask`` OR its neighbours: the four edge-neighbours, plus the four diagonal ones if
    ``diagonal``. Pixels outside the grid count as False."""
    p = F.pad(mask, (1, 1, 1, 1))
    out = mask | p[:, :-2, 1:-1] | p[:, 2:, 1:-1] | p[:, 1:-1, :-2] | p[:, 1:-1, 2:]
    if diagonal:
        out = out | p[:, :-2, :-2] | p[:, :-2, 2:] | p[:, 2:, :-2] | p[:, 2:, 2:]
    return out


def flood_fill_step(reached: torch.Tensor, free: torch.Tensor, *, diagonal: bool = False) -> torch.Tensor:
    """ONE step of flood fill: the pixels reached after one more move.

    Exact semantics: given bool (or 0/1) tensors ``reached`` and ``free`` of shape
    ``[B, H, W]``, return a new bool tensor ``out`` with

        out[b, i, j] = free[b, i, j] and (reached[b, i, j] or reached at any of
                       (i-1, j), (i+1, j), (i, j-1), (i, j+1))

    Pixels outside the grid count as not reached. With ``diagonal=True`` the four
    diagonal pixels (i-1, j-1), (i-1, j+1), (i+1, j-1), (i+1, j+1) count as neighbours
    too (the 3x3 neighbourhood a max-pool sees); in the mazes of :func:`random_mazes`
    this shortens some routes (a move from one door to the next cuts the corner of a
    room) but never connects pixels that were not already connected.
    ``out`` is always a subset of ``free`` (a reached wall pixel is not kept, although by
    the formula its free neighbours are reached) and, when ``reached`` is a subset of
    ``free``, a superset of ``reached``. Starting from the
    source and applying this step ``d`` times marks exactly the pixels at BFS distance
    ``<= d``; iterating until nothing changes gives :func:`reachable`. It is the update
    a recurrent network would have to learn, written by hand.
    """
    free, reached = _check_pair(free, reached, "reached")
    return _dilate(reached, bool(diagonal)) & free


def bfs_distances(free: torch.Tensor, source: torch.Tensor, *, diagonal: bool = False) -> torch.Tensor:
    """Breadth-first-search distance of every pixel from the source, batched.

    ``free`` and ``source``: bool (or 0/1) tensors ``[B, H, W]``; every source pixel must
    be free (several sources per maze are allowed: the distance is to the nearest one).
    Returns an int64 tensor ``[B, H, W]``: the number of edge-neighbour moves through free
    pixels from the source (0 on the source), or -1 where the pixel is a wall or cannot
    be reached. Computed by repeated :func:`flood_fill_step` (a dilation masked by the free
    pixels) until no maze changes, so it costs one step per unit of the largest distance.
    ``diagonal=True`` also allows diagonal moves (see :func:`flood_fill_step`).
    """
    free, source = _check_pair(free, source)
    if bool((source & ~free).any()):
        raise ValueError("source must lie on free pixels (a source pixel is a wall)")
    dist = torch.full(free.shape, -1, dtype=torch.long, device=free.device)
    reached = source.clone()
    dist[reached] = 0
    d = 0
    while True:
        nxt = _dilate(reached, bool(diagonal)) & free
        new = nxt & ~reached
        if not bool(new.any()):
            return dist
        d += 1
        dist[new] = d
        reached = nxt


def reachable(free: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Bool ``[B, H, W]``: which pixels can be reached from the source (the task's target).
    Equal to ``bfs_distances(free, source) >= 0``."""
    return bfs_distances(free, source) >= 0


def maze_inputs(free: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The networks' input: a float tensor ``[B, 2, H, W]`` with channel 0 = free pixels,
    channel 1 = the source."""
    free, source = _check_pair(free, source)
    return torch.stack([free, source], dim=1).float()


# ---------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------
class _Block(nn.Module):
    """One step of thinking, in three moves:

    1. *say*: every pixel computes ``width`` features from its own state and its own
       pixel of the maze (a 1x1 convolution and a ReLU);
    2. *listen*: every pixel takes, feature by feature, the largest value in its 3x3
       neighbourhood (a max-pool with stride 1), the block's only spatial operation;
    3. *update*: a gated per-pixel update, ``h' = (1 - z) * h + z * tanh(n)``, where ``z``
       and ``n`` come from a 1x1 convolution of what it heard and the maze (recall).
    """

    def __init__(self, width: int, in_channels: int = 2):
        super().__init__()
        self.say = nn.Conv2d(width + in_channels, width, 1)
        self.update = nn.Conv2d(width + in_channels, 2 * width, 1)
        nn.init.kaiming_normal_(self.say.weight, nonlinearity="relu")
        nn.init.zeros_(self.say.bias)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        u = F.relu(self.say(torch.cat([h, x], 1)))
        u = F.max_pool2d(u, 3, stride=1, padding=1)
        z, n = self.update(torch.cat([u, x], 1)).chunk(2, dim=1)
        z = torch.sigmoid(z)
        return (1 - z) * h + z * torch.tanh(n)


class RecurrentMazeNet(nn.Module):
    """A weight-tied recurrent convolutional network with recall.

    The hidden state ``h`` (``width`` channels per pixel, zero at the start) is updated by
    the same block at every iteration, and the block re-reads the maze each time.
    A 1x1 convolution decodes the state into a reachability logit per pixel. Because the
    weights are shared, the number of iterations can be chosen freely at test time.
    Weights are initialised from ``seed``.
    """

    def __init__(self, width: int = 16, *, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__()
        self.width = check_positive_int("width", width)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_positive_int("seed", seed, minimum=0))
            self.block = _Block(self.width)
            self.head = nn.Conv2d(self.width, 1, 1)
        self.to(_device(device))

    def initial_state(self, inputs: torch.Tensor) -> torch.Tensor:
        """The state before any thinking: zeros ``[B, width, H, W]``."""
        return inputs.new_zeros(inputs.shape[0], self.width, *inputs.shape[2:])

    def step(self, h: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """One iteration: the next hidden state."""
        return self.block(h, inputs)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Reachability logits ``[B, H, W]`` read from a hidden state."""
        return self.head(h)[:, 0]

    def forward(self, inputs: torch.Tensor, iterations: int, *, state: torch.Tensor | None = None,
                noise: float = 0.0, generator: torch.Generator | None = None):
        """Run ``iterations`` steps from ``state`` (zeros if None); return ``(logits, state)``.
        ``noise`` > 0 adds Gaussian noise of that scale to the state after every step (a
        training-time regulariser, see :func:`train_maze_net`)."""
        iterations = check_positive_int("iterations", iterations, minimum=0)
        h = self.initial_state(inputs) if state is None else state
        for _ in range(iterations):
            h = self.step(h, inputs)
            if noise > 0:
                h = h + noise * torch.randn(h.shape, generator=generator, device=h.device)
        return self.decode(h), h


class FeedForwardMazeNet(nn.Module):
    """The same blocks as :class:`RecurrentMazeNet`, ``depth`` of them with separate weights.

    It is the recurrent net unrolled ``depth`` times with untied weights: as deep as the
    recurrent net during training and strictly more flexible (the recurrent net is the
    special case where all blocks are equal), but its depth is fixed, so it cannot think
    longer on bigger mazes. Weights are initialised from ``seed``.
    """

    def __init__(self, width: int = 16, depth: int = 14, *, seed: int = 0,
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.width = check_positive_int("width", width)
        self.depth = check_positive_int("depth", depth)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_positive_int("seed", seed, minimum=0))
            self.blocks = nn.ModuleList([_Block(self.width) for _ in range(self.depth)])
            self.head = nn.Conv2d(self.width, 1, 1)
        self.to(_device(device))

    def forward(self, inputs: torch.Tensor, iterations: int | None = None, *, noise: float = 0.0,
                generator: torch.Generator | None = None):
        """Return ``(logits, state)``; ``iterations`` is ignored (the depth is fixed)."""
        h = inputs.new_zeros(inputs.shape[0], self.width, *inputs.shape[2:])
        for block in self.blocks:
            h = block(h, inputs)
            if noise > 0:
                h = h + noise * torch.randn(h.shape, generator=generator, device=h.device)
        return self.head(h)[:, 0], h


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters of ``net``."""
    if not isinstance(net, nn.Module):
        raise ValueError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------
def _masked_bce(logits: torch.Tensor, target: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over free pixels only (walls are never reachable)."""
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (loss * free).sum() / free.sum().clamp_min(1.0)


def train_maze_net(
    net: nn.Module,
    *,
    steps: int = 250,
    batch_size: int = 32,
    size: int = 7,
    open_prob: float = 0.6,
    iterations: int = 14,
    lr: float = 1e-2,
    noise: float = 0.1,
    warm_start_factor: int = 6,
    seed: int = 0,
    device: torch.device | str = "cpu",
    desc: str | None = None,
) -> list[float]:
    """Train ``net`` to predict reachability on fresh random mazes; return the loss per step.

    Every step draws ``batch_size`` new ``size x size`` mazes (all of them generated at
    the start from ``seed``). The loss is binary cross-entropy on free pixels.

    * :class:`FeedForwardMazeNet`: one forward pass.
    * :class:`RecurrentMazeNet`: the average of two terms, after Bansal et al.'s
      progressive loss: (a) ``iterations`` steps from the zero state; (b) ``n`` steps
      without gradient (``n`` uniform in ``0 .. warm_start_factor * iterations``)
      followed by ``k`` steps with gradient (``k`` uniform in ``1 .. iterations``). Term
      (b) asks the net to make progress from wherever it is, whatever the iteration count,
      which is what lets it keep going past the training number of iterations.

    ``noise`` adds Gaussian noise to the hidden state after every step during training, so
    the net must keep its state far from decision boundaries (a state that fades a little
    at each step cannot survive it); set 0 to switch it off. Deterministic: the same
    ``seed`` on the same machine gives the same weights and losses. Progress bar via
    :func:`mesakit.progress`.
    """
    if not isinstance(net, (RecurrentMazeNet, FeedForwardMazeNet)):
        raise ValueError(f"net must be a RecurrentMazeNet or FeedForwardMazeNet, got {type(net).__name__}")
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    iterations = check_positive_int("iterations", iterations)
    warm_start_factor = check_positive_int("warm_start_factor", warm_start_factor, minimum=0)
    lr = check_in_range("lr", lr, 1e-6, 1.0)
    noise = check_in_range("noise", noise, 0.0, 10.0)
    dev = _device(device)
    net.to(dev).train()

    free_all, source_all = random_mazes(steps * batch_size, size, open_prob=open_prob, seed=seed, device=dev)
    target_all = reachable(free_all, source_all).float()
    inputs_all = maze_inputs(free_all, source_all)
    free_all = free_all.float()

    gen = make_generator(seed + 1)  # the warm-start draws
    noise_gen = torch.Generator(device=dev)
    noise_gen.manual_seed(seed + 2)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    recurrent = isinstance(net, RecurrentMazeNet)
    losses: list[float] = []
    for step in progress(range(steps), desc=desc or f"training {type(net).__name__}"):
        sl = slice(step * batch_size, (step + 1) * batch_size)
        x, y, m = inputs_all[sl], target_all[sl], free_all[sl]
        if recurrent:
            out, _ = net(x, iterations, noise=noise, generator=noise_gen)
            loss = _masked_bce(out, y, m)
            n = int(torch.randint(0, warm_start_factor * iterations + 1, (1,), generator=gen))
            k = int(torch.randint(1, iterations + 1, (1,), generator=gen))
            h = None
            if n > 0:
                with torch.no_grad():
                    _, h = net(x, n, noise=noise, generator=noise_gen)
            out2, _ = net(x, k, state=h, noise=noise, generator=noise_gen)
            loss = 0.5 * loss + 0.5 * _masked_bce(out2, y, m)
        else:
            out, _ = net(x, noise=noise, generator=noise_gen)
            loss = _masked_bce(out, y, m)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    net.eval()
    return losses


# ---------------------------------------------------------------------------------------
# Evaluation and analysis
# ---------------------------------------------------------------------------------------
def predict(net: nn.Module, free: torch.Tensor, source: torch.Tensor,
            iterations: int | None = None) -> torch.Tensor:
    """The net's reachability prediction, bool ``[B, H, W]``: logit > 0 on free pixels
    (walls are never reachable). ``iterations`` is required for a recurrent net."""
    x = maze_inputs(free, source)
    with torch.no_grad():
        if isinstance(net, RecurrentMazeNet):
            if iterations is None:
                raise ValueError("iterations must be given for a RecurrentMazeNet")
            logits, _ = net(x, iterations)
        else:
            logits, _ = net(x)
    return (logits > 0) & free.bool()


def exact_accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of mazes whose every pixel is predicted correctly (``pred`` and ``target``:
    bool or 0/1 tensors ``[B, H, W]`` of the same shape)."""
    pred = _check_grid("pred", pred)
    target = _check_grid("target", target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return float((pred == target.to(pred.device)).flatten(1).all(1).float().mean())


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def trace_thinking(net: RecurrentMazeNet, free: torch.Tensor, source: torch.Tensor,
                   max_iterations: int, *, batch_size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a recurrent net for ``max_iterations`` iterations and record how it got there.

    Returns ``(accuracy, change)``, both from the same single run:

    * ``accuracy``: float tensor ``[max_iterations]`` on the CPU; entry ``t - 1`` is the
      fraction of mazes solved exactly (every pixel right) after ``t`` iterations;
    * ``change``: int64 tensor ``[B, H, W]`` on the device of ``free``; for every pixel,
      the first iteration ``t`` (1-based) from which the decoded prediction says
      "reachable" at every later iteration up to ``max_iterations``, or -1 for pixels not
      predicted reachable at the end. Plotted against the BFS distance it shows whether
      the computation spreads outward from the source like breadth-first search.

    Mazes are processed ``batch_size`` at a time (memory only; no effect on results).
    """
    if not isinstance(net, RecurrentMazeNet):
        raise ValueError(f"net must be a RecurrentMazeNet, got {type(net).__name__}")
    max_iterations = check_positive_int("max_iterations", max_iterations)
    batch_size = check_positive_int("batch_size", batch_size)
    free, source = _check_pair(free, source)
    target = reachable(free, source)
    solved = torch.zeros(max_iterations, device=free.device)
    change = torch.full(free.shape, -1, dtype=torch.long, device=free.device)
    net.eval()
    with torch.no_grad():
        for sl in _batches(free.shape[0], batch_size):
            x, f, y = maze_inputs(free[sl], source[sl]), free[sl], target[sl]
            h = net.initial_state(x)
            since = torch.full(f.shape, -1, dtype=torch.long, device=f.device)
            for t in range(1, max_iterations + 1):
                h = net.step(h, x)
                on = (net.decode(h) > 0) & f
                solved[t - 1] += (on == y).flatten(1).all(1).sum()
                since = torch.where(on & (since < 0), torch.full_like(since, t), since)
                since = torch.where(on, since, torch.full_like(since, -1))
            change[sl] = since
    return (solved / free.shape[0]).cpu(), change


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share the mean rank), as float64."""
    v = v.double()
    order = torch.argsort(v, stable=True)
    sorted_v = v[order]
    ranks_sorted = torch.arange(1, v.numel() + 1, dtype=torch.float64, device=v.device)
    # average the ranks within groups of ties
    _, inverse, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
    sums = torch.zeros(counts.numel(), dtype=torch.float64, device=v.device).index_add_(0, inverse, ranks_sorted)
    avg = sums / counts.double()
    ranks = torch.empty_like(ranks_sorted)
    ranks[order] = avg[inverse]
    return ranks


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman rank correlation of two equally long 1-D tensors (ties get average ranks)."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError("x and y must be torch tensors")
    x, y = x.flatten(), y.flatten()
    if x.numel() != y.numel() or x.numel() < 2:
        raise ValueError(f"x and y must have the same length >= 2, got {x.numel()} and {y.numel()}")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum()) * float((ry * ry).sum()))
    if denom == 0:
        raise ValueError("spearman is undefined when x or y is constant")
    return float((rx * ry).sum()) / denom


def fit_slope(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Least-squares line ``y = slope * x + intercept``; returns ``(slope, intercept)``."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError("x and y must be torch tensors")
    x, y = x.flatten().double(), y.flatten().double()
    if x.numel() != y.numel() or x.numel() < 2:
        raise ValueError(f"x and y must have the same length >= 2, got {x.numel()} and {y.numel()}")
    xc = x - x.mean()
    var = float((xc * xc).sum())
    if var == 0:
        raise ValueError("fit_slope is undefined when x is constant")
    slope = float((xc * (y - y.mean())).sum()) / var
    return slope, float(y.mean()) - slope * float(x.mean())
