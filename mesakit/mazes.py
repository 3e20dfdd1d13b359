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
    "train_maze_nets",
    "steps_needed",
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
    dev = _device(device)
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
        dev = _device(device)
        self.width = check_positive_int("width", width)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_positive_int("seed", seed, minimum=0))
            self.block = _Block(self.width)
            self.head = nn.Conv2d(self.width, 1, 1)
        self.to(dev)

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
        dev = _device(device)
        self.width = check_positive_int("width", width)
        self.depth = check_positive_int("depth", depth)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_positive_int("seed", seed, minimum=0))
            self.blocks = nn.ModuleList([_Block(self.width) for _ in range(self.depth)])
            self.head = nn.Conv2d(self.width, 1, 1)
        self.to(dev)

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
# The fast path: E nets of one kind as stacked tensors, pixels channels-last
# ---------------------------------------------------------------------------------------
# The modules above are the readable definition (1x1 convolutions on [B, C, H, W]). Training
# and evaluation run the same arithmetic on stacked weights ``[E, ...]`` (one slice per net)
# and pixels laid out channels-last, where a 1x1 convolution is a batched matrix product:
# about twice as fast on a CPU, and several nets (training seeds, variants) run as one
# batched program. Results agree with the modules up to float rounding (a unit test checks it).
def _check_nets(nets) -> tuple[bool, int, int]:
    """Validate a non-empty list of maze nets of one kind and size; return
    ``(recurrent, width, depth)`` (depth 1 for a recurrent net)."""
    if isinstance(nets, nn.Module) or not isinstance(nets, (list, tuple)) or len(nets) == 0:
        raise ValueError("nets must be a non-empty list of RecurrentMazeNet or FeedForwardMazeNet")
    first = nets[0]
    if not isinstance(first, (RecurrentMazeNet, FeedForwardMazeNet)):
        raise ValueError(f"nets must hold RecurrentMazeNet or FeedForwardMazeNet, got {type(first).__name__}")
    recurrent = isinstance(first, RecurrentMazeNet)
    depth = 1 if recurrent else first.depth
    for net in nets:
        if type(net) is not type(first) or net.width != first.width or (not recurrent and net.depth != depth):
            raise ValueError("nets must all be of one class, width and depth, got "
                             f"{type(first).__name__}(width={first.width}) and {type(net).__name__}"
                             f"(width={getattr(net, 'width', '?')})")
    if len({id(net) for net in nets}) != len(nets):
        raise ValueError("nets must be distinct networks (the same net appears twice)")
    return recurrent, first.width, depth


def _blocks(net) -> list:
    return [net.block] if isinstance(net, RecurrentMazeNet) else list(net.blocks)


def _stack_weights(nets, device: torch.device) -> dict[str, torch.Tensor]:
    """Stacked copies of the nets' weights: ``sh [E, D, C, C]`` and ``sx [E, D, 2, C]``
    (the *say* convolution's state and maze parts, input -> output), ``sb [E, D, C]``;
    ``uh [E, D, C, 2C]``, ``ux [E, D, 2, 2C]``, ``ub [E, D, 2C]`` (the *update*);
    ``hw [E, C, 1]`` and ``hb [E, 1]`` (the readout)."""
    C = nets[0].width
    parts: dict[str, list] = {k: [] for k in ("sh", "sx", "sb", "uh", "ux", "ub", "hw", "hb")}
    with torch.no_grad():
        for net in nets:
            blocks = _blocks(net)
            say = torch.stack([b.say.weight[:, :, 0, 0] for b in blocks])      # [D, C, C + 2]
            upd = torch.stack([b.update.weight[:, :, 0, 0] for b in blocks])   # [D, 2C, C + 2]
            parts["sh"].append(say[:, :, :C].transpose(1, 2))
            parts["sx"].append(say[:, :, C:].transpose(1, 2))
            parts["sb"].append(torch.stack([b.say.bias for b in blocks]))
            parts["uh"].append(upd[:, :, :C].transpose(1, 2))
            parts["ux"].append(upd[:, :, C:].transpose(1, 2))
            parts["ub"].append(torch.stack([b.update.bias for b in blocks]))
            parts["hw"].append(net.head.weight[0, :, 0, 0].unsqueeze(1))
            parts["hb"].append(net.head.bias.clone())
        return {k: torch.stack(v).to(device).contiguous().detach() for k, v in parts.items()}


def _write_back(nets, P: dict[str, torch.Tensor]) -> None:
    """Copy stacked weights (see :func:`_stack_weights`) into the nets' modules."""
    C = nets[0].width
    with torch.no_grad():
        for e, net in enumerate(nets):
            for d, b in enumerate(_blocks(net)):
                say = torch.cat([P["sh"][e, d].T, P["sx"][e, d].T], 1)
                upd = torch.cat([P["uh"][e, d].T, P["ux"][e, d].T], 1)
                b.say.weight.copy_(say.reshape(C, C + 2, 1, 1))
                b.say.bias.copy_(P["sb"][e, d])
                b.update.weight.copy_(upd.reshape(2 * C, C + 2, 1, 1))
                b.update.bias.copy_(P["ub"][e, d])
            net.head.weight.copy_(P["hw"][e, :, 0].reshape(1, C, 1, 1))
            net.head.bias.copy_(P["hb"][e])


def _inputs_cl(free: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The maze channels (free, source) channels-last: float ``[..., H, W, 2]``."""
    return torch.stack([free, source], dim=-1).float()


def _input_terms(P, d: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Block ``d``'s terms that depend only on the maze (recall), computed once:
    ``x`` ``[E, B, H, W, 2]`` -> ``[E, B*H*W, C]`` and ``[E, B*H*W, 2C]``."""
    xf = x.reshape(x.shape[0], -1, 2)
    return (torch.baddbmm(P["sb"][:, d, None, :], xf, P["sx"][:, d]),
            torch.baddbmm(P["ub"][:, d, None, :], xf, P["ux"][:, d]))


def _fast_step(P, d: int, h: torch.Tensor, xs: torch.Tensor, xu: torch.Tensor) -> torch.Tensor:
    """One application of block ``d`` to states ``h`` ``[E, B, H, W, C]`` (say, listen,
    update; the arithmetic of :class:`_Block`). Without autograd (evaluation, the
    progressive loss's warm-up) it runs :func:`_fast_step_no_grad`, the same arithmetic
    with the same rounding, bit for bit, in fewer and cheaper passes."""
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (h, xs, xu, P["sh"], P["uh"]))):
        return _fast_step_no_grad(P, d, h, xs, xu)
    E, B, H, W, C = h.shape
    u = torch.relu(torch.baddbmm(xs, h.reshape(E, -1, C), P["sh"][:, d]))
    u = F.max_pool2d(u.reshape(E * B, H, W, C).permute(0, 3, 1, 2), 3, stride=1, padding=1)
    u = u.permute(0, 2, 3, 1).reshape(E, -1, C)
    z, n = _update_halves(P, d, u, xu)
    z = torch.sigmoid(z).reshape(h.shape)
    return (1 - z) * h + z * torch.tanh(n).reshape(h.shape)


def _update_halves(P, d: int, u: torch.Tensor, xu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The update's gate and candidate pre-activations ``[E, N, C]`` each, as two products
    with contiguous outputs (the sigmoid and tanh that follow then take the vectorized path
    on a CPU, several times faster than on strided halves of one ``[E, N, 2C]`` product)."""
    C = P["uh"].shape[-1] // 2
    uh = P["uh"][:, d]
    return (torch.baddbmm(xu[..., :C], u, uh[..., :C]), torch.baddbmm(xu[..., C:], u, uh[..., C:]))


def _max_pool_3x3_cl(u: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(·, 3, stride=1, padding=1)`` on channels-last maps ``[N, H, W, C]``,
    as two passes of a 3-wide maximum (rows, then columns). A maximum is exact, so the
    result equals the max-pool's bit for bit; it is several times faster on a CPU."""
    rows = u.clone()
    torch.maximum(rows[:, 1:], u[:, :-1], out=rows[:, 1:])
    torch.maximum(rows[:, :-1], u[:, 1:], out=rows[:, :-1])
    out = rows.clone()
    torch.maximum(out[:, :, 1:], rows[:, :, :-1], out=out[:, :, 1:])
    torch.maximum(out[:, :, :-1], rows[:, :, 1:], out=out[:, :, :-1])
    return out


def _fast_step_no_grad(P, d: int, h: torch.Tensor, xs: torch.Tensor, xu: torch.Tensor) -> torch.Tensor:
    """:func:`_fast_step` without autograd: the same operations in the same order (so the
    same float rounding), with a separable max-pool and in-place updates."""
    E, B, H, W, C = h.shape
    u = torch.baddbmm(xs, h.reshape(E, -1, C), P["sh"][:, d]).relu_()
    u = _max_pool_3x3_cl(u.reshape(E * B, H, W, C)).reshape(E, -1, C)
    z, n = _update_halves(P, d, u, xu)
    z = torch.sigmoid(z).reshape(h.shape)
    out = torch.rsub(z, 1).mul_(h)                 # (1 - z) * h
    return out.add_(torch.tanh(n).reshape(h.shape).mul_(z))  # + z * tanh(n)


def _fast_decode(P, h: torch.Tensor) -> torch.Tensor:
    """Reachability logits ``[E, B, H, W]`` from states ``[E, B, H, W, C]``."""
    E, B, H, W, C = h.shape
    return torch.baddbmm(P["hb"][:, None, :], h.reshape(E, -1, C), P["hw"]).reshape(E, B, H, W)


def _masked_bce_members(logits: torch.Tensor, target: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over free pixels only (walls are never reachable), one value
    per net: ``[E, B, H, W]`` -> ``[E]``."""
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (loss * free).flatten(1).sum(1) / free.flatten(1).sum(1).clamp_min(1.0)


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------
def train_maze_nets(
    nets,
    *,
    seeds,
    steps: int = 250,
    batch_size: int = 32,
    size: int = 7,
    open_prob: float = 0.6,
    iterations: int = 14,
    lr: float = 1e-2,
    noise: float = 0.1,
    warm_start_factor: int = 6,
    progressive: bool = True,
    device: torch.device | str = "cpu",
    desc: str | None = None,
) -> list[list[float]]:
    """Train several maze nets of one kind as one batched program; return each one's
    loss per step (a list of ``len(nets)`` lists of ``steps`` floats).

    ``nets``: a list of E distinct :class:`RecurrentMazeNet` (or E
    :class:`FeedForwardMazeNet`) of the same width (and depth); ``seeds``: E non-negative
    ints. Net ``i`` is trained exactly as :func:`train_maze_net` would train it alone with
    ``seed=seeds[i]`` (its own mazes, warm-start draws and noise; its own gradient
    clipping and Adam state), up to float rounding: the nets' weights are stacked into
    tensors with a leading dimension of E and updated together, which costs much less than
    E separate runs. The trained weights are written back into the nets, which end on
    ``device`` in eval mode. See :func:`train_maze_net` for the loss and the other
    arguments. Raises ValueError naming a bad argument.
    """
    dev = _device(device)
    recurrent, width, depth = _check_nets(nets)
    if isinstance(seeds, (int, str)) or not hasattr(seeds, "__len__") or len(seeds) != len(nets):
        raise ValueError(f"seeds must be a sequence of {len(nets)} seeds (one per net), got {seeds!r}")
    seeds = [check_positive_int("seeds[i]", s, minimum=0) for s in seeds]
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    size = check_positive_int("size", size, minimum=5)
    iterations = check_positive_int("iterations", iterations)
    warm_start_factor = check_positive_int("warm_start_factor", warm_start_factor, minimum=0)
    lr = check_in_range("lr", lr, 1e-6, 1.0)
    noise = check_in_range("noise", noise, 0.0, 10.0)
    if not isinstance(progressive, bool):
        raise ValueError(f"progressive must be True or False, got {progressive!r}")
    E = len(nets)

    mazes = [random_mazes(steps * batch_size, size, open_prob=open_prob, seed=s, device=dev) for s in seeds]
    free_all = torch.stack([f for f, _ in mazes])                      # [E, steps * B, H, W]
    source_all = torch.stack([s for _, s in mazes])
    target_all = torch.stack([reachable(f, s) for f, s in mazes]).float()
    inputs_all = _inputs_cl(free_all, source_all)                      # [E, steps * B, H, W, 2]
    free_all = free_all.float()

    gens = [make_generator(s + 1) for s in seeds]                      # the warm-start draws
    noise_gens = []
    for s in seeds:
        g = torch.Generator(device=dev)
        g.manual_seed(s + 2)
        noise_gens.append(g)
    state_shape = (batch_size, size, size, width)

    def add_noise(h: torch.Tensor) -> torch.Tensor:
        if noise <= 0:
            return h
        return h + noise * torch.stack([torch.randn(state_shape, generator=g, device=dev) for g in noise_gens])

    P = {k: v.requires_grad_() for k, v in _stack_weights(nets, dev).items()}
    opt = torch.optim.Adam(list(P.values()), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    losses = []
    for step in progress(range(steps), desc=desc or f"training {E} x {type(nets[0]).__name__}"):
        sl = slice(step * batch_size, (step + 1) * batch_size)
        x, y, m = inputs_all[:, sl], target_all[:, sl], free_all[:, sl]
        h = x.new_zeros(E, *state_shape)
        if recurrent:
            xs, xu = _input_terms(P, 0, x)
            for _ in range(iterations):
                h = add_noise(_fast_step(P, 0, h, xs, xu))
            loss = _masked_bce_members(_fast_decode(P, h), y, m)
            if progressive:
                ns = [int(torch.randint(0, warm_start_factor * iterations + 1, (1,), generator=g)) for g in gens]
                ks = [int(torch.randint(1, iterations + 1, (1,), generator=g)) for g in gens]
                with torch.no_grad():
                    h = _run_members(P, x.new_zeros(E, *state_shape), xs.detach(), xu.detach(), ns,
                                     noise, noise_gens)
                h = _run_members(P, h, xs, xu, ks, noise, noise_gens)
                loss = 0.5 * loss + 0.5 * _masked_bce_members(_fast_decode(P, h), y, m)
        else:
            for d in range(depth):
                xs, xu = _input_terms(P, d, x)
                h = add_noise(_fast_step(P, d, h, xs, xu))
            loss = _masked_bce_members(_fast_decode(P, h), y, m)
        opt.zero_grad()
        loss.sum().backward()           # each net's gradient is its own slice
        _clip_per_member(list(P.values()), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.detach())
    _write_back(nets, P)
    for net in nets:
        net.to(dev).eval()
    return torch.stack(losses).T.cpu().tolist()


def _run_members(P, h: torch.Tensor, xs: torch.Tensor, xu: torch.Tensor, counts: list[int], noise: float,
                 noise_gens: list[torch.Generator]) -> torch.Tensor:
    """Run net ``i`` (a slice of the stacked weights ``P``) for ``counts[i]`` steps from
    ``h[i]``, adding noise drawn from its own generator after every step; return the new
    states ``[E, ...]``. Only the nets still running are computed: sorted by count, they run
    in shrinking groups, so the cost is about ``sum(counts)`` net-steps, not
    ``E * max(counts)``. Differentiable (used with and without gradient)."""
    order = sorted(range(len(counts)), key=lambda i: counts[i])
    done = 0
    for j, i in enumerate(order):
        if counts[i] == done:
            continue
        idx = order[j:]                                  # the nets that run counts[i] - done more steps
        sub = torch.tensor(idx, device=h.device)
        Ps = {k: P[k][sub] for k in ("sh", "uh")}
        hs, xss, xus = h[sub], xs[sub], xu[sub]
        for _ in range(counts[i] - done):
            hs = _fast_step(Ps, 0, hs, xss, xus)
            if noise > 0:
                hs = hs + noise * torch.stack([torch.randn(hs.shape[1:], generator=noise_gens[m], device=hs.device)
                                               for m in idx])
        h = h.index_copy(0, sub, hs)
        done = counts[i]
    return h


def _clip_per_member(params: list[torch.Tensor], max_norm: float) -> None:
    """Clip each net's gradient to global norm ``max_norm`` separately, as
    ``torch.nn.utils.clip_grad_norm_`` would for that net alone."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = sum(g.pow(2).reshape(g.shape[0], -1).sum(1) for g in grads).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


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
    progressive: bool = True,
    seed: int = 0,
    device: torch.device | str = "cpu",
    desc: str | None = None,
) -> list[float]:
    """Train ``net`` to predict reachability on fresh random mazes; return the loss per step.

    Every step draws ``batch_size`` new ``size x size`` mazes (all of them generated at
    the start from ``seed``). The loss is binary cross-entropy on free pixels; Adam with a
    one-cycle learning-rate schedule peaking at ``lr``, gradients clipped to norm 1.

    * :class:`FeedForwardMazeNet`: one forward pass (``iterations`` is not used).
    * :class:`RecurrentMazeNet` with ``progressive=True`` (default): the average of two
      terms, after Bansal et al.'s progressive loss: (a) ``iterations`` steps from the
      zero state; (b) ``n`` steps without gradient (``n`` uniform in
      ``0 .. warm_start_factor * iterations``) followed by ``k`` steps with gradient
      (``k`` uniform in ``1 .. iterations``). Term (b) asks the net to make progress from
      wherever it is, whatever the iteration count. Note that even with
      ``warm_start_factor=0`` term (b) still scores the answer after ``k`` = 1 to
      ``iterations`` steps.
    * :class:`RecurrentMazeNet` with ``progressive=False``: term (a) only: the net is
      scored after exactly ``iterations`` steps and never at any other count (the
      ablation of the recipe, with ``noise=0``).

    ``noise`` adds Gaussian noise of that scale to the hidden state after every step during
    training, so the net must keep its state far from decision boundaries; set 0 to switch
    it off. Deterministic: the same ``seed`` on the same machine gives the same weights and
    losses. Trains through :func:`train_maze_nets` (a batch of one), so several nets can
    also be trained at once. Progress bar via :func:`mesakit.progress`. Raises ValueError
    naming a bad argument. After Bansal et al. 2022 (NeurIPS), "End-to-end algorithm
    synthesis with recurrent networks".
    """
    if not isinstance(net, (RecurrentMazeNet, FeedForwardMazeNet)):
        raise ValueError(f"net must be a RecurrentMazeNet or FeedForwardMazeNet, got {type(net).__name__}")
    return train_maze_nets(
        [net], seeds=[seed], steps=steps, batch_size=batch_size, size=size, open_prob=open_prob,
        iterations=iterations, lr=lr, noise=noise, warm_start_factor=warm_start_factor,
        progressive=progressive, device=device, desc=desc or f"training {type(net).__name__}")[0]


# ---------------------------------------------------------------------------------------
# Evaluation and analysis
# ---------------------------------------------------------------------------------------
def steps_needed(free: torch.Tensor, source: torch.Tensor, *, diagonal: bool = False) -> torch.Tensor:
    """How many flood-fill steps each maze needs: the largest BFS distance from the
    source in it, int64 ``[B]`` (0 when only the source is reachable).

    A flood fill (or any procedure that only learns about a pixel by a chain of
    neighbour-to-neighbour moves) stopped after ``t`` steps marks exactly the pixels at
    distance ``<= t``, so it solves a maze exactly (every pixel right) if and only if
    ``steps_needed <= t``: ``(steps_needed(free, source) <= t).float().mean()`` is the
    share of mazes a perfect ``t``-step flood fill solves. ``diagonal=True`` measures with
    diagonal moves allowed (the reach of a 3x3 max-pool; see :func:`flood_fill_step`).
    """
    free, source = _check_pair(free, source)
    if bool((source & ~free).any()):
        raise ValueError("source must lie on free pixels (a source pixel is a wall)")
    # the flood of bfs_distances, keeping only the last step at which each maze still grew
    reached, last, d = source.clone(), torch.zeros(free.shape[0], dtype=torch.long, device=free.device), 0
    while True:
        nxt = _dilate(reached, bool(diagonal)) & free
        grew = (nxt != reached).flatten(1).any(1)
        if not bool(grew.any()):
            return last.masked_fill_(~source.flatten(1).any(1), -1)   # no source: -1, as bfs_distances
        d += 1
        last.masked_fill_(grew, d)
        reached = nxt


def _run_fast(net, free: torch.Tensor, source: torch.Tensor, iterations: int | None):
    """Yield ``(t, logits [B, H, W])`` after every iteration ``t = 1..iterations`` of a
    recurrent net (or once, after the last block, for a feed-forward net), fast path."""
    P = _stack_weights([net], free.device)
    x = _inputs_cl(free, source).unsqueeze(0)
    h = x.new_zeros(1, *free.shape, net.width)
    if isinstance(net, RecurrentMazeNet):
        xs, xu = _input_terms(P, 0, x)
        for t in range(1, iterations + 1):
            h = _fast_step(P, 0, h, xs, xu)
            yield t, _fast_decode(P, h)[0]
    else:
        for d in range(net.depth):
            xs, xu = _input_terms(P, d, x)
            h = _fast_step(P, d, h, xs, xu)
        yield net.depth, _fast_decode(P, h)[0]


def predict(net: nn.Module, free: torch.Tensor, source: torch.Tensor,
            iterations: int | None = None, *, batch_size: int = 100) -> torch.Tensor:
    """The net's reachability prediction, bool ``[B, H, W]`` on the device of ``free``:
    logit > 0 on free pixels (walls are never reachable). ``iterations`` is required for a
    recurrent net (ignored for a feed-forward one). The net must be on the device of
    ``free``. Mazes go ``batch_size`` at a time (memory only; no effect on results)."""
    if not isinstance(net, (RecurrentMazeNet, FeedForwardMazeNet)):
        raise ValueError(f"net must be a RecurrentMazeNet or FeedForwardMazeNet, got {type(net).__name__}")
    free, source = _check_pair(free, source)
    batch_size = check_positive_int("batch_size", batch_size)
    if isinstance(net, RecurrentMazeNet):
        if iterations is None:
            raise ValueError("iterations must be given for a RecurrentMazeNet")
        iterations = check_positive_int("iterations", iterations)
    out = torch.zeros_like(free)
    with torch.no_grad():
        for sl in _batches(free.shape[0], batch_size):
            for _, logits in _run_fast(net, free[sl], source[sl], iterations):
                pass
            out[sl] = (logits > 0) & free[sl]
    return out


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

    The net must be on the device of ``free``. Mazes are processed ``batch_size`` at a
    time (memory only; no effect on results).
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
            f, y = free[sl], target[sl]
            since = torch.full(f.shape, -1, dtype=torch.long, device=f.device)
            for t, logits in _run_fast(net, free[sl], source[sl], max_iterations):
                on = (logits > 0) & f
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
