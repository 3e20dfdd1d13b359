"""Mesa-control: a recurrent controller that adapts to the room it is in, with no search.

Chapter 2, lesson 5 ("Adaptation without search"). Chapter 1's rooms
(:mod:`mesakit.thermostat`) with one change: every episode draws its own room, with its
own ``leak`` and ``heat_gain`` (domain randomization, as in OpenAI et al.'s Dactyl,
"Learning Dexterous In-Hand Manipulation", IJRR 2020, and "Solving Rubik's Cube with a
Robot Hand", arXiv:1910.07113, 2019). The dynamics of room ``i`` are Chapter 1's::

    T[t+1] = T[t] + leak_i * (outside_temp - T[t]) + heat_gain_i * clamp(power[t], 0, max_power) + noise[t]

with ``outside_temp``, ``max_power`` and ``noise_std`` from a
:class:`~mesakit.thermostat.ThermostatParams`; with one ``leak`` and ``heat_gain`` for
every room, :func:`room_step` is exactly :func:`mesakit.thermostat.step`.

What is here:

* :class:`RoomRanges`, :class:`Rooms`, :func:`sample_rooms`, :func:`make_rooms`: batches of
  rooms, each with its own physics and setpoint, drawn on the CPU from a seed.
* :func:`room_step`, :func:`holding_power`, :func:`oracle_power`: the dynamics, the
  power that holds a room at its setpoint, and the yardstick controller that is *told*
  the room's physics (the one-step-optimal, "deadbeat" power: once the setpoint is within
  reach, its error is the noise alone, mean squared error ``noise_std**2``, a floor no
  controller can go below).
* :class:`RecurrentControllers` (a GRU per training seed, written out with batched matrix
  products, since ``nn.GRU`` has no batched-weights form) and :class:`MemorylessControllers`
  (the null: an MLP on the current temperature and setpoint only). Both hold E members as
  slices of a leading dimension.
* :func:`train_controllers`: backpropagation through the simulated rooms, all members as
  one program (member ``i`` is what training alone with ``seeds[i]`` gives).
* :func:`run_episodes`, :func:`run_oracle`: frozen controllers (or the oracle) on a batch
  of rooms with common random numbers; :func:`error_by_step`.
* :func:`probe_r2_by_step` (a ridge probe fitted per time step, Alain & Bengio 2016) and
  :func:`least_squares_physics` (explicit system identification by recursive least
  squares on the same trajectory, the probe's yardstick).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
from torch import nn

from .core import check_device, check_in_range, check_positive_int, make_generator, progress
from .thermostat import ThermostatParams

__all__ = [
    "RoomRanges",
    "Rooms",
    "sample_rooms",
    "make_rooms",
    "room_step",
    "holding_power",
    "oracle_power",
    "RecurrentControllers",
    "MemorylessControllers",
    "Episodes",
    "run_episodes",
    "run_oracle",
    "error_by_step",
    "TrainedControllers",
    "train_controllers",
    "probe_r2_by_step",
    "least_squares_physics",
    "replay_states",
]

TEMP_CENTRE, TEMP_SCALE = 20.0, 5.0   # fixed rescaling of temperatures fed to the networks


# ----------------------------------------------------------------------------- rooms


def _check_params(params) -> ThermostatParams:
    if not isinstance(params, ThermostatParams):
        raise ValueError(f"params must be a ThermostatParams, got {type(params).__name__}")
    return params


def _check_range(name: str, value, low: float, high: float) -> tuple[float, float]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    lo = check_in_range(f"{name}[0]", lo, low, high)
    hi = check_in_range(f"{name}[1]", hi, low, high)
    if not lo <= hi:
        raise ValueError(f"{name} must have low <= high, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class RoomRanges:
    """The training distribution of rooms: each episode's ``leak``, ``heat_gain`` and
    ``setpoint`` (degrees C) are drawn uniformly from these ranges, and the room starts
    ``start_offset`` degrees or less from its setpoint (uniformly). Raises ValueError naming
    the bad field (a range that is not a pair ``low <= high``, a leak outside (0, 1], a
    non-positive heat gain, a negative offset)."""

    leak: tuple[float, float] = (0.04, 0.16)
    heat_gain: tuple[float, float] = (2.5, 3.5)
    setpoint: tuple[float, float] = (16.0, 22.0)
    start_offset: float = 2.0

    def __post_init__(self):
        _check_range("leak", self.leak, 1e-6, 1.0)
        _check_range("heat_gain", self.heat_gain, 1e-6, 1e3)
        _check_range("setpoint", self.setpoint, -100.0, 100.0)
        check_in_range("start_offset", self.start_offset, 0.0, 100.0)

    def all_reachable(self, params: ThermostatParams) -> bool:
        """Whether every room in the ranges can hold every setpoint in them with power in
        ``[0, max_power]`` (the leakiest, weakest room at the highest setpoint)."""
        _check_params(params)
        top = params.outside_temp + self.heat_gain[0] * params.max_power / self.leak[1]
        return top >= self.setpoint[1] and params.outside_temp <= self.setpoint[0]


class Rooms(NamedTuple):
    """A batch of rooms: float tensors ``leak``, ``heat_gain``, ``setpoint`` (degrees C)
    and ``init_temp`` (degrees C), all of one shape: ``(n,)`` for rooms every controller
    meets (common random numbers), or ``(E, n)`` for one batch per ensemble member."""

    leak: torch.Tensor
    heat_gain: torch.Tensor
    setpoint: torch.Tensor
    init_temp: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        return self.leak.shape

    def to(self, device) -> "Rooms":
        """The same rooms on ``device`` (ValueError naming ``device`` for a bad one)."""
        device = check_device("device", device)
        return Rooms(*(t.to(device) for t in self))


def make_rooms(leak, heat_gain, setpoint, init_temp=None, *, device=None) -> Rooms:
    """Rooms from given values: numbers or tensors, broadcast to one common shape
    (numbers alone make one room, shape ``(1,)``; ``init_temp`` defaults to the setpoint). Raises ValueError naming ``leak`` (outside
    (0, 1]), ``heat_gain`` (not positive), ``setpoint`` or ``init_temp`` (not finite, or
    shapes that do not broadcast), or ``device``."""
    device = check_device("device", device)
    vals = {}
    for name, v in (("leak", leak), ("heat_gain", heat_gain), ("setpoint", setpoint),
                    ("init_temp", setpoint if init_temp is None else init_temp)):
        try:
            t = torch.as_tensor(v, dtype=torch.float32).to(device)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name} must be a number or a tensor of numbers, got {v!r}") from None
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} must contain only finite numbers")
        vals[name] = t
    if not ((vals["leak"] > 0) & (vals["leak"] <= 1)).all():
        raise ValueError("leak must lie in (0, 1] for every room")
    if not (vals["heat_gain"] > 0).all():
        raise ValueError("heat_gain must be positive for every room")
    try:
        shape = torch.broadcast_shapes(*(t.shape for t in vals.values()))
    except RuntimeError:
        raise ValueError("leak, heat_gain, setpoint and init_temp must broadcast to one shape, got "
                         + ", ".join(f"{k} {tuple(t.shape)}" for k, t in vals.items())) from None
    if len(shape) == 0:
        shape = torch.Size([1])   # numbers alone: one room
    if len(shape) not in (1, 2):
        raise ValueError(f"rooms must form a 1-D (n,) or 2-D (E, n) batch, got shape {tuple(shape)}")
    return Rooms(**{k: t.expand(shape).contiguous() for k, t in vals.items()})


def sample_rooms(n_rooms: int, ranges: RoomRanges | None = None, *, seed: int | None = None,
                 generator: torch.Generator | None = None, members: int | None = None,
                 device=None) -> Rooms:
    """Draw ``n_rooms`` rooms from ``ranges`` (default :class:`RoomRanges`): leak, heat
    gain and setpoint uniform in their ranges, the start uniform within ``start_offset``
    of the setpoint. Drawn on the CPU (from ``seed``, or from ``generator`` to continue a
    stream) and moved to ``device``, so the same seed gives the same rooms anywhere.
    ``members=E`` draws ``(E, n_rooms)`` rooms. Raises ValueError naming ``n_rooms``,
    ``ranges``, ``seed``/``generator`` (exactly one of them), ``members`` or ``device``."""
    device = check_device("device", device)
    n_rooms = check_positive_int("n_rooms", n_rooms)
    ranges = RoomRanges() if ranges is None else ranges
    if not isinstance(ranges, RoomRanges):
        raise ValueError(f"ranges must be a RoomRanges, got {type(ranges).__name__}")
    if (seed is None) == (generator is None):
        raise ValueError("pass exactly one of seed and generator")
    gen = make_generator(seed) if generator is None else generator
    if not isinstance(gen, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    shape = (n_rooms,) if members is None else (check_positive_int("members", members), n_rooms)

    def uniform(lo_hi):
        lo, hi = lo_hi
        return lo + (hi - lo) * torch.rand(shape, generator=gen)

    leak, gain, sp = uniform(ranges.leak), uniform(ranges.heat_gain), uniform(ranges.setpoint)
    init = sp + ranges.start_offset * (2 * torch.rand(shape, generator=gen) - 1)
    return Rooms(leak, gain, sp, init).to(device)


def _check_rooms(rooms) -> Rooms:
    if not isinstance(rooms, Rooms):
        raise ValueError(f"rooms must be a Rooms (see sample_rooms, make_rooms), got {type(rooms).__name__}")
    return rooms


def room_step(temp: torch.Tensor, power: torch.Tensor, rooms: Rooms, params: ThermostatParams,
              noise: torch.Tensor | None = None) -> torch.Tensor:
    """Advance every room one step: ``temp + leak (outside - temp) + heat_gain clamp(power)
    + noise``. ``temp``, ``power`` (and ``noise``, already scaled: degrees C) broadcast
    against the rooms' shape, e.g. ``(E, n)`` against ``(n,)`` rooms. Power is clamped to
    ``[0, max_power]``. Differentiable in ``power`` (for training). Raises ValueError naming
    ``temp``, ``power``, ``rooms`` or ``params``."""
    _check_rooms(rooms)
    _check_params(params)
    for name, t in (("temp", temp), ("power", power)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point torch.Tensor, got {type(t).__name__}")
    nxt = temp + rooms.leak * (params.outside_temp - temp) + rooms.heat_gain * power.clamp(0.0, params.max_power)
    return nxt if noise is None else nxt + noise


def holding_power(rooms: Rooms, params: ThermostatParams) -> torch.Tensor:
    """The constant power that holds each room at its setpoint, ``leak (setpoint -
    outside) / heat_gain`` (unclamped: above ``max_power`` means unreachable). Shape of the
    rooms."""
    _check_rooms(rooms)
    _check_params(params)
    return rooms.leak * (rooms.setpoint - params.outside_temp) / rooms.heat_gain


def oracle_power(temp: torch.Tensor, rooms: Rooms, params: ThermostatParams) -> torch.Tensor:
    """The yardstick: the power that puts each room's *expected* next temperature closest
    to its setpoint, computed from the room's true ``leak`` and ``heat_gain``:
    ``clamp((setpoint - temp - leak (outside - temp)) / heat_gain, 0, max_power)``.
    (:func:`mesakit.thermostat.best_one_step_power` for one room's physics.) Whenever the
    setpoint is within one step's reach, the expected next temperature is the setpoint and
    the error is the noise alone; since the noise is unpredictable, no controller's expected
    squared error on a step can be below the noise variance, so none can beat this one on
    such steps. From farther away it applies full power (or none), which is also the best
    anyone can do; the unit tests check by brute force that two greedy steps do as well as
    the best pair of powers on the noise-free plant."""
    _check_rooms(rooms)
    _check_params(params)
    if not isinstance(temp, torch.Tensor) or not temp.is_floating_point():
        raise ValueError(f"temp must be a floating-point torch.Tensor, got {type(temp).__name__}")
    raw = (rooms.setpoint - temp - rooms.leak * (params.outside_temp - temp)) / rooms.heat_gain
    return raw.clamp(0.0, params.max_power)


# ----------------------------------------------------------------------------- controllers


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"seeds must be a non-empty sequence of integers >= 0, got {seeds!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must be a non-empty sequence of integers >= 0, got an empty sequence")
    return [check_positive_int("seeds[i]", s, minimum=0) for s in seeds]


def _stack(modules: list[nn.Module]) -> tuple[nn.ParameterDict, list[str]]:
    names = [n for n, _ in modules[0].named_parameters()]
    params = nn.ParameterDict({n.replace(".", "__"): nn.Parameter(torch.stack(
        [dict(m.named_parameters())[n].detach() for m in modules])) for n in names})
    return params, names


def _bmm_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-member ``nn.Linear``: ``x`` [E, N, in], ``weight`` [E, out, in], ``bias`` [E, out]."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _temps_features(temp: torch.Tensor, setpoint: torch.Tensor) -> list[torch.Tensor]:
    return [(temp - setpoint) / 2.0, (setpoint - TEMP_CENTRE) / TEMP_SCALE]


class _Controllers(nn.Module):
    """Shared plumbing: E members as stacked parameters, built from plain modules made
    after ``torch.manual_seed(seed)`` (the global random state is restored afterwards)."""

    kind = "base"

    def __init__(self, seeds, hidden: int, params: ThermostatParams | None):
        super().__init__()
        self.seeds = _check_seeds(seeds)
        self.hidden = check_positive_int("hidden", hidden)
        self.thermo = ThermostatParams() if params is None else _check_params(params)
        members = []
        with torch.random.fork_rng(devices=[]):
            for s in self.seeds:
                torch.manual_seed(s)
                members.append(self._plain())
        self.params, self._names = _stack(members)

    def __len__(self) -> int:
        return len(self.seeds)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _p(self, name: str) -> torch.Tensor:
        return self.params[name.replace(".", "__")]

    def _power(self, logits: torch.Tensor) -> torch.Tensor:
        return self.thermo.max_power * torch.sigmoid(logits.squeeze(-1))

    def _check_step_inputs(self, temp, setpoint, prev_power):
        e = len(self)
        for name, t in (("temp", temp), ("setpoint", setpoint), ("prev_power", prev_power)):
            if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] != e:
                raise ValueError(f"{name} must be a tensor of shape (members={e}, n), "
                                 f"got {tuple(getattr(t, 'shape', ()))}")

    def frozen(self) -> "_Controllers":
        """A detached copy (no gradients), for evaluation and checkpoints."""
        out = copy.deepcopy(self)
        for p in out.parameters():
            p.requires_grad_(False)
        return out


class RecurrentControllers(_Controllers):
    """E GRU controllers (one per training seed) as one program.

    At step ``t`` member ``e`` reads, for each room, three numbers: the tracking error
    ``(T - setpoint) / 2``, the setpoint ``(setpoint - 20) / 5``, and the power it applied
    last step (0 before the first); a GRU cell {Cho et al. 2014} updates its hidden state
    of size ``hidden``, and a linear head gives the power ``max_power * sigmoid(.)``. It
    is never told the room's leak or heat gain: whatever it knows of them it has to gather
    in its state. Member ``e`` starts from the weights ``nn.GRUCell(3, hidden)`` and
    ``nn.Linear(hidden, 1)`` get after ``torch.manual_seed(seeds[e])``; the cell's equations
    are PyTorch's, written with batched matrix products over the member axis.

    ``step(temp, setpoint, prev_power, state)``: tensors ``(E, n)`` and a state
    ``(E, n, hidden)`` -> ``(power (E, n), new_state)``. Raises ValueError for empty or
    negative ``seeds``, a bad ``hidden`` or ``params``, or wrongly shaped inputs."""

    kind = "recurrent"
    n_inputs = 3

    def __init__(self, seeds: Sequence[int], hidden: int = 32, params: ThermostatParams | None = None):
        super().__init__(seeds, hidden, params)

    def _plain(self) -> nn.Module:
        return nn.ModuleDict({"cell": nn.GRUCell(self.n_inputs, self.hidden), "head": nn.Linear(self.hidden, 1)})

    def initial_state(self, n: int, device=None) -> torch.Tensor:
        device = self.device if device is None else check_device("device", device)
        return torch.zeros(len(self), check_positive_int("n", n), self.hidden, device=device)

    def step(self, temp, setpoint, prev_power, state):
        self._check_step_inputs(temp, setpoint, prev_power)
        if not isinstance(state, torch.Tensor) or state.shape != (*temp.shape, self.hidden):
            raise ValueError(f"state must have shape {(*temp.shape, self.hidden)}, "
                             f"got {tuple(getattr(state, 'shape', ()))}")
        x = torch.stack(_temps_features(temp, setpoint) + [prev_power], dim=-1)
        gi = _bmm_linear(x, self._p("cell.weight_ih"), self._p("cell.bias_ih"))
        gh = _bmm_linear(state, self._p("cell.weight_hh"), self._p("cell.bias_hh"))
        i_r, i_z, i_n = gi.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        state = n + z * (state - n)              # = (1 - z) n + z h
        logits = _bmm_linear(state, self._p("head.weight"), self._p("head.bias"))
        return self._power(logits), state


class MemorylessControllers(_Controllers):
    """The null: E MLP controllers (two tanh layers of width ``hidden``) that see only the
    current tracking error ``(T - setpoint) / 2`` and setpoint ``(setpoint - 20) / 5``, and
    output ``max_power * sigmoid(.)``. No state and no previous power: whatever they know of
    a room's physics is what holds on average over the training rooms. Same interface as
    :class:`RecurrentControllers` (the state is an empty ``(E, n, 0)`` tensor). Member
    ``e`` starts from the weights the plain MLP gets after ``torch.manual_seed(seeds[e])``."""

    kind = "memoryless"
    n_inputs = 2

    def __init__(self, seeds: Sequence[int], hidden: int = 32, params: ThermostatParams | None = None):
        super().__init__(seeds, hidden, params)

    def _plain(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.n_inputs, self.hidden), nn.Tanh(),
                             nn.Linear(self.hidden, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1))

    def initial_state(self, n: int, device=None) -> torch.Tensor:
        device = self.device if device is None else check_device("device", device)
        return torch.zeros(len(self), check_positive_int("n", n), 0, device=device)

    def step(self, temp, setpoint, prev_power, state):
        self._check_step_inputs(temp, setpoint, prev_power)
        x = torch.stack(_temps_features(temp, setpoint), dim=-1)
        for k in (0, 2):
            x = torch.tanh(_bmm_linear(x, self._p(f"{k}.weight"), self._p(f"{k}.bias")))
        return self._power(_bmm_linear(x, self._p("4.weight"), self._p("4.bias"))), state


# ----------------------------------------------------------------------------- episodes


class Episodes(NamedTuple):
    """What :func:`run_episodes` returns: ``temps`` ``(E, n, n_steps + 1)`` (the start
    included), ``powers`` ``(E, n, n_steps)`` (as applied, clamped), ``states``
    ``(E, n, n_steps, hidden)`` (the state after reading step ``t``'s temperature, the one
    the power at ``t`` was computed from) or None."""

    temps: torch.Tensor
    powers: torch.Tensor
    states: torch.Tensor | None


def _noise(shape, n_steps: int, params: ThermostatParams, gen: torch.Generator, device) -> torch.Tensor:
    return (params.noise_std * torch.randn(n_steps, *shape, generator=gen)).to(device)


def _simulate(controllers, rooms: Rooms, noise: torch.Tensor, *, record_states: bool) -> Episodes:
    e = len(controllers)
    params = controllers.thermo
    n = rooms.shape[-1]
    temp = rooms.init_temp.expand(e, n)
    setpoint = rooms.setpoint.expand(e, n)
    power = torch.zeros(e, n, device=temp.device)
    state = controllers.initial_state(n, temp.device)
    temps, powers, states = [temp], [], []
    for t in range(noise.shape[0]):
        power, state = controllers.step(temp, setpoint, power, state)
        temp = room_step(temp, power, rooms, params, noise[t])
        power = power.clamp(0.0, params.max_power)
        temps.append(temp)
        powers.append(power)
        if record_states:
            states.append(state)
    return Episodes(torch.stack(temps, -1), torch.stack(powers, -1),
                    torch.stack(states, 2) if record_states else None)


def _check_controllers(controllers):
    if not isinstance(controllers, (RecurrentControllers, MemorylessControllers)):
        raise ValueError("controllers must be RecurrentControllers or MemorylessControllers, "
                         f"got {type(controllers).__name__}")
    return controllers


def run_episodes(controllers, rooms: Rooms, *, n_steps: int, seed: int,
                 record_states: bool = False) -> Episodes:
    """Run frozen ``controllers`` (no gradients) on ``rooms`` for ``n_steps`` steps with
    process noise drawn from ``seed`` on the CPU. Rooms of shape ``(n,)`` are met by every
    member with the same noise (common random numbers, also shared with :func:`run_oracle`
    for the same ``seed``). Returns :class:`Episodes`. Raises ValueError naming
    ``controllers``, ``rooms``, ``n_steps`` or ``seed``."""
    _check_controllers(controllers)
    _check_rooms(rooms)
    n_steps = check_positive_int("n_steps", n_steps)
    if rooms.leak.dim() == 2 and rooms.shape[0] != len(controllers):
        raise ValueError(f"rooms of shape {tuple(rooms.shape)} do not match {len(controllers)} members")
    gen = make_generator(seed)
    noise = _noise(rooms.shape[-1:], n_steps, controllers.thermo, gen, controllers.device)
    with torch.no_grad():
        return _simulate(controllers, rooms.to(controllers.device), noise, record_states=record_states)


def run_oracle(rooms: Rooms, *, n_steps: int, seed: int, params: ThermostatParams | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The oracle (:func:`oracle_power`, told each room's physics) on 1-D ``rooms`` with
    the noise :func:`run_episodes` uses for the same ``seed``. Returns ``(temps (n, n_steps
    + 1), powers (n, n_steps))``. Raises ValueError naming ``rooms``, ``n_steps``, ``seed``
    or ``params``."""
    _check_rooms(rooms)
    if rooms.leak.dim() != 1:
        raise ValueError(f"rooms must be a 1-D batch (n,), got shape {tuple(rooms.shape)}")
    n_steps = check_positive_int("n_steps", n_steps)
    params = ThermostatParams() if params is None else _check_params(params)
    noise = _noise(rooms.shape, n_steps, params, make_generator(seed), rooms.leak.device)
    temp, temps, powers = rooms.init_temp, [rooms.init_temp], []
    for t in range(n_steps):
        power = oracle_power(temp, rooms, params)
        temp = room_step(temp, power, rooms, params, noise[t])
        temps.append(temp)
        powers.append(power)
    return torch.stack(temps, -1), torch.stack(powers, -1)


def error_by_step(temps: torch.Tensor, setpoint: torch.Tensor) -> torch.Tensor:
    """Mean absolute tracking error |T - setpoint| (degrees C) after each step, averaged
    over rooms: ``temps`` ``(..., n, n_steps + 1)``, ``setpoint`` ``(n,)`` or matching
    ``temps[..., 0]`` -> ``(..., n_steps)`` (the start is left out)."""
    if not isinstance(temps, torch.Tensor) or temps.dim() < 2:
        raise ValueError(f"temps must be a tensor (..., n, n_steps + 1), got {tuple(getattr(temps, 'shape', ()))}")
    if not isinstance(setpoint, torch.Tensor):
        raise ValueError(f"setpoint must be a tensor, got {type(setpoint).__name__}")
    return (temps[..., 1:] - setpoint.to(temps.device).unsqueeze(-1)).abs().mean(-2)


# ----------------------------------------------------------------------------- training


@dataclass
class TrainedControllers:
    """What :func:`train_controllers` returns: ``controllers`` (frozen), ``losses``
    ``(steps, E)`` (each member's training loss, degrees C squared) and ``snapshots``
    (training step -> frozen copy) for curves against the training budget."""

    controllers: _Controllers
    losses: torch.Tensor
    snapshots: dict


def train_controllers(kind: str, *, seeds: Sequence[int], steps: int = 300,
                      ranges: RoomRanges | None = None, params: ThermostatParams | None = None,
                      n_rooms: int = 64, horizon: int = 40, hidden: int = 32, lr: float = 1e-2,
                      lr_final: float = 1e-3, max_grad_norm: float = 1.0, checkpoints: Sequence[int] = (),
                      device=None, desc: str | None = None) -> TrainedControllers:
    """Train E controllers (``kind`` "recurrent" or "memoryless") under domain
    randomization, all members as one batched program.

    Each step, member ``e`` draws ``n_rooms`` rooms of its own from ``ranges`` (every room
    a new leak, heat gain and setpoint; drawn from ``make_generator(seeds[e])``, so member
    ``e`` is what training alone with its seed gives, up to float rounding), runs them for
    ``horizon`` steps with process noise, differentiating through the simulated rooms
    (as Chapter 1's controllers are trained, after Nguyen and Widrow 1990), and takes an
    Adam step on the base objective: the mean squared tracking error over rooms and steps
    (degrees C squared). The learning rate decays from ``lr`` to ``lr_final`` (cosine);
    each member's gradient is clipped to norm ``max_grad_norm`` on its own.
    ``checkpoints``: steps after which frozen copies are kept.

    Returns :class:`TrainedControllers`. Raises ValueError naming ``kind``, ``seeds``,
    ``steps``, ``ranges``, ``params``, ``n_rooms``, ``horizon``, ``hidden``, ``lr``,
    ``lr_final``, ``max_grad_norm``, ``checkpoints`` or ``device``."""
    device = check_device("device", device)
    if kind not in ("recurrent", "memoryless"):
        raise ValueError(f"kind must be one of ('recurrent', 'memoryless'), got {kind!r}")
    seeds = _check_seeds(seeds)
    steps = check_positive_int("steps", steps)
    ranges = RoomRanges() if ranges is None else ranges
    if not isinstance(ranges, RoomRanges):
        raise ValueError(f"ranges must be a RoomRanges, got {type(ranges).__name__}")
    params = ThermostatParams() if params is None else _check_params(params)
    n_rooms = check_positive_int("n_rooms", n_rooms)
    horizon = check_positive_int("horizon", horizon)
    hidden = check_positive_int("hidden", hidden)
    for name, v in (("lr", lr), ("lr_final", lr_final), ("max_grad_norm", max_grad_norm)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    if isinstance(checkpoints, (str, bytes)) or not hasattr(checkpoints, "__iter__"):
        raise ValueError(f"checkpoints must be a sequence of training steps, got {checkpoints!r}")
    ckpts = {check_positive_int("checkpoints[i]", c) for c in checkpoints}
    if ckpts and max(ckpts) > steps:
        raise ValueError(f"checkpoints must lie in [1, steps={steps}], got {max(ckpts)}")

    cls = RecurrentControllers if kind == "recurrent" else MemorylessControllers
    model = cls(seeds, hidden=hidden, params=params).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gens = [make_generator(s) for s in seeds]
    e = len(seeds)
    losses, snapshots = [], {}
    for k in progress(range(1, steps + 1), desc=desc or f"training {e} {kind} controllers"):
        frac = (k - 1) / max(1, steps - 1)
        for group in opt.param_groups:
            group["lr"] = lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * frac))
        parts = [sample_rooms(n_rooms, ranges, generator=g) for g in gens]
        noises = [params.noise_std * torch.randn(horizon, n_rooms, generator=g) for g in gens]
        rooms = Rooms(*(torch.stack([getattr(p, f) for p in parts]).to(device) for f in Rooms._fields))
        noise = torch.stack(noises, 1).to(device)                       # (horizon, E, n)
        ep = _simulate(model, rooms, noise, record_states=False)
        loss = ((ep.temps[..., 1:] - rooms.setpoint.unsqueeze(-1)) ** 2).mean((1, 2))   # (E,)
        opt.zero_grad()
        loss.sum().backward()
        grads = [p.grad for p in model.parameters()]
        norms = torch.sqrt(sum(g.pow(2).reshape(e, -1).sum(1) for g in grads))
        scale = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
        opt.step()
        losses.append(loss.detach().cpu())
        if k in ckpts:
            snapshots[k] = model.frozen()
    return TrainedControllers(model.frozen(), torch.stack(losses), snapshots)


# ----------------------------------------------------------------------------- probing


def probe_r2_by_step(states_train: torch.Tensor, target_train: torch.Tensor, states_test: torch.Tensor,
                     target_test: torch.Tensor, *, lam: float = 1e-2) -> torch.Tensor:
    """A linear probe per time step {Alain & Bengio 2016}: for each step ``t``, fit
    ``target ≈ states[:, t] @ w + b`` by ridge regression (penalty ``lam`` on ``w``, not on
    ``b``) on the training rooms and return its R² on the held-out rooms.

    ``states_*`` float ``(n, n_steps, d)``, ``target_*`` float ``(n,)``. Returns float64
    ``(n_steps,)``: 1 for a perfect read-out, 0 for no better than the held-out mean,
    negative for worse. Raises ValueError for mismatched shapes or a negative ``lam``."""
    lam = check_in_range("lam", lam, 0.0, 1e9)
    for name, s in (("states_train", states_train), ("states_test", states_test)):
        if not isinstance(s, torch.Tensor) or s.dim() != 3:
            raise ValueError(f"{name} must be a tensor (n, n_steps, d), got {tuple(getattr(s, 'shape', ()))}")
    if states_train.shape[1:] != states_test.shape[1:]:
        raise ValueError(f"states_train {tuple(states_train.shape)} and states_test "
                         f"{tuple(states_test.shape)} must agree in n_steps and d")
    for name, y, s in (("target_train", target_train, states_train), ("target_test", target_test, states_test)):
        if not isinstance(y, torch.Tensor) or y.shape != s.shape[:1]:
            raise ValueError(f"{name} must be a tensor of shape {tuple(s.shape[:1])}, "
                             f"got {tuple(getattr(y, 'shape', ()))}")
    f_tr = states_train.detach().to(torch.float64).transpose(0, 1)       # (T, n, d)
    f_te = states_test.detach().to(torch.float64).transpose(0, 1)
    y_tr = target_train.detach().to(torch.float64)
    y_te = target_test.detach().to(torch.float64)
    mean_f = f_tr.mean(1, keepdim=True)
    fc = f_tr - mean_f
    d = fc.shape[-1]
    gram = fc.transpose(1, 2) @ fc + lam * torch.eye(d, dtype=torch.float64)
    w = torch.linalg.solve(gram, fc.transpose(1, 2) @ (y_tr - y_tr.mean()).view(1, -1, 1).expand(fc.shape[0], -1, 1))
    pred = ((f_te - mean_f) @ w).squeeze(-1) + y_tr.mean()              # (T, n_test)
    return 1 - ((y_te - pred) ** 2).sum(1) / ((y_te - y_te.mean()) ** 2).sum()


def least_squares_physics(temps: torch.Tensor, powers: torch.Tensor, params: ThermostatParams, *,
                          prior_leak: float, prior_gain: float, prior_weight: float = 1.0
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit system identification, the probe's yardstick: after each step ``t``,
    estimate each room's ``(leak, heat_gain)`` by least squares on the transitions seen so
    far, ``T[k+1] - T[k] = leak (outside - T[k]) + heat_gain power[k] + noise``, ``k < t``,
    shrunk towards ``(prior_leak, prior_gain)`` with ``prior_weight`` pseudo-observations
    of unit regressors (so the estimate is defined from the first step).

    ``temps`` ``(..., n_steps + 1)``, ``powers`` ``(..., n_steps)`` (as from
    :func:`run_episodes` or :func:`run_oracle`). Returns ``(leak_hat, gain_hat)``, each
    ``(..., n_steps)``: the estimate after ``t + 1`` transitions. Raises ValueError for
    mismatched shapes or a negative ``prior_weight``."""
    _check_params(params)
    if not isinstance(temps, torch.Tensor) or not isinstance(powers, torch.Tensor) \
            or temps.shape[:-1] != powers.shape[:-1] or temps.shape[-1] != powers.shape[-1] + 1:
        raise ValueError("temps must be (..., n_steps + 1) and powers (..., n_steps), got "
                         f"{tuple(getattr(temps, 'shape', ()))} and {tuple(getattr(powers, 'shape', ()))}")
    prior_weight = check_in_range("prior_weight", prior_weight, 0.0, 1e9)
    t64, p64 = temps.detach().to(torch.float64), powers.detach().to(torch.float64)
    x1 = params.outside_temp - t64[..., :-1]
    x2 = p64
    y = t64[..., 1:] - t64[..., :-1]
    s11 = torch.cumsum(x1 * x1, -1) + prior_weight
    s22 = torch.cumsum(x2 * x2, -1) + prior_weight
    s12 = torch.cumsum(x1 * x2, -1)
    b1 = torch.cumsum(x1 * y, -1) + prior_weight * prior_leak
    b2 = torch.cumsum(x2 * y, -1) + prior_weight * prior_gain
    det = s11 * s22 - s12 * s12
    return (s22 * b1 - s12 * b2) / det, (s11 * b2 - s12 * b1) / det


def replay_states(controllers, temps: torch.Tensor, powers: torch.Tensor, setpoint: torch.Tensor) -> torch.Tensor:
    """The hidden states recurrent ``controllers`` would have while *reading* given
    trajectories, whatever powers they would themselves choose: at step ``t`` each member
    reads ``temps[..., t]``, the setpoint and ``powers[..., t - 1]`` (0 at ``t = 0``), as in
    :func:`run_episodes`. Used to give a probe's null (an untrained network) exactly the
    inputs the trained one saw. ``temps`` ``(n, n_steps + 1)`` or ``(E, n, n_steps + 1)``,
    ``powers`` matching with ``n_steps``, ``setpoint`` ``(n,)``. Returns ``(E, n, n_steps,
    hidden)``. Raises ValueError naming ``controllers``, ``temps``, ``powers`` or ``setpoint``."""
    if not isinstance(controllers, RecurrentControllers):
        raise ValueError(f"controllers must be RecurrentControllers, got {type(controllers).__name__}")
    e = len(controllers)
    if not isinstance(temps, torch.Tensor) or temps.dim() not in (2, 3):
        raise ValueError(f"temps must be (n, n_steps + 1) or (E, n, n_steps + 1), got {tuple(getattr(temps, 'shape', ()))}")
    if not isinstance(powers, torch.Tensor) or powers.shape[:-1] != temps.shape[:-1] \
            or powers.shape[-1] != temps.shape[-1] - 1:
        raise ValueError(f"powers must have shape {(*temps.shape[:-1], temps.shape[-1] - 1)}, "
                         f"got {tuple(getattr(powers, 'shape', ()))}")
    n = temps.shape[-2]
    if not isinstance(setpoint, torch.Tensor) or setpoint.shape != (n,):
        raise ValueError(f"setpoint must have shape ({n},), got {tuple(getattr(setpoint, 'shape', ()))}")
    dev = controllers.device
    temps, powers = temps.to(dev).expand(e, n, -1), powers.to(dev).expand(e, n, -1)
    sp = setpoint.to(dev).expand(e, n)
    state = controllers.initial_state(n, dev)
    prev = torch.zeros(e, n, device=dev)
    states = []
    with torch.no_grad():
        for t in range(powers.shape[-1]):
            _, state = controllers.step(temps[..., t], sp, prev, state)
            prev = powers[..., t]
            states.append(state)
    return torch.stack(states, 2)
