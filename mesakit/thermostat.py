"""A batch of rooms to keep warm, and four ways of doing it.

Chapter 1, lesson 1 ("Thermostats and planners") compares a hand-written thermostat, a
neural controller trained by gradient descent for one setpoint, a goal-conditioned neural
controller trained with the setpoint as an input, and a random-shooting planner on the
same task. Everything here is vectorized: a batch of rooms is a 1-D tensor of
temperatures, and several training seeds train as one batched program
(:func:`train_controllers`).

The dynamics of room ``i`` (one step is, say, ten minutes)::

    T[t+1] = T[t] + leak * (outside_temp - T[t]) + heat_gain * power[t] + noise[t]

with ``power[t]`` clamped to ``[0, max_power]`` and ``noise[t] ~ N(0, noise_std**2)``.
With the default parameters a constant power ``p`` holds the room at
``outside_temp + heat_gain * p / leak = 10 + 20 p`` degrees, so every setpoint between
10 and 30 degrees is reachable (20 needs ``p = 0.5``, 26 needs ``p = 0.8``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .core import check_device, check_in_range, check_positive_int, make_generator, progress

__all__ = [
    "ThermostatParams",
    "expected_next_temp",
    "step",
    "initial_temps",
    "rollout",
    "tracking_cost",
    "best_one_step_power",
    "hand_controller",
    "NeuralController",
    "train_neural_controller",
    "GoalConditionedController",
    "train_goal_conditioned_controller",
    "TrainedControllers",
    "train_controllers",
    "random_shooting_planner",
    "fit_behavioral_setpoint",
    "mean_abs_error",
]


@dataclass(frozen=True)
class ThermostatParams:
    """Physical constants shared by every room in a batch.

    ``outside_temp`` (degrees C): where an unheated room drifts to.
    ``leak`` in (0, 1]: the fraction of the gap to the outside lost per step.
    ``heat_gain`` > 0: degrees added per step at power 1.
    ``max_power`` > 0: the heater's upper bound (the lower bound is 0: it cannot cool).
    ``noise_std`` >= 0: standard deviation of the per-step temperature noise.
    """

    outside_temp: float = 10.0
    leak: float = 0.1
    heat_gain: float = 2.0
    max_power: float = 1.0
    noise_std: float = 0.3

    def __post_init__(self):
        check_in_range("outside_temp", self.outside_temp, -100.0, 100.0)
        if not 0.0 < float(self.leak) <= 1.0:
            raise ValueError(f"leak must be a number in (0, 1], got {self.leak!r}")
        if not float(self.heat_gain) > 0.0:
            raise ValueError(f"heat_gain must be positive, got {self.heat_gain!r}")
        if not float(self.max_power) > 0.0:
            raise ValueError(f"max_power must be positive, got {self.max_power!r}")
        check_in_range("noise_std", self.noise_std, 0.0, 100.0)

    def reachable_range(self) -> tuple[float, float]:
        """The steady temperatures a heater in ``[0, max_power]`` can hold."""
        return (self.outside_temp,
                self.outside_temp + self.heat_gain * self.max_power / self.leak)


def _check_params(params) -> ThermostatParams:
    if not isinstance(params, ThermostatParams):
        raise ValueError(f"params must be a ThermostatParams, got {type(params).__name__}")
    return params


def _check_temps(name: str, temp, ndim: int | None = 1) -> torch.Tensor:
    if not isinstance(temp, torch.Tensor) or not temp.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch.Tensor, got {type(temp).__name__}")
    if ndim is not None and temp.dim() != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor, got shape {tuple(temp.shape)}")
    if temp.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    if not torch.isfinite(temp).all():
        raise ValueError(f"{name} must contain only finite numbers")
    return temp


def _setpoint_tensor(setpoint, n: int, device, dtype) -> torch.Tensor:
    """A float or a tensor of shape (n,) -> a tensor of shape (n,) on ``device``."""
    if isinstance(setpoint, torch.Tensor):
        sp = setpoint.to(device=device, dtype=dtype)
        if sp.dim() == 0:
            sp = sp.expand(n)
        if sp.shape != (n,):
            raise ValueError(f"setpoint must be a number or a tensor of shape ({n},), "
                             f"got shape {tuple(setpoint.shape)}")
        if not torch.isfinite(sp).all():
            raise ValueError("setpoint must contain only finite numbers")
        return sp
    value = check_in_range("setpoint", setpoint, -100.0, 100.0)
    return torch.full((n,), value, device=device, dtype=dtype)


# ----------------------------------------------------------------------------- dynamics


def expected_next_temp(temp: torch.Tensor, power: torch.Tensor, params: ThermostatParams) -> torch.Tensor:
    """The noise-free model of one step: what a planner can predict. Power is clamped to
    ``[0, max_power]``; shapes broadcast, so a (rooms, samples) batch works too."""
    power = power.clamp(0.0, params.max_power)
    return temp + params.leak * (params.outside_temp - temp) + params.heat_gain * power


def step(temp: torch.Tensor, power: torch.Tensor, params: ThermostatParams, *,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Advance every room one step. ``power`` is clamped to ``[0, max_power]`` (the heater
    cannot cool or exceed its rating). With ``generator=None`` the step is noise-free
    (the model's prediction); pass a CPU ``torch.Generator`` to add the process noise,
    drawn on the CPU and moved to ``temp``'s device so results match across devices."""
    _check_params(params)
    _check_temps("temp", temp, ndim=None)
    if not isinstance(power, torch.Tensor):
        raise ValueError(f"power must be a torch.Tensor, got {type(power).__name__}")
    if power.shape != temp.shape:
        raise ValueError(f"power must have the same shape as temp {tuple(temp.shape)}, "
                         f"got {tuple(power.shape)}")
    nxt = expected_next_temp(temp, power.to(temp.dtype), params)
    if generator is not None and params.noise_std > 0:
        noise = torch.randn(temp.shape, generator=generator, dtype=temp.dtype)
        nxt = nxt + params.noise_std * noise.to(temp.device)
    return nxt


def initial_temps(n_rooms: int, *, low: float = 12.0, high: float = 28.0, seed: int,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Starting temperatures, uniform in ``[low, high]`` degrees C, shape ``(n_rooms,)``,
    drawn on the CPU from ``seed`` and moved to ``device`` (default CPU), so the same
    seed gives the same rooms on any device. Raises ValueError naming ``n_rooms``,
    ``low``, ``high``, ``seed`` or ``device`` (e.g. CUDA asked for and absent)."""
    device = check_device("device", device)
    n_rooms = check_positive_int("n_rooms", n_rooms)
    low = check_in_range("low", low, -100.0, 100.0)
    high = check_in_range("high", high, low, 100.0)
    gen = make_generator(seed)
    temps = low + (high - low) * torch.rand(n_rooms, generator=gen)
    return temps.to(device)


Policy = Callable[[torch.Tensor, int], torch.Tensor]


def rollout(policy: Policy, init_temp: torch.Tensor, *, n_steps: int,
            params: ThermostatParams, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``policy`` on a batch of rooms for ``n_steps`` steps with process noise.

    ``policy(temp, t)`` gets the current temperatures (shape ``(n_rooms,)``) and the step
    index and returns powers of the same shape. Returns ``(temps, powers)`` of shapes
    ``(n_rooms, n_steps + 1)`` (including the start) and ``(n_rooms, n_steps)`` (the
    powers actually applied, i.e. clamped). Same ``seed`` -> same noise, whatever the
    policy, so comparisons between policies use common random numbers."""
    if not callable(policy):
        raise ValueError(f"policy must be callable as policy(temp, t), got {type(policy).__name__}")
    _check_temps("init_temp", init_temp)
    n_steps = check_positive_int("n_steps", n_steps)
    _check_params(params)
    gen = make_generator(seed)
    temp = init_temp
    temps, powers = [temp], []
    with torch.no_grad():
        for t in range(n_steps):
            power = policy(temp, t)
            if not isinstance(power, torch.Tensor) or power.shape != temp.shape:
                raise ValueError(f"policy must return a tensor of shape {tuple(temp.shape)}")
            power = power.to(temp.dtype).clamp(0.0, params.max_power)
            temp = step(temp, power, params, generator=gen)
            temps.append(temp)
            powers.append(power)
    return torch.stack(temps, dim=1), torch.stack(powers, dim=1)


def tracking_cost(temps: torch.Tensor, setpoint) -> torch.Tensor:
    """The explicit objective: summed squared distance to the setpoint over the last axis.

    ``temps`` has shape ``(..., horizon)``; ``setpoint`` is a number or a tensor that
    broadcasts against ``temps[..., 0]``. Lower is better. The planner minimizes this over
    sampled plans at run time; the neural controller is trained on its mean."""
    if not isinstance(setpoint, torch.Tensor):
        setpoint = torch.tensor(float(setpoint), dtype=temps.dtype, device=temps.device)
    return ((temps - setpoint.unsqueeze(-1)) ** 2).sum(dim=-1)


def mean_abs_error(temps: torch.Tensor, setpoint, *, last_fraction: float = 0.5) -> float:
    """Mean |T - setpoint| over the last ``last_fraction`` of each trajectory (rooms x
    steps), averaged over rooms: the lesson's score, ignoring the initial transient."""
    _check_temps("temps", temps, ndim=2)
    frac = check_in_range("last_fraction", last_fraction, 1e-9, 1.0)
    start = temps.shape[1] - max(1, int(round(frac * temps.shape[1])))
    tail = temps[:, start:]
    if not isinstance(setpoint, torch.Tensor):
        setpoint = torch.tensor(float(setpoint), dtype=temps.dtype, device=temps.device)
    setpoint = setpoint.to(temps.device, temps.dtype)
    if setpoint.dim() == 1:
        setpoint = setpoint[:, None]
    return float((tail - setpoint).abs().mean())


def best_one_step_power(temp: torch.Tensor, setpoint, params: ThermostatParams) -> torch.Tensor:
    """The power that brings the *expected* next temperature closest to ``setpoint``:
    solve the model for ``power`` and clamp to ``[0, max_power]``. ``setpoint`` is a number
    or a tensor broadcasting against ``temp``."""
    raw = (setpoint - temp - params.leak * (params.outside_temp - temp)) / params.heat_gain
    return raw.clamp(0.0, params.max_power)


# ----------------------------------------------------------------------------- controllers


def hand_controller(temp: torch.Tensor, params: ThermostatParams, *, setpoint: float = 20.0,
                    gain: float = 0.25) -> torch.Tensor:
    """A hand-written proportional thermostat with a feed-forward term.

    ``power = clamp(leak * (setpoint - outside_temp) / heat_gain + gain * (setpoint - temp))``:
    the first term is the power that holds the setpoint against heat loss, the second
    pushes proportionally to the error. No search, no learning: one formula, written by
    an engineer who knew the room. ``gain`` must be in ``[0, (2 - leak) / heat_gain)``
    for the loop to be stable; with the default constants, feed-forward plus the
    default gain close 60% of the error per step (``1 - leak - heat_gain * gain = 0.4``
    of it remains)."""
    _check_params(params)
    _check_temps("temp", temp, ndim=None)
    setpoint = check_in_range("setpoint", setpoint, -100.0, 100.0)
    gain = check_in_range("gain", gain, 0.0, 100.0)
    if gain >= (2.0 - params.leak) / params.heat_gain:
        raise ValueError(f"gain must be below (2 - leak) / heat_gain = "
                         f"{(2.0 - params.leak) / params.heat_gain:.3f} for stability, got {gain!r}")
    feed_forward = params.leak * (setpoint - params.outside_temp) / params.heat_gain
    return (feed_forward + gain * (setpoint - temp)).clamp(0.0, params.max_power)


def _init_controller_mlp(module: nn.Module, params: ThermostatParams, hidden: int, n_inputs: int) -> None:
    """The body both neural controllers share: the physical rescaling constants and a
    two-hidden-layer tanh MLP from ``n_inputs`` rescaled inputs to one power logit."""
    _check_params(params)
    hidden = check_positive_int("hidden", hidden)
    module.outside_temp = float(params.outside_temp)
    module.scale = float(params.heat_gain * params.max_power / params.leak)
    module.max_power = float(params.max_power)
    module.net = nn.Sequential(nn.Linear(n_inputs, hidden), nn.Tanh(),
                               nn.Linear(hidden, hidden), nn.Tanh(),
                               nn.Linear(hidden, 1))


class NeuralController(nn.Module):
    """A small MLP mapping temperature -> power in ``[0, max_power]``.

    Its only input is the temperature (rescaled by fixed physical constants, not by any
    setpoint): the setpoint it was trained for lives in its weights, not in its inputs.
    ``forward(temp)``: any float tensor of temperatures (degrees C) -> powers of the same
    shape."""

    def __init__(self, params: ThermostatParams, hidden: int = 32):
        super().__init__()
        _init_controller_mlp(self, params, hidden, n_inputs=1)

    def features(self, temp: torch.Tensor, setpoint=None) -> torch.Tensor:
        """The network's input, shape ``temp.shape + (1,)``; ``setpoint`` is ignored
        (there is no place for it)."""
        return ((temp - self.outside_temp) / self.scale).unsqueeze(-1)

    def forward(self, temp: torch.Tensor) -> torch.Tensor:
        return self.max_power * torch.sigmoid(self.net(self.features(temp))).squeeze(-1)


class GoalConditionedController(nn.Module):
    """A small MLP mapping (temperature, setpoint) -> power in ``[0, max_power]``.

    The same architecture as :class:`NeuralController` with a second input: the setpoint,
    rescaled by the same fixed physical constants as the temperature. Trained over a range
    of setpoints (:func:`train_goal_conditioned_controller`) it is a learned *family* of
    controllers indexed by the goal: it can be retargeted by changing an input, with no
    search at run time. Nothing guarantees what it does for setpoints outside the range it
    was trained on.

    ``forward(temp, setpoint)``: ``temp`` a float tensor of temperatures (degrees C);
    ``setpoint`` a number or a tensor broadcastable to ``temp.shape`` (one goal per room).
    Returns powers of shape ``temp.shape``. Raises ValueError naming ``temp`` or
    ``setpoint`` for a non-tensor, a non-float tensor, a shape that does not broadcast, or
    non-finite values."""

    def __init__(self, params: ThermostatParams, hidden: int = 32):
        super().__init__()
        _init_controller_mlp(self, params, hidden, n_inputs=2)

    def features(self, temp: torch.Tensor, setpoint) -> torch.Tensor:
        """The network's input, shape ``temp.shape + (2,)``: rescaled temperature and
        rescaled setpoint."""
        if not isinstance(temp, torch.Tensor) or not temp.is_floating_point():
            raise ValueError(f"temp must be a floating-point torch.Tensor, got {type(temp).__name__}")
        if isinstance(setpoint, torch.Tensor):
            if not setpoint.is_floating_point():
                raise ValueError("setpoint must be a number or a floating-point tensor, "
                                 f"got a tensor of dtype {setpoint.dtype}")
            try:
                goal = torch.broadcast_to(setpoint.to(temp.device, temp.dtype), temp.shape)
            except RuntimeError:
                raise ValueError(f"setpoint must broadcast to temp's shape {tuple(temp.shape)}, "
                                 f"got shape {tuple(setpoint.shape)}") from None
            if not torch.isfinite(goal).all():
                raise ValueError("setpoint must contain only finite numbers")
        else:
            goal = torch.full_like(temp, check_in_range("setpoint", setpoint, -100.0, 100.0))
        return torch.stack([(temp - self.outside_temp) / self.scale,
                            (goal - self.outside_temp) / self.scale], dim=-1)

    def forward(self, temp: torch.Tensor, setpoint) -> torch.Tensor:
        return self.max_power * torch.sigmoid(self.net(self.features(temp, setpoint))).squeeze(-1)


@dataclass
class TrainedControllers:
    """What :func:`train_controllers` returns.

    ``seeds``: the training seeds, one member each. ``members``: the trained controllers
    (eval mode), ``members[i]`` trained with ``seeds[i]``. ``losses``: tensor of shape
    ``(steps, len(seeds))``, the base objective (mean per-step squared error, degrees C
    squared) at every step. ``snapshots``: ``{step: [controller per seed]}``, copies taken
    after the requested ``checkpoints`` steps, for curves against training budget.
    ``goal_conditioned``, ``setpoint``, ``setpoint_range``: how they were trained."""

    seeds: list[int]
    members: list[nn.Module]
    losses: torch.Tensor
    snapshots: dict[int, list[nn.Module]] = field(default_factory=dict)
    goal_conditioned: bool = False
    setpoint: float | None = None
    setpoint_range: tuple[float, float] | None = None


class _StackedMLP:
    """The MLPs of E controllers as stacked tensors (layer weights ``(E, in, out)``,
    biases ``(E, 1, out)``), run with one batched matrix product per layer: E tiny
    networks cost about as much as one. Each member's parameters are its own slices, so
    its gradients and Adam's per-element state are its own."""

    def __init__(self, members: list[nn.Module], device: torch.device):
        self.template = members[0]
        linears = [[m for m in member.net if isinstance(m, nn.Linear)] for member in members]
        self.weights = [torch.stack([ls[k].weight.detach().T for ls in linears]).to(device)
                        .clone().requires_grad_() for k in range(len(linears[0]))]
        self.biases = [torch.stack([ls[k].bias.detach()[None] for ls in linears]).to(device)
                       .clone().requires_grad_() for k in range(len(linears[0]))]

    def parameters(self) -> list[torch.Tensor]:
        return self.weights + self.biases

    def __call__(self, temp: torch.Tensor, setpoint: torch.Tensor | None) -> torch.Tensor:
        """``temp`` (and ``setpoint``) of shape ``(E, n)`` -> powers ``(E, n)``."""
        x = self.template.features(temp, setpoint)
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if k < last:
                x = torch.tanh(x)
        return self.template.max_power * torch.sigmoid(x).squeeze(-1)

    def export(self) -> list[nn.Module]:
        """Plain modules holding the current weights (copies, eval mode)."""
        out = []
        for i in range(self.weights[0].shape[0]):
            module = copy.deepcopy(self.template)
            linears = [m for m in module.net if isinstance(m, nn.Linear)]
            with torch.no_grad():
                for lin, w, b in zip(linears, self.weights, self.biases):
                    lin.weight.copy_(w[i].T)
                    lin.bias.copy_(b[i, 0])
            out.append(module.eval())
        return out


def _check_lr(lr) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    return float(lr)


def _check_setpoint_range(setpoint_range) -> tuple[float, float]:
    try:
        lo, hi = setpoint_range
    except (TypeError, ValueError):
        raise ValueError(f"setpoint_range must be a pair (low, high), got {setpoint_range!r}") from None
    lo = check_in_range("setpoint_range[0]", lo, -100.0, 100.0)
    hi = check_in_range("setpoint_range[1]", hi, -100.0, 100.0)
    if not lo < hi:
        raise ValueError(f"setpoint_range must have low < high, got {setpoint_range!r}")
    return lo, hi


def train_controllers(*, seeds: Sequence[int], steps: int = 200, goal_conditioned: bool = False,
                      setpoint: float = 20.0, setpoint_range: tuple[float, float] = (15.0, 25.0),
                      checkpoints: Sequence[int] = (),
                      device: torch.device | str | None = None,
                      params: ThermostatParams | None = None, n_rooms: int = 128,
                      horizon: int = 15, hidden: int = 32, lr: float = 2e-2,
                      ) -> TrainedControllers:
    """Train one neural controller per seed by gradient descent, all seeds as one batched
    program.

    Each step, every member simulates its own ``n_rooms`` rooms (starting uniformly in
    [12, 28] degrees C) for ``horizon`` steps with process noise, differentiating through
    the simulator, and takes an Adam step on the base objective: the mean per-step squared
    distance to the goal, ``tracking_cost / horizon`` (degrees C squared).

    With ``goal_conditioned=False`` the members are :class:`NeuralController` s trained for
    the one fixed ``setpoint``. With ``goal_conditioned=True`` they are
    :class:`GoalConditionedController` s, and every training room gets its own goal drawn
    uniformly from ``setpoint_range`` (and fed to the network as an input).

    Member ``i`` is what training alone with ``seeds[i]`` gives
    (:func:`train_neural_controller`, :func:`train_goal_conditioned_controller`), up to
    float rounding: its initial weights are the module built after
    ``torch.manual_seed(seeds[i])`` (the global random state is restored afterwards), its
    rooms, goals and noise come from ``make_generator(seeds[i])`` on the CPU, and its
    parameters, gradients and Adam state are its own slices. ``checkpoints``: training
    steps after which copies of all members are kept (for curves against training budget).

    Returns a :class:`TrainedControllers`. Raises ValueError naming ``seeds``, ``steps``,
    ``checkpoints``, ``setpoint``, ``setpoint_range``, ``device``, ``params``, ``n_rooms``,
    ``horizon``, ``hidden`` or ``lr``. Learning a controller by backpropagating through a
    differentiable model of the plant goes back to Nguyen and Widrow's truck backer-upper
    (IEEE Control Systems Magazine, 1990); a network that takes the goal as an input is in
    the spirit of Schaul et al.'s universal value function approximators (ICML 2015)."""
    device = check_device("device", device)
    seeds = [check_positive_int("seeds[i]", s, minimum=0) for s in _as_list("seeds", seeds)]
    steps = check_positive_int("steps", steps)
    if not isinstance(goal_conditioned, bool):
        raise ValueError(f"goal_conditioned must be True or False, got {goal_conditioned!r}")
    setpoint = check_in_range("setpoint", setpoint, -100.0, 100.0)
    lo, hi = _check_setpoint_range(setpoint_range)
    ckpts = sorted({check_positive_int("checkpoints[i]", c) for c in _as_list("checkpoints", checkpoints,
                                                                               allow_empty=True)})
    if ckpts and ckpts[-1] > steps:
        raise ValueError(f"checkpoints must lie in [1, steps={steps}], got {ckpts[-1]}")
    params = ThermostatParams() if params is None else _check_params(params)
    n_rooms = check_positive_int("n_rooms", n_rooms)
    horizon = check_positive_int("horizon", horizon)
    hidden = check_positive_int("hidden", hidden)
    lr = _check_lr(lr)

    kind = GoalConditionedController if goal_conditioned else NeuralController
    members = []
    with torch.random.fork_rng(devices=[]):
        for s in seeds:
            torch.manual_seed(s)
            members.append(kind(params, hidden=hidden))
    mlp = _StackedMLP(members, device)
    opt = torch.optim.Adam(mlp.parameters(), lr=lr)
    gens = [make_generator(s) for s in seeds]
    losses, snapshots = [], {}
    desc = "training goal-conditioned controllers" if goal_conditioned else "training neural controllers"
    for k in progress(range(1, steps + 1), desc=desc):
        temps, goals, noises = [], [], []
        for g in gens:  # each member's own random stream, drawn as training alone would
            temps.append(12.0 + 16.0 * torch.rand(n_rooms, generator=g))
            if goal_conditioned:
                goals.append(lo + (hi - lo) * torch.rand(n_rooms, generator=g))
            noises.append(params.noise_std * torch.randn(horizon, n_rooms, generator=g))
        temp = torch.stack(temps).to(device)                      # (E, rooms)
        noise = torch.stack(noises, dim=1).to(device)             # (horizon, E, rooms)
        goal = (torch.stack(goals).to(device) if goal_conditioned
                else torch.full_like(temp, setpoint))
        visited = []
        for t in range(horizon):
            temp = expected_next_temp(temp, mlp(temp, goal), params) + noise[t]
            visited.append(temp)
        loss = tracking_cost(torch.stack(visited, dim=-1), goal).mean(dim=-1) / horizon  # (E,)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        losses.append(loss.detach().cpu())
        if k in ckpts:
            snapshots[k] = [m.to(device) for m in mlp.export()]
    return TrainedControllers(seeds=seeds, members=[m.to(device) for m in mlp.export()],
                              losses=torch.stack(losses), snapshots=snapshots,
                              goal_conditioned=goal_conditioned,
                              setpoint=None if goal_conditioned else setpoint,
                              setpoint_range=(lo, hi) if goal_conditioned else None)


def _as_list(name: str, values, allow_empty: bool = False) -> list:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}")
    values = list(values)
    if not values and not allow_empty:
        raise ValueError(f"{name} must name at least one value, got an empty sequence")
    return values


def train_neural_controller(setpoint: float, *, steps: int = 200, seed: int,
                            device: torch.device | str | None = None,
                            params: ThermostatParams | None = None, n_rooms: int = 128,
                            horizon: int = 15, hidden: int = 32, lr: float = 2e-2,
                            ) -> tuple[NeuralController, list[float]]:
    """Train a :class:`NeuralController` for one fixed ``setpoint`` by gradient descent.

    Each step simulates ``n_rooms`` rooms (starting uniformly in [12, 28] degrees) for
    ``horizon`` steps with process noise, differentiating through the simulator, and
    takes an Adam step on the mean per-step squared error ``tracking_cost / horizon``
    (the base objective). Deterministic for a given ``seed`` on a given machine. Returns
    ``(controller, losses)`` with the controller in eval mode on ``device``. One member
    of :func:`train_controllers`; raises ValueError as it does."""
    device = check_device("device", device)
    seed = check_positive_int("seed", seed, minimum=0)
    run = train_controllers(seeds=[seed], steps=steps, goal_conditioned=False, setpoint=setpoint,
                            device=device, params=params, n_rooms=n_rooms, horizon=horizon,
                            hidden=hidden, lr=lr)
    return run.members[0], run.losses[:, 0].tolist()


def train_goal_conditioned_controller(setpoint_range: tuple[float, float] = (15.0, 25.0), *,
                                      steps: int = 200, seed: int,
                                      device: torch.device | str | None = None,
                                      params: ThermostatParams | None = None, n_rooms: int = 128,
                                      horizon: int = 15, hidden: int = 32, lr: float = 2e-2,
                                      ) -> tuple[GoalConditionedController, list[float]]:
    """Train a :class:`GoalConditionedController` by gradient descent, with the setpoint
    as an input drawn uniformly from ``setpoint_range`` (degrees C) for every training room.

    Otherwise as :func:`train_neural_controller`: ``horizon``-step rollouts of ``n_rooms``
    noisy rooms, backpropagation through the simulator, Adam on the mean per-step squared
    distance to each room's own goal. Returns ``(controller, losses)``, the controller in
    eval mode on ``device``. One member of :func:`train_controllers`; raises ValueError as
    it does (e.g. naming ``setpoint_range`` when it is not a pair ``low < high``)."""
    device = check_device("device", device)
    seed = check_positive_int("seed", seed, minimum=0)
    run = train_controllers(seeds=[seed], steps=steps, goal_conditioned=True,
                            setpoint_range=setpoint_range, device=device, params=params,
                            n_rooms=n_rooms, horizon=horizon, hidden=hidden, lr=lr)
    return run.members[0], run.losses[:, 0].tolist()


# ----------------------------------------------------------------------------- the planner


def random_shooting_planner(temp: torch.Tensor, setpoint, *, horizon: int, n_samples: int,
                            params: ThermostatParams, seed: int,
                            device: torch.device | str | None = None) -> torch.Tensor:
    """Random-shooting model-predictive control: a selector with an explicit objective.

    For every room independently (all rooms at once, as tensors):

    1. draw ``n_samples`` candidate plans, each a sequence of ``horizon`` powers drawn
       i.i.d. uniformly from ``[0, max_power]`` (a tensor of shape
       ``(n_rooms, n_samples, horizon)``, drawn with ``make_generator(seed)`` on the CPU);
    2. simulate each plan from the room's current temperature with the noise-free model
       :func:`expected_next_temp`, giving predicted temperatures ``T_1 .. T_horizon``;
    3. score each plan by the explicit objective
       ``tracking_cost = sum_h (T_h - setpoint)**2`` (lower is better);
    4. return the **first** power of the lowest-cost plan (ties: the lowest index).

    ``temp``: 1-D float tensor of shape ``(n_rooms,)``. ``setpoint``: a number, or a
    tensor of shape ``(n_rooms,)`` (one goal per room). Returns a tensor of shape
    ``(n_rooms,)`` on ``device`` (default: ``temp``'s device). The objective is an input:
    changing ``setpoint`` retargets the planner with no retraining; ``n_samples`` is its
    test-time compute knob."""
    device = None if device is None else check_device("device", device)
    _check_temps("temp", temp)
    horizon = check_positive_int("horizon", horizon)
    n_samples = check_positive_int("n_samples", n_samples)
    _check_params(params)
    device = temp.device if device is None else device
    temp = temp.to(device)
    n_rooms = temp.shape[0]
    goal = _setpoint_tensor(setpoint, n_rooms, device, temp.dtype)
    gen = make_generator(seed)
    plans = params.max_power * torch.rand(n_rooms, n_samples, horizon, generator=gen,
                                          dtype=temp.dtype).to(device)
    predicted = []
    t_now = temp[:, None].expand(n_rooms, n_samples)
    for h in range(horizon):
        t_now = expected_next_temp(t_now, plans[:, :, h], params)
        predicted.append(t_now)
    cost = tracking_cost(torch.stack(predicted, dim=-1), goal[:, None])  # (rooms, samples)
    best = cost.argmin(dim=1)
    return plans[torch.arange(n_rooms, device=device), best, 0]


# ----------------------------------------------------------------------------- behavior


def fit_behavioral_setpoint(temps: torch.Tensor, powers: torch.Tensor, candidates,
                            params: ThermostatParams) -> torch.Tensor:
    """Infer, for each trajectory, the setpoint that best explains its actions.

    ``temps`` and ``powers`` have the same shape ``(n_rooms, n_steps)`` (or ``(n_steps,)``
    for a single trajectory): ``powers[..., t]`` is the action taken when the room was at
    ``temps[..., t]`` (so pass ``temps[:, :-1]`` with :func:`rollout`'s output).
    ``candidates`` is a 1-D sequence or tensor of setpoints to try.

    For each candidate ``s`` the "ideal" action at each visited temperature is
    :func:`best_one_step_power` ``(T, s)``; the score of ``s`` is the mean squared gap
    between the observed and the ideal actions (a Gaussian log-likelihood of the actions
    up to constants). Returns the best-scoring candidate per trajectory, shape
    ``temps.shape[:-1]`` (ties: the first candidate)."""
    _check_params(params)
    _check_temps("temps", temps, ndim=None)
    if not isinstance(powers, torch.Tensor) or not powers.is_floating_point():
        raise ValueError(f"powers must be a floating-point torch.Tensor, got {type(powers).__name__}")
    if powers.shape != temps.shape:
        raise ValueError(f"powers must have the same shape as temps {tuple(temps.shape)}, "
                         f"got {tuple(powers.shape)}")
    if temps.dim() not in (1, 2):
        raise ValueError(f"temps must be 1-D or 2-D (rooms, steps), got shape {tuple(temps.shape)}")
    cands = torch.as_tensor(candidates, dtype=temps.dtype).to(temps.device) \
        if not isinstance(candidates, torch.Tensor) else candidates.to(temps.device, temps.dtype)
    if cands.dim() != 1 or cands.numel() == 0 or not torch.isfinite(cands).all():
        raise ValueError("candidates must be a non-empty 1-D sequence of finite setpoints")
    ideal = best_one_step_power(temps.unsqueeze(-2), cands.unsqueeze(-1), params)  # (..., C, T)
    score = ((ideal - powers.to(temps.device).unsqueeze(-2)) ** 2).mean(dim=-1)  # (..., C)
    return cands[score.argmin(dim=-1)]
