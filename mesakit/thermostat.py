"""A batch of rooms to keep warm, and three ways of doing it.

Chapter 1, lesson 1 ("Thermostats and planners") compares a hand-written thermostat, a
neural controller trained by gradient descent, and a random-shooting planner on the same
task. Everything here is vectorized: a batch of rooms is a 1-D tensor of temperatures.

The dynamics of room ``i`` (one step is, say, ten minutes)::

    T[t+1] = T[t] + leak * (outside_temp - T[t]) + heat_gain * power[t] + noise[t]

with ``power[t]`` clamped to ``[0, max_power]`` and ``noise[t] ~ N(0, noise_std**2)``.
With the default parameters a constant power ``p`` holds the room at
``outside_temp + heat_gain * p / leak = 10 + 20 p`` degrees, so every setpoint between
10 and 30 degrees is reachable (20 needs ``p = 0.5``, 26 needs ``p = 0.8``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


def _resolve_device(device, fallback: torch.Tensor | None = None) -> torch.device:
    if device is None:
        return fallback.device if fallback is not None else torch.device("cpu")
    return check_device("device", device)


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
    """Starting temperatures, uniform in ``[low, high]``, shape ``(n_rooms,)``."""
    n_rooms = check_positive_int("n_rooms", n_rooms)
    low = check_in_range("low", low, -100.0, 100.0)
    high = check_in_range("high", high, low, 100.0)
    gen = make_generator(seed)
    temps = low + (high - low) * torch.rand(n_rooms, generator=gen)
    return temps.to(_resolve_device(device))


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


class NeuralController(nn.Module):
    """A small MLP mapping temperature -> power in ``[0, max_power]``.

    Its only input is the temperature (rescaled by fixed physical constants, not by any
    setpoint): the setpoint it was trained for lives in its weights, not in its inputs."""

    def __init__(self, params: ThermostatParams, hidden: int = 32):
        super().__init__()
        self.outside_temp = float(params.outside_temp)
        self.scale = float(params.heat_gain * params.max_power / params.leak)
        self.max_power = float(params.max_power)
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(),
                                 nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 1))

    def forward(self, temp: torch.Tensor) -> torch.Tensor:
        x = ((temp - self.outside_temp) / self.scale).unsqueeze(-1)
        return self.max_power * torch.sigmoid(self.net(x)).squeeze(-1)


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
    ``(controller, losses)`` with the controller in eval mode on ``device``."""
    setpoint = check_in_range("setpoint", setpoint, -100.0, 100.0)
    steps = check_positive_int("steps", steps)
    n_rooms = check_positive_int("n_rooms", n_rooms)
    horizon = check_positive_int("horizon", horizon)
    hidden = check_positive_int("hidden", hidden)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    params = ThermostatParams() if params is None else _check_params(params)
    device = _resolve_device(device)
    gen = make_generator(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        controller = NeuralController(params, hidden=hidden)
    controller = controller.to(device)
    opt = torch.optim.Adam(controller.parameters(), lr=lr)
    losses: list[float] = []
    for _ in progress(range(steps), desc="training the neural controller"):
        temp = (12.0 + 16.0 * torch.rand(n_rooms, generator=gen)).to(device)
        noise = (params.noise_std * torch.randn(horizon, n_rooms, generator=gen)).to(device)
        visited = []
        for t in range(horizon):
            temp = expected_next_temp(temp, controller(temp), params) + noise[t]
            visited.append(temp)
        loss = tracking_cost(torch.stack(visited, dim=1), setpoint).mean() / horizon
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    controller.eval()
    return controller, losses


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
    _check_temps("temp", temp)
    horizon = check_positive_int("horizon", horizon)
    n_samples = check_positive_int("n_samples", n_samples)
    _check_params(params)
    device = _resolve_device(device, temp)
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
