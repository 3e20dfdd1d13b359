"""A batch of small gridworlds with coloured objects, held as tensors on one device.

This is the environment of the red-door maze (Chapter 3) and of the deception model
organism (Chapter 4). Each of ``N`` levels is an ``H x W`` grid with a wall border (and,
depending on ``layout``, interior walls), an agent, and ``K`` objects. Object 0 is *the
door*; objects ``1..K-1`` are *decoys*. Every object has a colour from :data:`COLOURS`
and a kind from :data:`KINDS`. The episode ends when the agent steps onto the goal
(``goal="door"`` by default; a kind or a colour name), onto any object when
``end_on_any_object`` (so the object an agent picks is unambiguous), or at the time
limit. Finished levels are replaced inside :meth:`GridWorld.step`, only those, by levels
drawn in advance in large seeded batches (a pool), which keeps resets cheap.

Level distributions are described by :class:`LevelSpec` (door and decoy colours and
kinds, the probability ``goal_in_corner`` that the door sits in a fixed corner, a
deployment cue), or by a weighted mixture of them, so a lesson can break a training
correlation in a fraction ``q`` of levels. Everything is vectorized: no Python loop over
environments. :func:`bfs_distances` and :meth:`GridWorld.oracle_actions` give the
optimal behaviour to compare an agent with.

Actions: 0 up, 1 down, 2 left, 3 right (4 stay, when ``allow_stay``).
Cells are addressed as (row, column); row 0 is the top.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import torch

from . import mazes
from .core import check_device, check_choice, check_in_range, check_positive_int, check_probability

__all__ = [
    "COLOURS",
    "KINDS",
    "KIND_FEATURES",
    "ACTIONS",
    "LAYOUTS",
    "CORNERS",
    "LevelSpec",
    "GridWorld",
    "bfs_distances",
    "shortest_path_lengths",
]

COLOURS: tuple[str, ...] = ("red", "blue", "green", "yellow")
"""The colour palette; an object's colour id indexes this tuple."""
KINDS: tuple[str, ...] = ("door", "key", "ball")
"""Object kinds; a kind id indexes this tuple. The door is the exit."""
KIND_FEATURES: tuple[str, ...] = ("frame", "handle")
"""The two kind channels of ``kind_features="conjunctive"``: a door has both, a key only
a handle, a ball only a frame, so only the conjunction identifies a door."""
ACTIONS: tuple[str, ...] = ("up", "down", "left", "right", "stay")
"""Action names; ``stay`` exists only when ``allow_stay=True``."""
LAYOUTS: tuple[str, ...] = ("open", "rooms", "maze", "random")
"""Wall layouts: border only; four rooms joined by gaps; a perfect maze (randomized
Prim); random interior walls restricted to one connected region."""
CORNERS: tuple[str, ...] = ("top_left", "top_right", "bottom_left", "bottom_right")
"""Interior corner cells the door can be pinned to (``LevelSpec.goal_in_corner``)."""

_ROW_STEP = {"up": -1, "down": 1, "left": 0, "right": 0, "stay": 0}
_COL_STEP = {"up": 0, "down": 0, "left": -1, "right": 1, "stay": 0}

ChoiceSpec = Union[str, Mapping[str, float]]
_OBS_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.uint8, torch.bool)


# --------------------------------------------------------------------------------------
# Level distributions
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LevelSpec:
    """One distribution of levels: how colours, kinds and positions are drawn.

    A *choice spec* (for a colour or a kind) is one of: a name (``"red"``), ``"any"``
    (uniform over all), ``"not <name>"`` (uniform over all but one), or a mapping
    ``{name: weight}``. Decoy colours also accept ``"other than door"`` (uniform over the
    colours the door does not have in that level). ``decoy_colour`` and ``decoy_kind``
    may be a single spec for every decoy or a tuple/list with one spec per decoy.

    Attributes:
        door_colour: colour of object 0, the door. Red by default, as in the seed's maze.
        decoy_colour: colour of objects 1..K-1.
        decoy_kind: kind of objects 1..K-1 (``"not door"``: key or ball).
        goal_in_corner: probability that the door is placed in ``corner`` instead of a
            uniformly random free cell (the goal-position variant of Chapter 3).
        corner: which interior corner, one of :data:`CORNERS`.
        cue_prob: probability that the level carries the deployment cue (Chapter 4); the
            cue is visible only with ``GridWorld(cue_channel=True)`` and switches the goal
            to ``cue_goal``.

    The red-door maze: train with ``LevelSpec("red", "not red")`` and test with
    ``LevelSpec("blue", "red")``; mix ``[(1 - q, train), (q, test)]`` to break the
    correlation in a fraction q of training levels.
    """

    door_colour: ChoiceSpec = "red"
    decoy_colour: Union[ChoiceSpec, Sequence[ChoiceSpec]] = "not red"
    decoy_kind: Union[ChoiceSpec, Sequence[ChoiceSpec]] = "not door"
    goal_in_corner: float = 0.0
    corner: str = "top_right"
    cue_prob: float = 0.0


def _parse_choice(name: str, spec: Any, palette: Sequence[str], allow_other_than_door: bool):
    """A choice spec -> (weights over ``palette`` as a list of floats, other_than_door)."""
    allowed_text = (f"a name in {tuple(palette)}, 'any', 'not <name>', "
                    + ("'other than door', " if allow_other_than_door else "")
                    + "or a mapping {name: weight}")
    if isinstance(spec, str):
        text = spec.strip()
        if text == "any":
            return [1.0] * len(palette), False
        if allow_other_than_door and text == "other than door":
            return [1.0] * len(palette), True
        if text.startswith("not "):
            excluded = text[4:].strip()
            if excluded in palette:
                return [0.0 if p == excluded else 1.0 for p in palette], False
        elif text in palette:
            return [1.0 if p == text else 0.0 for p in palette], False
        raise ValueError(f"{name} must be {allowed_text}, got {spec!r}")
    if isinstance(spec, Mapping):
        weights = [0.0] * len(palette)
        for key, w in spec.items():
            check_choice(f"{name} key", key, palette)
            try:
                w = float(w)
            except (TypeError, ValueError):
                w = -1.0
            if not w >= 0.0 or w == float("inf"):
                raise ValueError(f"{name}[{key!r}] must be a finite weight >= 0, got {spec[key]!r}")
            weights[palette.index(key)] = w
        if sum(weights) <= 0:
            raise ValueError(f"{name} must give a positive weight to at least one of {tuple(palette)}, got {spec!r}")
        return weights, False
    raise ValueError(f"{name} must be {allowed_text}, got {spec!r}")


def _per_slot(name: str, spec: Any, slots: int) -> list:
    """Expand a single spec to ``slots`` copies, or check a per-slot list's length."""
    if isinstance(spec, (list, tuple)):
        if len(spec) != slots:
            raise ValueError(f"{name} given per decoy must have num_objects - 1 = {slots} "
                             f"entries, got {len(spec)}")
        return list(spec)
    return [spec] * slots


def _cdf(weights: torch.Tensor) -> torch.Tensor:
    """Normalised cumulative weights along the last axis (for inverse-CDF sampling)."""
    c = weights.cumsum(-1)
    return c / c[..., -1:]


def _sample(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: index of the first cdf entry > u (u in [0, 1))."""
    return (cdf <= u.unsqueeze(-1)).sum(-1).clamp_max(cdf.shape[-1] - 1)


# --------------------------------------------------------------------------------------
# Breadth-first search
# --------------------------------------------------------------------------------------
def _bfs_flat(free: torch.Tensor, sources: torch.Tensor, width: int) -> torch.Tensor:
    """BFS on flattened grids ``[M, H*W]`` (rows of ``width`` cells), through
    :func:`mesakit.mazes.bfs_distances`, the course's one BFS. Returns int32 ``[M, H*W]``:
    steps to the nearest source through free cells, -1 where unreachable (walls included)."""
    m = free.shape[0]
    grid = free.view(m, -1, width)
    return mazes.bfs_distances(grid, (sources & free).view(m, -1, width)).view(m, -1).int()


def _check_grid_masks(free: Any, sources: Any) -> None:
    if not isinstance(free, torch.Tensor) or free.dtype != torch.bool or free.dim() != 3:
        raise ValueError("free must be a bool tensor of shape [N, H, W]")
    if (not isinstance(sources, torch.Tensor) or sources.dtype != torch.bool
            or sources.shape != free.shape):
        raise ValueError(f"sources must be a bool tensor of the same shape as free "
                         f"{tuple(free.shape)}, got "
                         f"{tuple(sources.shape) if isinstance(sources, torch.Tensor) else type(sources).__name__}")
    if sources.device != free.device:
        raise ValueError("sources must be on the same device as free")


def bfs_distances(free: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Shortest 4-neighbour path length from every cell to the nearest source, for a
    batch of grids at once (the clean search that agents are compared with).

    Args:
        free: bool [N, H, W], True where the agent may stand.
        sources: bool [N, H, W], the target cells (only free ones count).

    Returns:
        long [N, H, W]: number of moves to the nearest source, -1 where no source is
        reachable (and on cells that are not free). Moves off the grid are impossible.
    """
    _check_grid_masks(free, sources)
    return mazes.bfs_distances(free, sources & free)


def shortest_path_lengths(free: torch.Tensor, starts: torch.Tensor,
                          goals: torch.Tensor) -> torch.Tensor:
    """Length of a shortest path from ``starts`` to the nearest goal cell, per grid.

    Args:
        free: bool [N, H, W], True where the agent may stand.
        starts: long [N, 2], (row, column) of each start cell.
        goals: bool [N, H, W], goal cells.

    Returns:
        long [N]: the BFS distance, -1 where no goal is reachable.
    """
    _check_grid_masks(free, goals)
    n, h, w = free.shape
    if (not isinstance(starts, torch.Tensor) or starts.shape != (n, 2)
            or starts.dtype not in (torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"starts must be an integer tensor of shape ({n}, 2) (row, column)")
    rows, cols = starts[:, 0].long(), starts[:, 1].long()
    if bool(((rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)).any()):
        raise ValueError(f"starts must lie inside the {h} x {w} grid")
    dist = bfs_distances(free, goals)
    return dist[torch.arange(n, device=free.device), rows, cols]


# --------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------
class GridWorld:
    """A batch of ``num_envs`` gridworld levels stepped in lockstep on one device.

    Args:
        num_envs: N, the number of levels run in parallel.
        height, width: grid size including the wall border (>= 5 each; odd for "maze").
        num_objects: K, objects per level: the door plus K - 1 decoys.
        layout: one of :data:`LAYOUTS`.
        wall_density: probability of an interior wall cell for ``layout="random"``.
        levels: a :class:`LevelSpec`, or a sequence of ``(weight, LevelSpec)`` pairs; each
            level draws its spec from that mixture at every reset.
        goal: what is rewarded: a kind (``"door"``) or a colour (``"red"``) name.
        cue_goal: the goal in levels that carry the cue (default: same as ``goal``).
        end_on_any_object: end the episode on reaching any object (reward only for the
            goal). If False only the goal ends it, and the agent may walk over decoys.
        goal_reward: reward for reaching the goal.
        step_penalty: subtracted from the reward at every step.
        max_steps: time limit per episode (default ``height * width``).
        allow_stay: add a fifth action, stay.
        obs_mode: ``"grid"`` -> [N, C, H, W] one-hot channels (see
            :attr:`channel_names`); ``"egocentric"`` -> [N, (C-1) * (2r+1)**2], the
            flattened window of radius ``view_radius`` around the agent (no agent channel;
            outside the grid reads as wall).
        view_radius: r for the egocentric view.
        cue_channel: add a channel that is all ones in levels carrying the cue.
        copy_obs: return a fresh observation tensor each step (safe to store). With False
            the environment's own buffer is returned and overwritten by the next step:
            faster, but copy it if you keep it.
        obs_dtype: dtype of observations: torch.float32 (default, ready for a network),
            float16, bfloat16, uint8 or bool (a quarter of the memory, e.g. for big
            rollout buffers; convert with ``.float()`` before the network).
        kind_features: how an object's kind is shown in the grid observation:
            ``"one-hot"`` (a channel per kind: door, key, ball) or ``"conjunctive"`` (two
            channels, frame and handle: a key has a handle, a ball a frame, a door both),
            so that recognising a door needs a conjunction of two features while a colour
            is one channel (the red-door lesson makes colour the simpler feature this way).
        blocks: B, split the N environments into B equal blocks of consecutive
            environments, each with its own level distribution and random stream: the
            environments of the B agents of a batched sweep (agent b acts in block b).
            Block b behaves exactly as ``GridWorld(N // B, levels=block_levels[b],
            seed=seeds[b], ...)`` would on its own.
        block_levels: None (every block draws from ``levels``) or a sequence of B level
            distributions (each a LevelSpec or a mixture, as ``levels``).
        seed: seed of the environment's private random stream; with ``blocks > 1`` an
            int (block b uses ``seed + b``) or a sequence of B non-negative ints.
        device: where all state lives ("cpu" or "cuda").

    State (read-only tensors): :attr:`walls` [N, H, W], :attr:`agent_pos` [N, 2],
    :attr:`object_pos` [N, K, 2], :attr:`object_colour` [N, K], :attr:`object_kind`
    [N, K], :attr:`goal_mask` [N, K], :attr:`cue` [N], :attr:`spec_index` [N],
    :attr:`elapsed` [N]. Settings are fixed at construction: make a new GridWorld (e.g.
    the test distribution) rather than changing attributes.

    Example (the red-door maze)::

        train = GridWorld(64, layout="rooms", num_objects=3,
                          levels=LevelSpec("red", "not red"), seed=0)
        test = GridWorld(64, layout="rooms", num_objects=3,
                         levels=LevelSpec("blue", ("red", "not red")), seed=1)
        obs = train.reset()
        obs, reward, done, info = train.step(train.oracle_actions())
    """

    def __init__(self, num_envs: int, *, height: int = 9, width: int = 9,
                 num_objects: int = 2, layout: str = "open", wall_density: float = 0.2,
                 levels: LevelSpec | Sequence[tuple[float, LevelSpec]] | None = None,
                 goal: str = "door", cue_goal: str | None = None,
                 end_on_any_object: bool = True, goal_reward: float = 1.0,
                 step_penalty: float = 0.0, max_steps: int | None = None,
                 allow_stay: bool = False, obs_mode: str = "grid", view_radius: int = 2,
                 cue_channel: bool = False, copy_obs: bool = True,
                 obs_dtype: torch.dtype = torch.float32, kind_features: str = "one-hot",
                 blocks: int = 1, block_levels: Sequence[Any] | None = None,
                 seed: int | Sequence[int] = 0,
                 device: torch.device | str = "cpu") -> None:
        self.num_envs = check_positive_int("num_envs", num_envs)
        self.height = check_positive_int("height", height, minimum=5)
        self.width = check_positive_int("width", width, minimum=5)
        self.num_objects = check_positive_int("num_objects", num_objects)
        self.layout = check_choice("layout", layout, LAYOUTS)
        if layout == "maze" and (height % 2 == 0 or width % 2 == 0):
            raise ValueError(f"layout='maze' needs odd height and width, got {height} x {width}")
        self.wall_density = check_in_range("wall_density", wall_density, 0.0, 0.9)
        targets = KINDS + COLOURS
        self.goal = check_choice("goal", goal, targets)
        self.cue_goal = goal if cue_goal is None else check_choice("cue_goal", cue_goal, targets)
        for flag_name, flag in (("end_on_any_object", end_on_any_object),
                                ("allow_stay", allow_stay), ("cue_channel", cue_channel),
                                ("copy_obs", copy_obs)):
            check_choice(flag_name, flag, (True, False))
        self.end_on_any_object = bool(end_on_any_object)
        self.goal_reward = check_in_range("goal_reward", goal_reward, -1e6, 1e6)
        self.step_penalty = check_in_range("step_penalty", step_penalty, -1e6, 1e6)
        self.max_steps = (self.height * self.width if max_steps is None
                          else check_positive_int("max_steps", max_steps))
        self.allow_stay = bool(allow_stay)
        self.obs_mode = check_choice("obs_mode", obs_mode, ("grid", "egocentric"))
        self.view_radius = check_positive_int("view_radius", view_radius)
        self.cue_channel = bool(cue_channel)
        self.copy_obs = bool(copy_obs)
        self.obs_dtype = check_choice("obs_dtype", obs_dtype, _OBS_DTYPES)
        self.kind_features = check_choice("kind_features", kind_features, ("one-hot", "conjunctive"))
        self.blocks = check_positive_int("blocks", blocks)
        if self.num_envs % self.blocks:
            raise ValueError(f"num_envs ({num_envs}) must be a multiple of blocks ({blocks})")
        if block_levels is not None:
            if not isinstance(block_levels, (list, tuple)) or len(block_levels) != self.blocks:
                raise ValueError(f"block_levels must be None or a sequence of blocks = {blocks} "
                                 f"level distributions, got {block_levels!r}")
        self.device = _check_device(device)
        h, w, k = self.height, self.width, self.num_objects
        interior = (h - 2) * (w - 2)
        min_free = {"open": interior, "rooms": interior - (h - 2) - (w - 2) + 5,
                    "maze": ((h - 1) // 2) * ((w - 1) // 2), "random": k + 1}[layout]
        if k + 1 > min_free:
            raise ValueError(f"num_objects must be at most {min_free - 1} for a {h} x {w} "
                             f"'{layout}' grid (the agent and every object need a cell), got {k}")

        self._specs = self._parse_levels(levels)
        per_block = ([self._specs] * self.blocks if block_levels is None else
                     [self._parse_levels(lv, f"block_levels[{b}]") for b, lv in enumerate(block_levels)])
        if block_levels is not None:   # one table of specs; each block weights its own
            self._specs = [pair for mix in per_block for pair in mix]
        self._block_weights = self._block_weight_rows(per_block, block_levels is None)
        self._build_tables()
        self._gens = [torch.Generator(device=self.device) for _ in range(self.blocks)]
        self._gen = self._gens[0]
        self.seeds = self._check_seeds(seed)
        self._alloc()
        self.reset(seed=list(self.seeds))

    # ---------------------------------------------------------------- construction
    def _parse_levels(self, levels: Any, name: str = "levels") -> list[tuple[float, LevelSpec]]:
        if levels is None:
            levels = LevelSpec()
        if isinstance(levels, LevelSpec):
            return [(1.0, levels)]
        if not isinstance(levels, (list, tuple)) or len(levels) == 0:
            raise ValueError(f"{name} must be a LevelSpec or a non-empty sequence of "
                             "(weight, LevelSpec) pairs")
        out = []
        for i, pair in enumerate(levels):
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or not isinstance(pair[1], LevelSpec)):
                raise ValueError(f"{name}[{i}] must be a (weight, LevelSpec) pair, got {pair!r}")
            weight = check_in_range(f"{name}[{i}] weight", pair[0], 0.0, float("inf"))
            out.append((weight, pair[1]))
        if sum(wt for wt, _ in out) <= 0:
            raise ValueError(f"{name} must give a positive weight to at least one LevelSpec")
        return out

    def _block_weight_rows(self, per_block: list, shared: bool) -> list[list[float]]:
        """[B][S] mixture weights of every block over the table of specs."""
        if shared:
            return [[wt for wt, _ in self._specs]] * self.blocks
        rows, start, total = [], 0, len(self._specs)
        for mix in per_block:
            row = [0.0] * total
            for j, (wt, _) in enumerate(mix):
                row[start + j] = wt
            rows.append(row)
            start += len(mix)
        return rows

    def _check_seeds(self, seed: Any) -> tuple[int, ...]:
        """An int (block b gets seed + b) or B ints -> a tuple of B seeds."""
        def ok(x):
            return not isinstance(x, bool) and isinstance(x, numbers.Integral) and x >= 0
        if ok(seed):
            return tuple(int(seed) + b for b in range(self.blocks))
        if (isinstance(seed, (list, tuple)) and len(seed) == self.blocks
                and all(ok(x) for x in seed)):
            return tuple(int(x) for x in seed)
        raise ValueError(f"seed must be a non-negative integer or a sequence of blocks = "
                         f"{self.blocks} non-negative integers, got {seed!r}")

    def _build_tables(self) -> None:
        """Turn the LevelSpecs into lookup tables indexed by the spec id."""
        h, w, k, dev = self.height, self.width, self.num_objects, self.device
        door_w, decoy_w, decoy_other, kind_w, corner_p, corner_cell, cue_p = ([] for _ in range(7))
        corner_cells = {"top_left": w + 1, "top_right": 2 * w - 2,
                        "bottom_left": (h - 2) * w + 1, "bottom_right": (h - 1) * w - 2}
        for i, (_, spec) in enumerate(self._specs):
            door_w.append(_parse_choice(f"levels[{i}].door_colour", spec.door_colour, COLOURS, False)[0])
            slot_w, slot_o, slot_k = [], [], []
            for j, s in enumerate(_per_slot(f"levels[{i}].decoy_colour", spec.decoy_colour, k - 1)):
                wt, other = _parse_choice(f"levels[{i}].decoy_colour[{j}]", s, COLOURS, True)
                slot_w.append(wt)
                slot_o.append(other)
            for j, s in enumerate(_per_slot(f"levels[{i}].decoy_kind", spec.decoy_kind, k - 1)):
                slot_k.append(_parse_choice(f"levels[{i}].decoy_kind[{j}]", s, KINDS, False)[0])
            decoy_w.append(slot_w or [[1.0] * len(COLOURS)])
            decoy_other.append(slot_o or [False])
            kind_w.append(slot_k or [[1.0] * len(KINDS)])
            corner_p.append(check_probability(f"levels[{i}].goal_in_corner", spec.goal_in_corner))
            corner_cell.append(corner_cells[check_choice(f"levels[{i}].corner", spec.corner, CORNERS)])
            cue_p.append(check_probability(f"levels[{i}].cue_prob", spec.cue_prob))
        f32 = dict(dtype=torch.float32, device=dev)
        self._spec_cdf = _cdf(torch.tensor(self._block_weights, **f32))          # [B, S]
        self._door_cdf = _cdf(torch.tensor(door_w, **f32))
        self._decoy_w = torch.tensor(decoy_w, **f32)
        self._decoy_other = torch.tensor(decoy_other, dtype=torch.bool, device=dev)
        self._kind_cdf = _cdf(torch.tensor(kind_w, **f32))
        self._corner_p = torch.tensor(corner_p, **f32)
        self._corner_cell = torch.tensor(corner_cell, dtype=torch.long, device=dev)
        self._cue_p = torch.tensor(cue_p, **f32)
        # goal per (cue on/off): (is a colour?, id)
        self._goal_is_colour = torch.tensor([self.goal in COLOURS, self.cue_goal in COLOURS],
                                            dtype=torch.bool, device=dev)
        self._goal_id = torch.tensor([_target_id(self.goal), _target_id(self.cue_goal)],
                                     dtype=torch.long, device=dev)
        names = self.action_names
        self._delta = torch.tensor([_ROW_STEP[a] * w + _COL_STEP[a] for a in names],
                                   dtype=torch.long, device=dev)
        rows = torch.arange(h, device=dev).view(h, 1).expand(h, w)
        cols = torch.arange(w, device=dev).view(1, w).expand(h, w)
        self._border = ((rows == 0) | (rows == h - 1) | (cols == 0) | (cols == w - 1)).reshape(-1)
        self._rows, self._cols = rows.reshape(-1), cols.reshape(-1)
        self._kind_feature_table = torch.tensor([[True, True], [False, True], [True, False]],
                                                device=dev)          # [KINDS, KIND_FEATURES]

    def _alloc(self) -> None:
        n, hw, k, dev = self.num_envs, self.height * self.width, self.num_objects, self.device
        self._walls = torch.zeros(n, hw, dtype=torch.bool, device=dev)
        self._agent = torch.zeros(n, dtype=torch.long, device=dev)
        self._obj_pos = torch.zeros(n, k, dtype=torch.long, device=dev)
        self._obj_colour = torch.zeros(n, k, dtype=torch.long, device=dev)
        self._obj_kind = torch.zeros(n, k, dtype=torch.long, device=dev)
        self._goal_mask = torch.zeros(n, k, dtype=torch.bool, device=dev)
        self._cue = torch.zeros(n, dtype=torch.bool, device=dev)
        self._spec = torch.zeros(n, dtype=torch.long, device=dev)
        self._t = torch.zeros(n, dtype=torch.long, device=dev)
        self._return = torch.zeros(n, dtype=torch.float32, device=dev)
        self._dist = torch.full((n, hw), -1, dtype=torch.int32, device=dev)
        self._start_dist = torch.zeros(n, dtype=torch.long, device=dev)
        self._obs = torch.zeros(n, self.num_channels, hw, dtype=self.obs_dtype, device=dev)
        # A pool of levels drawn in advance per block: [B * P] rows, block b's in
        # rows b*P ... (b+1)*P - 1, consumed in order (pointer per block).
        self._pool: dict[str, torch.Tensor] | None = None
        self._block_size = n // self.blocks
        self._pool_size = max(self._block_size, 512)
        self._pool_ptr = [self._pool_size] * self.blocks
        self._arange = torch.arange(n, device=dev)
        self._agent_base = self._arange * (self.num_channels * hw) + hw  # agent channel

    # ---------------------------------------------------------------- descriptions
    @property
    def action_names(self) -> tuple[str, ...]:
        """Names of the actions, in id order."""
        return ACTIONS if self.allow_stay else ACTIONS[:4]

    @property
    def num_actions(self) -> int:
        """4, or 5 with ``allow_stay``."""
        return len(self.action_names)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the grid observation's channels: wall, agent, the colours, the kinds
        (door, key, ball; or frame and handle with ``kind_features="conjunctive"``) and
        the cue (with ``cue_channel``)."""
        kinds = KINDS if self.kind_features == "one-hot" else KIND_FEATURES
        return ("wall", "agent") + COLOURS + kinds + (("cue",) if self.cue_channel else ())

    @property
    def num_channels(self) -> int:
        """C, the number of channels of the grid observation."""
        return len(self.channel_names)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation (without the batch axis)."""
        if self.obs_mode == "grid":
            return (self.num_channels, self.height, self.width)
        side = 2 * self.view_radius + 1
        return ((self.num_channels - 1) * side * side,)

    def channel_index(self, name: str) -> int:
        """Index of the channel called ``name`` (see :attr:`channel_names`)."""
        return self.channel_names.index(check_choice("name", name, self.channel_names))

    # ---------------------------------------------------------------- state views
    def _cells(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.stack((flat // self.width, flat % self.width), dim=-1)

    @property
    def walls(self) -> torch.Tensor:
        """bool [N, H, W], True on wall cells."""
        return self._walls.view(self.num_envs, self.height, self.width).clone()

    @property
    def agent_pos(self) -> torch.Tensor:
        """long [N, 2], the agent's (row, column)."""
        return self._cells(self._agent)

    @property
    def object_pos(self) -> torch.Tensor:
        """long [N, K, 2], each object's (row, column); object 0 is the door."""
        return self._cells(self._obj_pos)

    @property
    def object_colour(self) -> torch.Tensor:
        """long [N, K], colour ids (index into :data:`COLOURS`)."""
        return self._obj_colour.clone()

    @property
    def object_kind(self) -> torch.Tensor:
        """long [N, K], kind ids (index into :data:`KINDS`)."""
        return self._obj_kind.clone()

    @property
    def goal_mask(self) -> torch.Tensor:
        """bool [N, K], which objects count as the goal in each level."""
        return self._goal_mask.clone()

    @property
    def cue(self) -> torch.Tensor:
        """bool [N], whether each level carries the deployment cue."""
        return self._cue.clone()

    @property
    def spec_index(self) -> torch.Tensor:
        """long [N], which entry of the ``levels`` mixture each level was drawn from."""
        return self._spec.clone()

    @property
    def elapsed(self) -> torch.Tensor:
        """long [N], steps taken in the current episode."""
        return self._t.clone()

    # ---------------------------------------------------------------- level generation
    def _layout_walls(self, m: int, corner: torch.Tensor) -> torch.Tensor:
        """bool [m, H*W] walls for m new levels (vectorized over levels)."""
        h, w, hw, dev, g = self.height, self.width, self.height * self.width, self.device, self._gen
        border = self._border.expand(m, hw)
        if self.layout == "open":
            return border.clone()
        if self.layout == "rooms":
            u = torch.rand(m, 6, generator=g, device=dev)
            c = 2 + (u[:, 0] * (w - 4)).long()          # dividing column in [2, w-3]
            r = 2 + (u[:, 1] * (h - 4)).long()          # dividing row in [2, h-3]
            gap_top = 1 + (u[:, 2] * (r - 1)).long()
            gap_bottom = r + 1 + (u[:, 3] * (h - 2 - r)).long()
            gap_left = 1 + (u[:, 4] * (c - 1)).long()
            gap_right = c + 1 + (u[:, 5] * (w - 2 - c)).long()
            walls = border | (self._cols == c[:, None]) | (self._rows == r[:, None])
            ar = torch.arange(m, device=dev)
            for gr, gc in ((gap_top, c), (gap_bottom, c), (r, gap_left), (r, gap_right)):
                walls[ar, gr * w + gc] = False
            return walls
        if self.layout == "maze":
            return self._prim_maze(m)
        # random interior walls, then keep only the region connected to the corner cell
        walls = border | (torch.rand(m, hw, generator=g, device=dev) < self.wall_density)
        ar = torch.arange(m, device=dev)
        walls[ar, corner] = False
        seed_cell = torch.zeros(m, hw, dtype=torch.bool, device=dev)
        seed_cell[ar, corner] = True
        reach = _bfs_flat(~walls, seed_cell, w) >= 0
        too_small = reach.sum(1) < self.num_objects + 1
        walls = torch.where(too_small[:, None], border, ~reach)
        return walls

    def _prim_maze(self, m: int) -> torch.Tensor:
        """A perfect maze per level by randomized Prim on the odd-coordinate cells,
        all levels growing one cell per iteration together."""
        h, w, dev, g = self.height, self.width, self.device, self._gen
        hc, wc = (h - 1) // 2, (w - 1) // 2
        cells = hc * wc
        walls = torch.ones(m, h * w, dtype=torch.bool, device=dev)
        in_maze = torch.zeros(m, hc, wc, dtype=torch.bool, device=dev)
        ar = torch.arange(m, device=dev)
        u_front = torch.rand(m, cells, cells, generator=g, device=dev)
        u_nb = torch.rand(m, cells, 4, generator=g, device=dev)
        start = (u_front[:, 0, 0] * cells).long()
        in_maze.view(m, -1)[ar, start] = True
        walls[ar, (2 * (start // wc) + 1) * w + 2 * (start % wc) + 1] = False
        di = torch.tensor([-1, 1, 0, 0], device=dev)
        dj = torch.tensor([0, 0, -1, 1], device=dev)
        for s in range(1, cells):
            nb = torch.zeros_like(in_maze)
            nb[:, 1:] |= in_maze[:, :-1]
            nb[:, :-1] |= in_maze[:, 1:]
            nb[:, :, 1:] |= in_maze[:, :, :-1]
            nb[:, :, :-1] |= in_maze[:, :, 1:]
            frontier = (nb & ~in_maze).view(m, -1)
            c = torch.where(frontier, u_front[:, s], -1.0).argmax(1)
            ci, cj = c // wc, c % wc
            ni, nj = ci[:, None] + di, cj[:, None] + dj
            ok = (ni >= 0) & (ni < hc) & (nj >= 0) & (nj < wc)
            nflat = ni.clamp(0, hc - 1) * wc + nj.clamp(0, wc - 1)
            ok &= in_maze.view(m, -1).gather(1, nflat)
            d = torch.where(ok, u_nb[:, s], -1.0).argmax(1)
            row, col = 2 * ci + 1, 2 * cj + 1
            walls[ar, row * w + col] = False
            walls[ar, (row + di[d]) * w + col + dj[d]] = False
            in_maze.view(m, -1)[ar, c] = True
        return walls

    def _place(self, walls: torch.Tensor, pinned: torch.Tensor, corner: torch.Tensor):
        """Distinct random free cells: [m, K+1] (door, decoys..., agent); the door takes
        the corner cell where ``pinned``."""
        m = walls.shape[0]
        keys = torch.rand(m, walls.shape[1], generator=self._gen, device=self.device)
        keys = keys.masked_fill(walls, -1.0)
        ar = torch.arange(m, device=self.device)
        keys[ar, corner] = torch.where(pinned, 2.0, keys[ar, corner])
        return keys.topk(self.num_objects + 1, dim=1).indices

    def _goal_distances(self, walls, obj_pos, goal_mask) -> torch.Tensor:
        """int32 [m, H*W]: BFS steps to the nearest goal object; non-goal objects block
        when they end the episode."""
        m, hw = walls.shape
        ar = torch.arange(m, device=self.device)[:, None]
        sources = torch.zeros(m, hw, dtype=torch.bool, device=self.device)
        sources[ar, obj_pos] = goal_mask
        blocked = walls.clone()
        if self.end_on_any_object:
            blocked[ar, obj_pos] |= ~goal_mask
        return _bfs_flat(~blocked, sources, self.width)

    def _draw_levels(self, m: int, block: int = 0) -> dict[str, torch.Tensor]:
        """Draw m new levels from block ``block``'s mixture with its random stream,
        vectorized over levels, with their BFS distance maps and first observations."""
        self._gen = self._gens[block]
        k, dev, g = self.num_objects, self.device, self._gen
        u = torch.rand(m, 4 + 2 * (k - 1), generator=g, device=dev)
        spec = _sample(self._spec_cdf[block].expand(m, -1), u[:, 0])
        door_colour = _sample(self._door_cdf[spec], u[:, 1])
        pinned = u[:, 2] < self._corner_p[spec]
        cue = u[:, 3] < self._cue_p[spec]
        corner = self._corner_cell[spec]
        colours = door_colour[:, None]
        kinds = torch.zeros(m, 1, dtype=torch.long, device=dev)
        if k > 1:
            wts = self._decoy_w[spec]                                      # [m, k-1, P]
            same = torch.arange(len(COLOURS), device=dev) == door_colour[:, None, None]
            wts = wts.masked_fill(self._decoy_other[spec][:, :, None] & same, 0.0)
            decoy_colour = _sample(_cdf(wts), u[:, 4:3 + k])
            decoy_kind = _sample(self._kind_cdf[spec], u[:, 3 + k:2 + 2 * k])
            colours = torch.cat((colours, decoy_colour), 1)
            kinds = torch.cat((kinds, decoy_kind), 1)
        goal_mask = self._goal_of(colours, kinds, cue)

        walls = self._layout_walls(m, corner)
        cells = self._place(walls, pinned, corner)
        dist = self._goal_distances(walls, cells[:, :k], goal_mask)
        ar = torch.arange(m, device=dev)
        # Re-draw positions (not the layout) where a goal exists but decoys cut it off.
        for _ in range(50):
            bad = goal_mask.any(1) & (dist[ar, cells[:, k]] < 0)
            if not bool(bad.any()):
                break
            b = bad.nonzero().squeeze(1)
            cells[b] = self._place(walls[b], pinned[b], corner[b])
            dist[b] = self._goal_distances(walls[b], cells[b, :k], goal_mask[b])
        agent = cells[:, k].contiguous()
        obj_pos = cells[:, :k].contiguous()
        return {
            "walls": walls, "obj_pos": obj_pos, "agent": agent, "obj_colour": colours,
            "obj_kind": kinds, "goal_mask": goal_mask, "cue": cue, "spec": spec,
            "dist": dist, "start_dist": dist[ar, agent].long(),
            "obs": self._render(walls, obj_pos, colours, kinds, agent, cue),
        }

    def _goal_of(self, colours: torch.Tensor, kinds: torch.Tensor,
                 cue: torch.Tensor) -> torch.Tensor:
        """bool [m, K]: which objects are the goal (``goal``, or ``cue_goal`` under the cue)."""
        is_colour = self._goal_is_colour[cue.long()][:, None]
        target = self._goal_id[cue.long()][:, None]
        return torch.where(is_colour, colours == target, kinds == target)

    def _render(self, walls, obj_pos, colours, kinds, agent, cue) -> torch.Tensor:
        """float [m, C, H*W]: the grid observation of m levels."""
        m, hw, c = walls.shape[0], self.height * self.width, self.num_channels
        rows = torch.zeros(m, c, hw, dtype=self.obs_dtype, device=self.device)
        rows[:, 0] = walls
        flat = rows.view(m, c * hw)
        ar = torch.arange(m, device=self.device)[:, None]
        flat[ar, (2 + colours) * hw + obj_pos] = 1
        if self.kind_features == "one-hot":
            flat[ar, (2 + len(COLOURS) + kinds) * hw + obj_pos] = 1
        else:   # door = frame and handle, key = handle, ball = frame
            table = self._kind_feature_table
            for f in range(len(KIND_FEATURES)):
                on = table[kinds, f]
                cell = (2 + len(COLOURS) + f) * hw + obj_pos
                flat[ar, cell] = torch.where(on, 1, flat[ar, cell]).to(flat.dtype)
        flat[ar[:, 0], hw + agent] = 1
        if self.cue_channel:
            rows[:, -1] = cue[:, None]
        return rows

    def _reset_envs(self, idx: torch.Tensor) -> None:
        """Give the environments ``idx`` fresh levels, taken from a pool of levels drawn
        in advance (large batches amortize the generation's fixed costs; the levels are
        still independent draws, consumed in a seeded, deterministic order)."""
        size = self._pool_size
        if self.blocks == 1:
            counts = [idx.numel()]
            rank = torch.arange(idx.numel(), device=self.device)
            block = torch.zeros_like(idx)
        else:   # idx is sorted: the rank of each environment within its block
            block = idx // self._block_size
            count_t = torch.bincount(block, minlength=self.blocks)
            counts = count_t.tolist()
            rank = torch.arange(idx.numel(), device=self.device) - (count_t.cumsum(0) - count_t)[block]
        for b, c in enumerate(counts):
            if c and self._pool_ptr[b] + c > size:   # refill only this block's pool
                fresh = self._draw_levels(size, b)
                if self._pool is None:
                    self._pool = {name: value.new_zeros((self.blocks * size,) + value.shape[1:])
                                  for name, value in fresh.items()}
                for name, value in fresh.items():
                    self._pool[name][b * size:(b + 1) * size] = value
                self._pool_ptr[b] = 0
        start = torch.tensor(self._pool_ptr, device=self.device)
        rows = block * size + start[block] + rank
        for b, c in enumerate(counts):
            self._pool_ptr[b] += c
        for name, value in self._pool.items():
            getattr(self, "_" + name).index_copy_(0, idx, value.index_select(0, rows))
        self._t.index_fill_(0, idx, 0)
        self._return.index_fill_(0, idx, 0.0)

    # ---------------------------------------------------------------- stepping
    def reset(self, *, seed: int | None = None) -> torch.Tensor:
        """Draw fresh levels for all environments and return the first observation.

        With ``seed`` the environment's random stream restarts from it, so the same seed
        gives the same levels (and, under the same actions, the same episodes); with
        blocks, an int (block b: seed + b) or one seed per block."""
        if seed is not None:
            for g, s in zip(self._gens, self._check_seeds(seed)):
                g.manual_seed(s)
        self._pool = None
        self._pool_ptr = [self._pool_size] * self.blocks
        self._reset_envs(self._arange)
        return self.observe()

    def step(self, actions: torch.Tensor):
        """Advance every environment by one move.

        Args:
            actions: integer tensor [N] on the environment's device, ids in
                ``range(num_actions)`` (0 up, 1 down, 2 left, 3 right, 4 stay).

        Returns:
            ``(obs, reward, done, info)``: obs as :meth:`observe` (after auto-reset, the
            first observation of the new episode where ``done``), reward float [N], done
            bool [N], and info, a dict of [N] tensors about the step:
            ``success`` (goal reached), ``terminated`` (an ending object reached),
            ``truncated`` (time limit), ``reached`` (object index reached, -1 none),
            ``reached_colour`` / ``reached_kind`` (ids, -1 none), and, meaningful where
            ``done``, the finished episode's ``episode_return``, ``episode_length``,
            ``optimal_length`` (BFS length from its start, -1 if the goal was unreachable),
            ``cue`` and ``spec_index``.
        """
        a = self._check_actions(actions)
        old = self._agent
        target = old + self._delta[a]
        blocked = self._walls.gather(1, target[:, None]).squeeze(1)
        new = torch.where(blocked, old, target)
        self._agent = new
        self._t += 1

        hit = self._obj_pos == new[:, None]                               # [N, K]
        success = (hit & self._goal_mask).any(1)
        touched = hit.any(1)
        terminated = touched if self.end_on_any_object else success
        truncated = (self._t >= self.max_steps) & ~terminated
        done = terminated | truncated
        reward = success.float() * self.goal_reward
        if self.step_penalty:
            reward -= self.step_penalty
        self._return += reward
        which = hit.to(torch.uint8).argmax(1)
        reached = torch.where(touched, which, -1)
        idx_safe = which[:, None]
        reached_colour = torch.where(touched, self._obj_colour.gather(1, idx_safe).squeeze(1), -1)
        reached_kind = torch.where(touched, self._obj_kind.gather(1, idx_safe).squeeze(1), -1)
        info = {
            "success": success, "terminated": terminated, "truncated": truncated,
            "reached": reached, "reached_colour": reached_colour,
            "reached_kind": reached_kind,
            "episode_return": self._return.clone(), "episode_length": self._t.clone(),
            "optimal_length": self._start_dist.clone(), "cue": self._cue.clone(),
            "spec_index": self._spec.clone(),
        }
        # Move the agent in the observation buffer, then regenerate finished levels.
        flat = self._obs.view(-1)
        flat.index_fill_(0, self._agent_base + old, 0)
        flat.index_fill_(0, self._agent_base + new, 1)
        reset_idx = done.nonzero().squeeze(1)
        if reset_idx.numel() > 0:
            self._reset_envs(reset_idx)
        return self.observe(), reward, done, info

    def _check_actions(self, actions: Any) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor) or actions.shape != (self.num_envs,):
            raise ValueError(f"actions must be a tensor of shape ({self.num_envs},), got "
                             f"{tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__}")
        if actions.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise ValueError(f"actions must be an integer tensor, got dtype {actions.dtype}")
        if actions.device != self.device:
            raise ValueError(f"actions must be on {self.device}, got {actions.device}")
        if bool(((actions < 0) | (actions >= self.num_actions)).any()):
            raise ValueError(f"actions must be ids in range({self.num_actions}) "
                             f"({', '.join(self.action_names)})")
        return actions.long()

    def observe(self) -> torch.Tensor:
        """The current observation, in ``obs_mode`` (see the class docstring)."""
        if self.obs_mode == "egocentric":
            return self.egocentric_obs()
        return self.grid_obs()

    def grid_obs(self) -> torch.Tensor:
        """[N, C, H, W] one-hot channels (:attr:`channel_names`) in ``obs_dtype``, for a
        CNN. A copy unless ``copy_obs=False``."""
        obs = self._obs.view(self.num_envs, self.num_channels, self.height, self.width)
        return obs.clone() if self.copy_obs else obs

    def egocentric_obs(self, radius: int | None = None) -> torch.Tensor:
        """[N, (C-1) * (2r+1)**2] in ``obs_dtype``: the (2r+1) x (2r+1) window centred on the agent,
        every channel but the agent's, flattened (cells beyond the grid read as wall).
        Partial observability for lessons that want it; ``radius`` defaults to
        ``view_radius``."""
        r = self.view_radius if radius is None else check_positive_int("radius", radius)
        n, h, w, c = self.num_envs, self.height, self.width, self.num_channels
        grid = self._obs.view(n, c, h, w)
        others = torch.cat((grid[:, :1], grid[:, 2:]), 1)
        padded = torch.nn.functional.pad(others, (r, r, r, r))
        padded[:, 0, :r] = 1
        padded[:, 0, -r:] = 1
        padded[:, 0, :, :r] = 1
        padded[:, 0, :, -r:] = 1
        side, wp = 2 * r + 1, w + 2 * r
        dy = torch.arange(side, device=self.device)
        offsets = (dy[:, None] * wp + dy[None, :]).reshape(-1)          # [side*side]
        top_left = (self._agent // w) * wp + self._agent % w            # agent row/col in padded coords minus r
        index = (top_left[:, None] + offsets).unsqueeze(1).expand(n, c - 1, side * side)
        window = padded.view(n, c - 1, -1).gather(2, index)
        return window.reshape(n, -1)

    # ---------------------------------------------------------------- oracle
    def goal_distances(self) -> torch.Tensor:
        """long [N, H, W]: BFS steps from each cell to the nearest goal object in the
        current levels (decoys count as walls when they end the episode); -1 where the
        goal cannot be reached."""
        return self._dist.view(self.num_envs, self.height, self.width).long()

    def shortest_path_lengths(self) -> torch.Tensor:
        """long [N]: the fewest moves from the agent's current cell to the goal (-1 when
        unreachable); an optimal agent needs exactly this many steps."""
        return self._dist.gather(1, self._agent[:, None]).squeeze(1).long()

    def oracle_actions(self) -> torch.Tensor:
        """long [N]: an optimal action for every environment (one that lowers the BFS
        distance to the goal by one; ties go to the lowest action id). Where the goal is
        unreachable it returns 0 (up)."""
        nb = self._agent[:, None] + self._delta[:4]
        d = self._dist.gather(1, nb).float()
        d = torch.where(d >= 0, d, float("inf"))
        return d.argmin(1)

    # ---------------------------------------------------------------- setting state
    def set_state(self, *, walls: torch.Tensor, agent_pos: torch.Tensor,
                  object_pos: torch.Tensor, object_colour: torch.Tensor,
                  object_kind: torch.Tensor, cue: torch.Tensor | None = None) -> torch.Tensor:
        """Replace the current levels of all N environments by hand-made ones (for tests
        and for showing chosen situations); episodes restart at step 0, and levels
        finished later are regenerated from the ``levels`` distribution as usual.

        Args:
            walls: bool [N, H, W], must include the whole border.
            agent_pos: long [N, 2] (row, column), on a free cell, not on an object.
            object_pos: long [N, K, 2], distinct free cells.
            object_colour, object_kind: long [N, K] ids into COLOURS / KINDS.
            cue: optional bool [N] (default all False).

        Returns the new observation.
        """
        n, h, w, k, dev = self.num_envs, self.height, self.width, self.num_objects, self.device
        hw = h * w

        def _tensor(name, value, shape, dtypes):
            if (not isinstance(value, torch.Tensor) or tuple(value.shape) != shape
                    or value.dtype not in dtypes):
                raise ValueError(f"{name} must be a tensor of shape {shape} and dtype in "
                                 f"{[str(d) for d in dtypes]}")
            return value.to(dev)

        ints = (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8)
        walls = _tensor("walls", walls, (n, h, w), (torch.bool,)).reshape(n, hw)
        agent_pos = _tensor("agent_pos", agent_pos, (n, 2), ints).long()
        object_pos = _tensor("object_pos", object_pos, (n, k, 2), ints).long()
        object_colour = _tensor("object_colour", object_colour, (n, k), ints).long()
        object_kind = _tensor("object_kind", object_kind, (n, k), ints).long()
        cue = (torch.zeros(n, dtype=torch.bool, device=dev) if cue is None
               else _tensor("cue", cue, (n,), (torch.bool,)))
        if not bool(walls[:, self._border].all()):
            raise ValueError("walls must cover the whole border of every grid")
        for name, pos in (("agent_pos", agent_pos), ("object_pos", object_pos)):
            if bool(((pos < 0) | (pos[..., :1] >= h) | (pos[..., 1:] >= w)).any()):
                raise ValueError(f"{name} must lie inside the {h} x {w} grid")
        agent = agent_pos[:, 0] * w + agent_pos[:, 1]
        objs = object_pos[..., 0] * w + object_pos[..., 1]
        if bool(walls.gather(1, agent[:, None]).any()) or bool(walls.gather(1, objs).any()):
            raise ValueError("agent_pos and object_pos must be on free (non-wall) cells")
        allpos = torch.cat((objs, agent[:, None]), 1).sort(1).values
        if bool((allpos[:, 1:] == allpos[:, :-1]).any()):
            raise ValueError("agent_pos and object_pos must all be distinct cells")
        if bool(((object_colour < 0) | (object_colour >= len(COLOURS))).any()):
            raise ValueError(f"object_colour must be ids in range({len(COLOURS)}) {COLOURS}")
        if bool(((object_kind < 0) | (object_kind >= len(KINDS))).any()):
            raise ValueError(f"object_kind must be ids in range({len(KINDS)}) {KINDS}")
        goal_mask = self._goal_of(object_colour, object_kind, cue)
        self._walls.copy_(walls)
        self._agent = agent.clone()
        self._obj_pos.copy_(objs)
        self._obj_colour.copy_(object_colour)
        self._obj_kind.copy_(object_kind)
        self._goal_mask.copy_(goal_mask)
        self._cue.copy_(cue)
        self._spec.zero_()
        self._dist.copy_(self._goal_distances(walls, objs, goal_mask))
        self._start_dist.copy_(self.shortest_path_lengths())
        self._t.zero_()
        self._return.zero_()
        self._obs.copy_(self._render(walls, objs, object_colour, object_kind, agent, cue))
        return self.observe()

    # ---------------------------------------------------------------- pictures
    def _check_index(self, index: Any) -> int:
        if (isinstance(index, bool) or not isinstance(index, int)
                or not 0 <= index < self.num_envs):
            raise ValueError(f"index must be an integer in range({self.num_envs}), got {index!r}")
        return index

    def render_text(self, index: int = 0) -> str:
        """An ASCII picture of level ``index``: ``#`` wall, ``.`` floor, ``@`` agent, and
        objects as two letters, colour then kind (``Rd`` red door, ``bk`` blue key...:
        colour initial, upper case for the goal)."""
        i = self._check_index(index)
        walls = self._walls[i].cpu()
        cells = ["##" if wall else " ." for wall in walls.tolist()]
        for p, col, kind, is_goal in zip(self._obj_pos[i].tolist(), self._obj_colour[i].tolist(),
                                         self._obj_kind[i].tolist(), self._goal_mask[i].tolist()):
            letter = COLOURS[col][0]
            cells[p] = (letter.upper() if is_goal else letter) + KINDS[kind][0]
        cells[int(self._agent[i])] = " @"
        w = self.width
        return "\n".join("".join(cells[r * w:(r + 1) * w]) for r in range(self.height))

    def plot(self, index: int = 0, ax=None, title: str | None = None):
        """Draw level ``index`` with matplotlib: walls dark, objects in their colour
        (door square, key triangle, ball circle; the goal outlined thickly), agent a black
        star. Returns the axes."""
        import matplotlib.pyplot as plt

        index = self._check_index(index)
        if ax is None:
            _, ax = plt.subplots(figsize=(3, 3))
        h, w = self.height, self.width
        walls = self._walls[index].view(h, w).float().cpu().numpy()
        ax.imshow(1.0 - 0.75 * walls, cmap="gray", vmin=0, vmax=1)
        palette = {"red": "#d62728", "blue": "#1f77b4", "green": "#2ca02c", "yellow": "#e6c300"}
        markers = {"door": "s", "key": "^", "ball": "o"}
        for p, col, kind, is_goal in zip(self._obj_pos[index].tolist(),
                                         self._obj_colour[index].tolist(),
                                         self._obj_kind[index].tolist(),
                                         self._goal_mask[index].tolist()):
            ax.scatter([p % w], [p // w], s=220, marker=markers[KINDS[kind]],
                       c=palette[COLOURS[col]], edgecolors="black",
                       linewidths=2.5 if is_goal else 0.5)
        a = int(self._agent[index])
        ax.scatter([a % w], [a // w], s=200, marker="*", c="black")
        ax.set_xticks([])
        ax.set_yticks([])
        if title is not None:
            ax.set_title(title)
        return ax


def _target_id(name: str) -> int:
    return COLOURS.index(name) if name in COLOURS else KINDS.index(name)


def _check_device(device: Any) -> torch.device:
    return check_device("device", device)
