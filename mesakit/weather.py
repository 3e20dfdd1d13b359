"""Sunny and rainy: the weather worlds of Chapter 2, lesson 2, and their Bayes predictors.

Demski's post "Mesa-Search vs Mesa-Control" climbs a ladder of weather worlds to ask when
a good sequence model starts to look like a learning algorithm. Here each rung is a
*world*: a family of random sequences of days, ``0`` = sunny and ``1`` = rainy, whose
parameters are drawn afresh for every sequence. A model trained on many sequences cannot
store one sequence's parameters in its weights; to predict well it must infer them from
the days it has seen so far, i.e. learn inside the sequence.

The six worlds (defaults in :class:`WeatherConfig`)::

    coin        memoryless: every day rains with probability p, p ~ Beta(1, 1) per sequence
                (a coin of unknown bias; the seed's "rain follows a memoryless distribution").
    rain_twice  the seed's first world: rain always comes exactly twice in a row. A spell
                is two rainy days followed by a sunny one; on each "free" day (any other day)
                a spell starts with probability p ~ Beta(1, 3) per sequence, so it is usually
                sunny. Sequences start on a free day.
    sticky      the seed's second world: day 0 is a fair coin; every later day repeats
                yesterday's weather with probability s ~ Beta(1, 1) per sequence (the
                stickiness; s < 1/2 makes sun and rain alternate).
    streak      the seed's third world: the chance of rain tomorrow depends on the length L
                of the current rainy streak (L = 0 after a sunny day):
                P(rain | L) = sigmoid(a + b * min(L, 4)), with (a, b) drawn per sequence from
                a grid. b > 0: the more rain in a row, the more rain (the seed's version);
                b < 0: long streaks become likely to end (from the seed's fourth rung).
    drifting    the seed's fourth world: the weather is a two-state Markov chain
                (P(rain | yesterday sunny), P(rain | yesterday rainy)) in {0.1, 0.5, 0.9}^2,
                nine regimes covering alternation, memoryless rain and stickiness. The regime
                is redrawn uniformly with probability ``drift_hazard`` (1/32) each day, so
                the parameters drift at random times.
    pattern     the seed's repeated patterns ("rain-rain-sun-rain-rain-sun"): a period
                P uniform in {2, 3, 4} and a random pattern of P days per sequence,
                repeated from day 0. Each day can be flipped with probability
                ``pattern_noise``; the default 0 repeats the pattern exactly, as in the seed.

For every world the Bayes-optimal predictor is tractable and implemented here, vectorized
over the batch: conjugate Beta posteriors (coin, rain_twice, sticky), exact enumeration of
a finite hypothesis set (streak, pattern), and HMM forward filtering (drifting). Because
each returns the sequential predictive probabilities, their products are the evidence of
each world, and :func:`mixture_bayes_predictor` is the exact Bayes predictor for the
mixture of worlds the lesson's networks are trained on.

Convention for every predictor: given days ``x`` of shape ``[..., T]`` (0/1), the output
``p`` has the same shape and ``p[..., t] = P(x[..., t] = 1 | x[..., :t])``: the probability
of rain on day ``t`` before seeing it. Samplers draw on a CPU ``torch.Generator`` (so a
seed gives the same days on any device) and return ``torch.long`` tensors on ``device``.

The lesson trains each network from several seeds with one recipe:
:class:`GRUForecasters` and :class:`TransformerForecasters` hold E copies of a GRU or a
causal transformer (one per training seed, each exactly the plain ``mesakit.nets`` model
that seed builds) and run them as one program; :func:`train_forecasters` trains them with
Adam on next-day prediction, optionally scoring them at checkpoints along the way, and
:func:`predict_rain_members` returns every member's forecasts.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .core import check_device, check_choice, check_positive_int, check_probability, make_generator, progress

__all__ = [
    "WORLDS",
    "WORLD_DESCRIPTIONS",
    "WeatherConfig",
    "DEFAULT_CONFIG",
    "sample_world",
    "sample_mixture",
    "coin_bayes_predictor",
    "rain_twice_bayes_predictor",
    "sticky_bayes_predictor",
    "streak_bayes_predictor",
    "drifting_bayes_predictor",
    "pattern_bayes_predictor",
    "bayes_predictor",
    "mixture_bayes_predictor",
    "model_inputs",
    "sinusoidal_positions",
    "next_day_loss",
    "predict_rain",
    "cross_entropy",
    "loss_by_position",
    "GRUForecasters",
    "TransformerForecasters",
    "train_forecasters",
    "predict_rain_members",
]

WORLDS: tuple[str, ...] = ("coin", "rain_twice", "sticky", "streak", "drifting", "pattern")

WORLD_DESCRIPTIONS: dict[str, str] = {
    "coin": "memoryless rain with an unknown per-sequence probability",
    "rain_twice": "rain always comes exactly twice in a row; unknown chance a spell starts",
    "sticky": "tomorrow repeats today with an unknown per-sequence stickiness",
    "streak": "chance of rain depends on the length of the current rainy streak",
    "drifting": "a Markov-chain regime that is redrawn at random times",
    "pattern": "a random pattern of period 2, 3 or 4, repeated",
}


@dataclass(frozen=True)
class WeatherConfig:
    """The priors of the six worlds (the samplers draw from them; the Bayes predictors
    assume them).

    ``coin_prior``, ``twice_prior``, ``sticky_prior``: Beta ``(a, b)`` priors on the rain
    probability, the spell-start probability and the stickiness. ``streak_a``,
    ``streak_b``: the grids (uniform prior) of the streak world's intercept and slope;
    ``streak_cap``: streaks longer than this count as this long. ``drift_levels``: the
    transition probabilities whose pairs make the drifting world's regimes;
    ``drift_hazard``: the daily chance that the regime is redrawn. ``pattern_periods``:
    the periods (uniform prior) of the pattern world; ``pattern_noise``: its flip rate.
    """

    coin_prior: tuple[float, float] = (1.0, 1.0)
    twice_prior: tuple[float, float] = (1.0, 3.0)
    sticky_prior: tuple[float, float] = (1.0, 1.0)
    streak_a: tuple[float, ...] = (-2.5, -2.0, -1.5, -1.0, -0.5, 0.0)
    streak_b: tuple[float, ...] = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
    streak_cap: int = 4
    drift_levels: tuple[float, ...] = (0.1, 0.5, 0.9)
    drift_hazard: float = 1 / 32
    pattern_periods: tuple[int, ...] = (2, 3, 4)
    pattern_noise: float = 0.0

    def __post_init__(self):
        for name in ("coin_prior", "twice_prior", "sticky_prior"):
            prior = getattr(self, name)
            if (not isinstance(prior, (tuple, list)) or len(prior) != 2
                    or not all(isinstance(v, (int, float)) and v > 0 for v in prior)):
                raise ValueError(f"{name} must be a pair of positive numbers (a, b), got {prior!r}")
        for name in ("streak_a", "streak_b"):
            grid = getattr(self, name)
            if (not isinstance(grid, (tuple, list)) or len(grid) == 0
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in grid)):
                raise ValueError(f"{name} must be a non-empty tuple of finite numbers, got {grid!r}")
        check_positive_int("streak_cap", self.streak_cap)
        if not isinstance(self.drift_levels, (tuple, list)) or len(self.drift_levels) == 0:
            raise ValueError(f"drift_levels must be a non-empty tuple of probabilities, got {self.drift_levels!r}")
        for v in self.drift_levels:
            check_probability("drift_levels", v)
        check_probability("drift_hazard", self.drift_hazard)
        periods = self.pattern_periods
        if (not isinstance(periods, (tuple, list)) or len(periods) == 0 or len(set(periods)) != len(periods)
                or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 12 for p in periods)):
            raise ValueError(f"pattern_periods must be distinct integers in [1, 12], got {periods!r}")
        check_probability("pattern_noise", self.pattern_noise)

    def drift_regimes(self) -> torch.Tensor:
        """The drifting world's regimes, shape ``[K, 2]``: row ``k`` holds
        ``(P(rain | yesterday sunny), P(rain | yesterday rainy))``."""
        lv = [float(v) for v in self.drift_levels]
        return torch.tensor(list(itertools.product(lv, lv)), dtype=torch.float64)


DEFAULT_CONFIG = WeatherConfig()


# ----------------------------------------------------------------------------- validation


def _check_config(config) -> WeatherConfig:
    if not isinstance(config, WeatherConfig):
        raise ValueError(f"config must be a WeatherConfig, got {type(config).__name__}")
    return config


def _resolve_device(device) -> torch.device:
    return check_device("device", device)


def _resolve_generator(seed, generator) -> torch.Generator:
    if generator is not None:
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise ValueError("generator must be a CPU torch.Generator")
        return generator
    return make_generator(seed)


def _check_days(name: str, x) -> torch.Tensor:
    """A tensor of 0/1 days with at least one day on its last axis."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of 0/1 days, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one day on its last axis, got shape {tuple(x.shape)}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} must contain only 0 (sunny) and 1 (rainy)")
    if not ((x == 0) | (x == 1)).all():
        raise ValueError(f"{name} must contain only 0 (sunny) and 1 (rainy)")
    return x


def _check_beta(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------- samplers
# Each _sample_<world>(n, T, gen, cfg) returns (days [n, T] long, params dict) on the CPU.


def _beta(n: int, a: float, b: float, gen: torch.Generator) -> torch.Tensor:
    """Beta(a, b) draws from a CPU generator, as the ratio of two Gamma draws.
    (``torch.distributions`` takes no generator; ``torch._standard_gamma`` is the
    sampler it uses internally, and it does.)"""
    ga = torch._standard_gamma(torch.full((n,), float(a), dtype=torch.float64), generator=gen)
    gb = torch._standard_gamma(torch.full((n,), float(b), dtype=torch.float64), generator=gen)
    return ga / (ga + gb)


def _sample_coin(n, T, gen, cfg):
    p = _beta(n, *cfg.coin_prior, gen)
    x = (torch.rand(n, T, generator=gen, dtype=torch.float64) < p[:, None]).long()
    return x, {"p": p}


def _sample_rain_twice(n, T, gen, cfg):
    p = _beta(n, *cfg.twice_prior, gen)
    u = torch.rand(n, T, generator=gen, dtype=torch.float64)
    x = torch.zeros(n, T, dtype=torch.long)
    phase = torch.zeros(n, dtype=torch.long)   # 0 free, 1 second day of a spell, 2 the sunny day after
    for t in range(T):
        day = torch.where(phase == 0, (u[:, t] < p).long(), (phase == 1).long())
        x[:, t] = day
        phase = _next_phase(phase, day)
    return x, {"p": p}


def _next_phase(phase: torch.Tensor, day: torch.Tensor) -> torch.Tensor:
    """Rain-twice state machine: a rainy free day starts a spell (next: forced rain), the
    forced rain is followed by a forced sunny day, then the days are free again. A forced
    day that goes the other way (impossible in this world) resets the machine to free."""
    started = (phase == 0) & (day == 1)
    second = (phase == 1) & (day == 1)
    return torch.where(started, torch.ones_like(phase), torch.where(second, torch.full_like(phase, 2),
                                                                      torch.zeros_like(phase)))


def _sample_sticky(n, T, gen, cfg):
    s = _beta(n, *cfg.sticky_prior, gen)
    first = (torch.rand(n, 1, generator=gen) < 0.5).long()
    switch = (torch.rand(n, T - 1, generator=gen, dtype=torch.float64) >= s[:, None]).long()
    flips = torch.cat([torch.zeros(n, 1, dtype=torch.long), switch.cumsum(1)], dim=1)
    return (first + flips) % 2, {"s": s}


def _streak_grid(cfg, dtype=torch.float64):
    a = torch.tensor(cfg.streak_a, dtype=dtype)
    b = torch.tensor(cfg.streak_b, dtype=dtype)
    aa, bb = torch.meshgrid(a, b, indexing="ij")
    return aa.reshape(-1), bb.reshape(-1)


def _sample_streak(n, T, gen, cfg):
    a_grid, b_grid = _streak_grid(cfg)
    h = torch.randint(len(a_grid), (n,), generator=gen)
    a, b = a_grid[h], b_grid[h]
    u = torch.rand(n, T, generator=gen, dtype=torch.float64)
    x = torch.zeros(n, T, dtype=torch.long)
    streak = torch.zeros(n, dtype=torch.float64)
    for t in range(T):
        p = torch.sigmoid(a + b * streak.clamp(max=cfg.streak_cap))
        x[:, t] = (u[:, t] < p).long()
        streak = (streak + 1) * x[:, t]
    return x, {"a": a, "b": b}


def _sample_drifting(n, T, gen, cfg):
    regimes = cfg.drift_regimes()
    K = regimes.shape[0]
    z = torch.randint(K, (n,), generator=gen)
    switch = torch.rand(n, T, generator=gen, dtype=torch.float64) < cfg.drift_hazard
    redraw = torch.randint(K, (n, T), generator=gen)
    u = torch.rand(n, T, generator=gen, dtype=torch.float64)
    x = torch.zeros(n, T, dtype=torch.long)
    zs = torch.zeros(n, T, dtype=torch.long)
    x[:, 0] = (u[:, 0] < 0.5).long()
    zs[:, 0] = z
    for t in range(1, T):
        z = torch.where(switch[:, t], redraw[:, t], z)
        p = regimes[z, x[:, t - 1]]
        x[:, t] = (u[:, t] < p).long()
        zs[:, t] = z
    return x, {"regime": zs}


def _sample_pattern(n, T, gen, cfg):
    periods = torch.tensor(cfg.pattern_periods, dtype=torch.long)
    P = periods[torch.randint(len(periods), (n,), generator=gen)]
    bits = torch.randint(2, (n, int(periods.max())), generator=gen)
    flips = (torch.rand(n, T, generator=gen, dtype=torch.float64) < cfg.pattern_noise).long()
    idx = torch.arange(T)[None, :] % P[:, None]
    clean = bits.gather(1, idx)
    return (clean + flips) % 2, {"period": P, "pattern": bits, "clean": clean}


_SAMPLERS = {
    "coin": _sample_coin,
    "rain_twice": _sample_rain_twice,
    "sticky": _sample_sticky,
    "streak": _sample_streak,
    "drifting": _sample_drifting,
    "pattern": _sample_pattern,
}


def sample_world(world: str, batch: int, length: int, *, seed: int = 0,
                 generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                 config: WeatherConfig = DEFAULT_CONFIG, return_params: bool = False):
    """Draw ``batch`` sequences of ``length`` days from one world, each with its own
    parameters drawn from the world's prior (see the module docstring).

    Randomness comes from ``generator`` (a CPU ``torch.Generator``) when given, else from a
    fresh one seeded with ``seed``. Returns days ``[batch, length]`` (``torch.long``,
    0 = sunny, 1 = rainy) on ``device``; with ``return_params=True`` also a dict of the
    per-sequence parameters (e.g. ``{"p": ...}`` for the coin), for checks and plots."""
    check_choice("world", world, WORLDS)
    batch = check_positive_int("batch", batch)
    length = check_positive_int("length", length)
    cfg = _check_config(config)
    dev = _resolve_device(device)
    gen = _resolve_generator(seed, generator)
    x, params = _SAMPLERS[world](batch, length, gen, cfg)
    x = x.to(dev)
    if return_params:
        return x, {k: v.to(dev) for k, v in params.items()}
    return x


def sample_mixture(batch: int, length: int, *, worlds: Sequence[str] = WORLDS,
                   weights: Sequence[float] | None = None, seed: int = 0,
                   generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                   config: WeatherConfig = DEFAULT_CONFIG) -> tuple[torch.Tensor, torch.Tensor]:
    """The training distribution: each sequence first draws its world (with probabilities
    ``weights``, uniform by default), then its parameters and days from that world.

    Returns ``(days [batch, length] long, world_id [batch] long)`` on ``device``, where
    ``world_id`` indexes ``worlds``. The loop runs over the worlds, not the sequences."""
    batch = check_positive_int("batch", batch)
    length = check_positive_int("length", length)
    worlds = _check_worlds(worlds)
    w = _check_weights(weights, len(worlds))
    cfg = _check_config(config)
    dev = _resolve_device(device)
    gen = _resolve_generator(seed, generator)
    ids = torch.multinomial(w, batch, replacement=True, generator=gen)
    x = torch.zeros(batch, length, dtype=torch.long)
    for k, name in enumerate(worlds):
        mask = ids == k
        n = int(mask.sum())
        if n:
            x[mask] = _SAMPLERS[name](n, length, gen, cfg)[0]
    return x.to(dev), ids.to(dev)


def _check_worlds(worlds) -> tuple[str, ...]:
    if isinstance(worlds, str) or not isinstance(worlds, (tuple, list)) or len(worlds) == 0:
        raise ValueError(f"worlds must be a non-empty list of names from {WORLDS}, got {worlds!r}")
    for w in worlds:
        check_choice("worlds", w, WORLDS)
    if len(set(worlds)) != len(worlds):
        raise ValueError(f"worlds must not repeat a name, got {worlds!r}")
    return tuple(worlds)


def _check_weights(weights, n: int) -> torch.Tensor:
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    try:
        w = torch.as_tensor(weights, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"weights must be {n} non-negative numbers, got {weights!r}") from err
    if w.shape != (n,) or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {n} non-negative numbers with a positive sum, got {weights!r}")
    return w / w.sum()


# ----------------------------------------------------------------------------- Bayes predictors


def coin_bayes_predictor(x: torch.Tensor, prior_a: float = 1.0, prior_b: float = 1.0) -> torch.Tensor:
    """Bayes predictor of the coin world: with rain probability ``p ~ Beta(prior_a,
    prior_b)`` the posterior predictive is ``(rains so far + a) / (days so far + a + b)``
    (Laplace's rule of succession for a = b = 1). Returns P(rain on day t | days < t)."""
    x = _check_days("x", x)
    a, b = _check_beta("prior_a", prior_a), _check_beta("prior_b", prior_b)
    xf = x.to(torch.float64)
    rains = xf.cumsum(-1) - xf  # rains strictly before day t
    days = torch.arange(x.shape[-1], dtype=torch.float64, device=x.device)
    return (rains + a) / (days + a + b)


def rain_twice_bayes_predictor(x: torch.Tensor, prior_a: float = 1.0, prior_b: float = 3.0) -> torch.Tensor:
    """Bayes predictor of the rain-twice world: the day after a spell starts is rain for
    sure (probability 1) and the day after that is sunny for sure (probability 0); on a
    free day, the chance a spell starts is the Beta posterior mean
    ``(spells started + a) / (free days seen + a + b)``. If a forced day goes the other
    way (impossible in this world), the next day is treated as free."""
    x = _check_days("x", x)
    a, b = _check_beta("prior_a", prior_a), _check_beta("prior_b", prior_b)
    xf = x.to(torch.float64)
    lead = xf.shape[:-1]
    phase = torch.zeros(lead, dtype=torch.long, device=x.device)
    starts = torch.zeros(lead, dtype=torch.float64, device=x.device)
    seen = torch.zeros(lead, dtype=torch.float64, device=x.device)
    out = torch.empty_like(xf)
    for t in range(x.shape[-1]):
        free = (phase == 0).to(torch.float64)
        out[..., t] = torch.where(phase == 0, (starts + a) / (seen + a + b), (phase == 1).to(torch.float64))
        day = xf[..., t]
        seen = seen + free
        starts = starts + free * day
        phase = _next_phase(phase, x[..., t].long())
    return out


def sticky_bayes_predictor(x: torch.Tensor, prior_a: float = 1.0, prior_b: float = 1.0) -> torch.Tensor:
    """Bayes predictor of the sticky world (the reference for the chapter's workbook).

    The world: day 0 rains with probability 1/2; each later day repeats the previous day's
    weather with probability ``s``, where the stickiness ``s ~ Beta(prior_a, prior_b)``
    (``prior_a`` acts as prior repeats, ``prior_b`` as prior switches).

    Args:
        x: days, a tensor of 0 (sunny) / 1 (rainy) of shape ``[T]`` or ``[B, T]``
           (any leading shape works; time is the last axis).
        prior_a, prior_b: the Beta prior's positive parameters.

    Returns:
        A float64 tensor ``p`` of the same shape: ``p[..., 0] = 0.5`` and, for ``t >= 1``,
        ``p[..., t] = P(x_t = 1 | x_0..x_{t-1}) = q_t if x_{t-1} = 1 else 1 - q_t`` with
        ``q_t = (repeats + a) / (t - 1 + a + b)``, the posterior mean of ``s`` after the
        ``t - 1`` transitions seen so far, of which ``repeats`` kept the weather.

    One observed repeat moves the predicted chance of another repeat from 1/2 to 2/3 (and
    one switch to 1/3) under the uniform prior: the "one-shot learning" of the seed.
    """
    x = _check_days("x", x)
    a, b = _check_beta("prior_a", prior_a), _check_beta("prior_b", prior_b)
    xf = x.to(torch.float64)
    out = torch.full_like(xf, 0.5)
    if x.shape[-1] > 1:
        same = (xf[..., 1:] == xf[..., :-1]).to(torch.float64)  # transition t-1 -> t, t >= 1
        repeats = same.cumsum(-1) - same                   # repeats before transition t-1 -> t
        n = torch.arange(same.shape[-1], dtype=torch.float64, device=x.device)
        q = (repeats + a) / (n + a + b)                    # P(day t repeats day t-1)
        prev = xf[..., :-1]
        out[..., 1:] = prev * q + (1 - prev) * (1 - q)
    return out


def streak_bayes_predictor(x: torch.Tensor, config: WeatherConfig = DEFAULT_CONFIG) -> torch.Tensor:
    """Bayes predictor of the streak world by exact enumeration of the ``(a, b)`` grid:
    keep the posterior over the grid points, predict with the posterior-weighted
    ``sigmoid(a + b * min(streak, cap))``, update with the day's likelihood."""
    x = _check_days("x", x)
    cfg = _check_config(config)
    a, b = (g.to(x.device) for g in _streak_grid(cfg))
    xf = x.to(torch.float64)
    lead = xf.shape[:-1]
    logpost = torch.zeros(*lead, a.numel(), dtype=torch.float64, device=x.device)
    streak = torch.zeros(lead, dtype=torch.float64, device=x.device)
    out = torch.empty_like(xf)
    for t in range(x.shape[-1]):
        logit = a + b * streak.clamp(max=cfg.streak_cap).unsqueeze(-1)
        post = torch.softmax(logpost, dim=-1)
        out[..., t] = (post * torch.sigmoid(logit)).sum(-1)
        day = xf[..., t].unsqueeze(-1)
        logpost = logpost + torch.where(day == 1, nn.functional.logsigmoid(logit), nn.functional.logsigmoid(-logit))
        streak = (streak + 1) * xf[..., t]
    return out


def drifting_bayes_predictor(x: torch.Tensor, config: WeatherConfig = DEFAULT_CONFIG) -> torch.Tensor:
    """Bayes predictor of the drifting world: HMM forward filtering over the regimes with
    the known hazard. Before day ``t`` the belief over the regime is carried forward
    (stay with probability ``1 - h``, redraw uniformly with probability ``h``), the
    prediction averages each regime's ``P(rain | day t-1)``, and the day's likelihood
    updates the belief. Day 0 is a fair coin in every regime."""
    x = _check_days("x", x)
    cfg = _check_config(config)
    R = cfg.drift_regimes().to(x.device)
    K, h = R.shape[0], cfg.drift_hazard
    xf = x.to(torch.float64)
    lead = xf.shape[:-1]
    belief = torch.full((*lead, K), 1.0 / K, dtype=torch.float64, device=x.device)
    out = torch.empty_like(xf)
    out[..., 0] = 0.5
    for t in range(1, x.shape[-1]):
        belief = (1 - h) * belief + h / K
        prev = xf[..., t - 1].unsqueeze(-1)
        p_k = prev * R[:, 1] + (1 - prev) * R[:, 0]          # [..., K]
        out[..., t] = (belief * p_k).sum(-1)
        day = xf[..., t].unsqueeze(-1)
        lik = day * p_k + (1 - day) * (1 - p_k)
        belief = belief * lik
        belief = belief / belief.sum(-1, keepdim=True).clamp_min(1e-300)
    return out


def _exclusive_cumsum(v: torch.Tensor) -> torch.Tensor:
    """Sum over the days strictly before each day (last axis); safe with -inf entries."""
    c = v.cumsum(-1)
    return torch.cat([torch.zeros_like(c[..., :1]), c[..., :-1]], dim=-1)


def _log_or_neg_inf(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


def pattern_bayes_predictor(x: torch.Tensor, config: WeatherConfig = DEFAULT_CONFIG) -> torch.Tensor:
    """Bayes predictor of the pattern world by exact enumeration of every period in
    ``config.pattern_periods`` and every pattern of that period (uniform prior over the
    periods, then over the patterns), each day flipped with the known noise.

    No loop over days: the log-evidence of each hypothesis before every day is a
    cumulative sum. The loop over periods keeps memory at ``[..., 2**P, T]`` per period.
    If no hypothesis can explain the days so far (possible without noise, on days from
    another world), the prediction is 1/2."""
    x = _check_days("x", x)
    cfg = _check_config(config)
    T, eps = x.shape[-1], cfg.pattern_noise
    xf = x.to(torch.float64).unsqueeze(-2)                                      # [..., 1, T]
    log_match = torch.tensor(_log_or_neg_inf(1 - eps), dtype=torch.float64, device=x.device)
    log_flip = torch.tensor(_log_or_neg_inf(eps), dtype=torch.float64, device=x.device)
    log_evidence, log_rain = [], []   # per period: log sum over patterns of prior * likelihood (* P(rain))
    for P in cfg.pattern_periods:
        pats = torch.tensor(list(itertools.product((0, 1), repeat=P)), dtype=torch.float64, device=x.device)
        clean = pats[:, torch.arange(T, device=x.device) % P]                  # [2^P, T]
        before = _exclusive_cumsum(torch.where(xf == clean, log_match, log_flip))   # [..., 2^P, T]
        logw = before - math.log(len(cfg.pattern_periods)) - P * math.log(2.0)
        log_p_rain = torch.where(clean == 1, log_match, log_flip)               # log P(rain | pattern)
        log_evidence.append(torch.logsumexp(logw, dim=-2))
        log_rain.append(torch.logsumexp(logw + log_p_rain, dim=-2))
    num = torch.logsumexp(torch.stack(log_rain), dim=0)
    den = torch.logsumexp(torch.stack(log_evidence), dim=0)
    p = torch.exp(num - den)
    return torch.where(torch.isfinite(den), p, torch.full_like(p, 0.5))


_PREDICTORS = {
    "coin": lambda x, cfg: coin_bayes_predictor(x, *cfg.coin_prior),
    "rain_twice": lambda x, cfg: rain_twice_bayes_predictor(x, *cfg.twice_prior),
    "sticky": lambda x, cfg: sticky_bayes_predictor(x, *cfg.sticky_prior),
    "streak": streak_bayes_predictor,
    "drifting": drifting_bayes_predictor,
    "pattern": pattern_bayes_predictor,
}


def bayes_predictor(world: str, x: torch.Tensor, config: WeatherConfig = DEFAULT_CONFIG) -> torch.Tensor:
    """The Bayes predictor of one world (one that knows which world it is in): returns
    P(rain on day t | days < t), same shape as ``x``, float64."""
    check_choice("world", world, WORLDS)
    x = _check_days("x", x)
    return _PREDICTORS[world](x, _check_config(config))


def _log_prob_of_days(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log P(x_t | past) for predictive probabilities p (exact zeros allowed: -inf)."""
    return torch.where(x == 1, torch.log(p), torch.log1p(-p))


def mixture_bayes_predictor(x: torch.Tensor, *, worlds: Sequence[str] = WORLDS,
                            weights: Sequence[float] | None = None,
                            config: WeatherConfig = DEFAULT_CONFIG, return_posterior: bool = False):
    """The Bayes predictor of the whole training distribution: it does not know the world,
    so it weighs each world's prediction by the world's posterior probability, which is
    the prior ``weights`` times the product of that world's past predictive probabilities
    (its evidence). Returns P(rain on day t | days < t) like ``x``; with
    ``return_posterior=True`` also the posterior over ``worlds`` before each day,
    shape ``[len(worlds), *x.shape]``."""
    x = _check_days("x", x)
    worlds = _check_worlds(worlds)
    w = _check_weights(weights, len(worlds)).to(x.device)
    cfg = _check_config(config)
    xf = x.to(torch.float64)
    preds = torch.stack([_PREDICTORS[name](x, cfg) for name in worlds])          # [W, ..., T]
    logp = _log_prob_of_days(preds, xf)
    before = _exclusive_cumsum(logp)
    logw = torch.log(w).reshape(-1, *([1] * x.dim()))
    post = torch.softmax(logw + before, dim=0)
    p = (post * preds).sum(0)
    return (p, post) if return_posterior else p


# ----------------------------------------------------------------------------- models and losses


def model_inputs(x: torch.Tensor) -> torch.Tensor:
    """Inputs for a next-day model: at position ``t`` a one-hot of *yesterday* (day
    ``t - 1``) over {start, sunny, rainy}, so the output at ``t`` may use days ``< t`` only.
    ``x`` is ``[B, T]``; returns ``[B, T, 3]`` float32 on ``x``'s device."""
    x = _check_days("x", x)
    if x.dim() != 2:
        raise ValueError(f"x must have shape [batch, days], got {tuple(x.shape)}")
    prev = torch.cat([torch.full_like(x[:, :1], -1), x[:, :-1]], dim=1).long()
    return nn.functional.one_hot(prev + 1, 3).float()


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The sinusoidal position codes of Vaswani et al. (2017), shape ``[length, dim]``.

    A small transformer learns in-context tricks that need relative positions (look at
    yesterday, weigh recent days more) much faster when its learned position embeddings
    start from these codes instead of small random numbers."""
    length = check_positive_int("length", length)
    dim = check_positive_int("dim", dim, minimum=2)
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


def next_day_loss(logits: torch.Tensor, days: torch.Tensor) -> torch.Tensor:
    """Training loss: mean binary cross-entropy (nats) between the models' rain logits
    ``[B, T, 1]`` (or ``[B, T]``) and the days ``[B, T]``."""
    if logits.dim() == days.dim() + 1:
        logits = logits.squeeze(-1)
    return nn.functional.binary_cross_entropy_with_logits(logits, days.to(logits.dtype))


@torch.no_grad()
def predict_rain(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """A trained next-day model's P(rain on day t | days < t) for days ``x`` ``[B, T]``,
    in evaluation mode and without gradients; float64 on ``x``'s device."""
    return _rain_probabilities(model, x, batch_size, lambda inp: model(inp).squeeze(-1), dim=0)


def _rain_probabilities(model: nn.Module, x: torch.Tensor, batch_size: int, logits_of, dim: int) -> torch.Tensor:
    """sigmoid(logits_of(inputs)) over ``x`` in batches, in evaluation mode (the model's
    mode restored after), float64 on ``x``'s device, concatenated along ``dim``."""
    x = _check_days("x", x)
    if x.dim() != 2:
        raise ValueError(f"x must have shape [batch, days], got {tuple(x.shape)}")
    batch_size = check_positive_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    try:
        outs = [torch.sigmoid(logits_of(model_inputs(x[i:i + batch_size]).to(dev)).double()).to(x.device)
                for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs, dim=dim)


def cross_entropy(p: torch.Tensor, x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-day prediction loss in nats, ``-log P(observed day)``, for predictive
    probabilities ``p`` of rain and days ``x`` (same shape). ``p`` is clipped to
    ``[eps, 1 - eps]`` so a confident mistake costs a large but finite loss."""
    if not isinstance(p, torch.Tensor) or not isinstance(x, torch.Tensor) or p.shape != x.shape:
        raise ValueError("p and x must be tensors of the same shape")
    _check_days("x", x)
    check_probability("eps", eps)
    q = p.to(torch.float64).clamp(eps, 1 - eps)
    return -_log_prob_of_days(q, x.to(torch.float64))


def loss_by_position(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) at each position over a batch ``[B, T]`` -> ``[T]``:
    the learning curve *inside* a sequence, with the weights frozen."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError("x must be a [batch, days] tensor")
    return cross_entropy(p, x).mean(0)


# ----------------------------------------------------------------------------- several seeds as one program
# The lesson trains each architecture for several training seeds. Tiny networks spend their
# time in per-operation overhead, so the seeds run as slices of one batched program: every
# weight carries a leading member axis E and the matrix products become batched products.
# Member i starts from exactly the weights of the plain model (``GRUSequenceModel`` or
# ``CausalTransformer``) built right after ``torch.manual_seed(seeds[i])``, and
# ``member(i)`` hands back such a plain model with member i's current weights.


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must be a non-empty list of non-negative integers, got an empty list")
    for s in seeds:
        check_positive_int("seeds", s, minimum=0)
    return [int(s) for s in seeds]


def _stack(modules: Sequence[nn.Module], name: str) -> nn.Parameter:
    return nn.Parameter(torch.stack([m.get_parameter(name).detach().clone() for m in modules]))


class _Forecasters(nn.Module):
    """Base of the seed-batched forecasters: ``forward(inputs [E, B, T, 3]) -> logits
    [E, B, T]``; ``member(i)`` is the plain model with member ``i``'s weights."""

    seeds: list[int]
    _names: list[str]

    def __len__(self) -> int:
        return len(self.seeds)

    def _plain(self) -> nn.Module:   # a fresh plain model of this architecture
        raise NotImplementedError

    def member(self, i: int) -> nn.Module:
        """A plain model (a copy) holding member ``i``'s current weights, in eval mode."""
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self):
            raise ValueError(f"i must be an integer in [0, {len(self) - 1}], got {i!r}")
        model = self._plain().to(next(self.parameters()).device)
        with torch.no_grad():
            for name in self._names:
                model.get_parameter(name).copy_(getattr(self, name.replace(".", "__"))[i])
        return model.eval()

    def _check_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or inputs.shape[0] != len(self) \
                or inputs.shape[-1] != 3:
            raise ValueError(f"inputs must have shape [members={len(self)}, batch, days, 3], "
                             f"got {tuple(getattr(inputs, 'shape', ()))}")
        return inputs


class GRUForecasters(_Forecasters):
    """``len(seeds)`` GRU next-day forecasters, one per training seed, run as one program.

    Member ``i`` is ``GRUSequenceModel(3, hidden, 1)`` built after
    ``torch.manual_seed(seeds[i])`` (same weights, same arithmetic: a single-layer GRU of
    Cho et al. 2014 with PyTorch's gate layout, unrolled with batched matrix products).

    ``forward(inputs)`` takes ``[E, B, T, 3]`` (see :func:`model_inputs`) and returns rain
    logits ``[E, B, T]``. Raises ValueError for empty or negative ``seeds``, a
    non-positive ``hidden`` or inputs of the wrong shape."""

    def __init__(self, seeds: Sequence[int], hidden: int = 64):
        super().__init__()
        from .nets import GRUSequenceModel
        self.seeds = _check_seeds(seeds)
        self.hidden = check_positive_int("hidden", hidden)
        plain = []
        for s in self.seeds:
            torch.manual_seed(s)
            plain.append(GRUSequenceModel(3, self.hidden, 1))
        self._names = [n for n, _ in plain[0].named_parameters()]
        for n in self._names:
            self.register_parameter(n.replace(".", "__"), _stack(plain, n))
        self._base = [plain[0]]   # lends its code (in a list: not a submodule, its weights unused)

    def _plain(self) -> nn.Module:
        from .nets import GRUSequenceModel
        return GRUSequenceModel(3, self.hidden, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self._check_inputs(inputs)
        # PyTorch's fused GRU kernel, called once per member on that member's slice of the
        # weights, is faster on a CPU than any unrolled batched version (it avoids ~20
        # small autograd operations per day); the gradients still land in the stacked weights.
        base = self._base[0]
        outs = []
        for i in range(len(self)):
            weights = {n: getattr(self, n.replace(".", "__"))[i] for n in self._names}
            outs.append(torch.func.functional_call(base, weights, (x[i],)))
        return torch.stack(outs).squeeze(-1)


class TransformerForecasters(_Forecasters):
    """``len(seeds)`` causal-transformer next-day forecasters, one per training seed, run
    as one program.

    Member ``i`` is ``CausalTransformer(3, 1, d_model, n_heads, n_layers, max_len)`` (pre-norm
    blocks of Vaswani et al. 2017, ReLU feed-forward of width ``4 * d_model``, learned
    positions) built after ``torch.manual_seed(seeds[i])``; with ``sinusoidal_init=True`` its
    position embeddings then start from :func:`sinusoidal_positions`.

    ``forward(inputs)`` takes ``[E, B, T, 3]`` with ``T <= max_len`` and returns rain logits
    ``[E, B, T]``. Raises ValueError for bad sizes (``d_model`` must be divisible by
    ``n_heads``; sinusoidal positions need an even ``d_model``) or inputs of the wrong shape."""

    def __init__(self, seeds: Sequence[int], d_model: int = 32, n_heads: int = 2, n_layers: int = 2,
                 max_len: int = 64, sinusoidal_init: bool = True):
        super().__init__()
        from .nets import CausalTransformer
        self.seeds = _check_seeds(seeds)
        for name, value in (("d_model", d_model), ("n_heads", n_heads), ("n_layers", n_layers),
                            ("max_len", max_len)):
            check_positive_int(name, value)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if sinusoidal_init and d_model % 2:
            raise ValueError(f"d_model must be even for sinusoidal_init, got {d_model}")
        self.config = dict(d_model=d_model, n_heads=n_heads, n_layers=n_layers, max_len=max_len)
        plain = []
        for s in self.seeds:
            torch.manual_seed(s)
            m = self._plain()
            if sinusoidal_init:
                with torch.no_grad():
                    m.pos.copy_(sinusoidal_positions(max_len, d_model))
            plain.append(m)
        self._names = [n for n, _ in plain[0].named_parameters()]
        for n in self._names:
            self.register_parameter(n.replace(".", "__"), _stack(plain, n))

    def _plain(self) -> nn.Module:
        from .nets import CausalTransformer
        return CausalTransformer(3, 1, positional="learned", **self.config)

    def _p(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "__"))

    @staticmethod
    def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # h [E, B, T, i], w [E, o, i], b [E, o]
        E, B, T, i = h.shape
        out = torch.baddbmm(b[:, None, :], h.reshape(E, B * T, i), w.transpose(1, 2))
        return out.reshape(E, B, T, -1)

    @staticmethod
    def _norm(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h = nn.functional.layer_norm(h, h.shape[-1:], eps=1e-5)
        return h * w[:, None, None, :] + b[:, None, None, :]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self._check_inputs(inputs)
        E, B, T, _ = x.shape
        cfg = self.config
        if T > cfg["max_len"]:
            raise ValueError(f"sequence length {T} exceeds max_len={cfg['max_len']}")
        d, nh = cfg["d_model"], cfg["n_heads"]
        p = self._p
        h = self._linear(x, p("embed.weight"), p("embed.bias")) + p("pos")[:, None, :T, :]
        for layer in range(cfg["n_layers"]):
            pre = f"blocks.layers.{layer}."
            a = self._norm(h, p(pre + "norm1.weight"), p(pre + "norm1.bias"))
            qkv = self._linear(a, p(pre + "self_attn.in_proj_weight"), p(pre + "self_attn.in_proj_bias"))
            qkv = qkv.reshape(E * B, T, 3, nh, d // nh).permute(2, 0, 3, 1, 4)   # [3, E*B, nh, T, dh]
            att = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
            att = att.permute(0, 2, 1, 3).reshape(E, B, T, d)
            h = h + self._linear(att, p(pre + "self_attn.out_proj.weight"), p(pre + "self_attn.out_proj.bias"))
            f = self._norm(h, p(pre + "norm2.weight"), p(pre + "norm2.bias"))
            f = torch.relu(self._linear(f, p(pre + "linear1.weight"), p(pre + "linear1.bias")))
            h = h + self._linear(f, p(pre + "linear2.weight"), p(pre + "linear2.bias"))
        h = self._norm(h, p("norm.weight"), p("norm.bias"))
        return self._linear(h, p("head.weight"), p("head.bias")).squeeze(-1)


def _clip_per_member_(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """Clip each member's gradient (the slices along axis 0) to global norm ``max_norm``,
    as ``clip_grad_norm_`` would for that member trained alone."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norms = sum(g.pow(2).reshape(g.shape[0], -1).sum(1) for g in grads).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


def train_forecasters(model: nn.Module, train_days: torch.Tensor, *, steps: int, lr: float = 3e-3,
                      batch: int = 64, warmup: int = 50, schedule: str = "constant", seed: int = 0,
                      clip_grad: float | None = 1.0, checkpoints: Sequence[int] = (),
                      on_checkpoint=None, device: torch.device | str = "cpu",
                      desc: str = "training") -> torch.Tensor:
    """Train seed-batched forecasters (:class:`GRUForecasters`, :class:`TransformerForecasters`)
    on next-day prediction; every member gets the same recipe and its own batches.

    Each step draws, for every member, ``batch`` sequences from the pool ``train_days``
    ``[N, T]`` (a seeded generator: same ``seed``, same batches) and takes one Adam step on
    the sum over members of each member's mean cross-entropy, so a member's gradient is
    its own loss's gradient; ``clip_grad`` clips each member's gradient norm separately.
    The learning rate rises linearly over ``warmup`` steps, then stays at ``lr``
    (``schedule="constant"``, so a checkpoint at step k is what a k-step run would give,
    up to the warm-up) or decays to zero (``"cosine"``).

    After each step number in ``checkpoints`` (1-based), ``on_checkpoint(model, step)`` is
    called with the model in eval mode. Returns the training loss of every member at
    every step, ``[steps, E]`` (nats per day). Raises ValueError for a bad argument."""
    if not isinstance(model, _Forecasters):
        raise ValueError(f"model must be GRUForecasters or TransformerForecasters, got {type(model).__name__}")
    train_days = _check_days("train_days", train_days)
    if train_days.dim() != 2:
        raise ValueError(f"train_days must have shape [sequences, days], got {tuple(train_days.shape)}")
    steps = check_positive_int("steps", steps)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    batch = check_positive_int("batch", batch)
    warmup = check_positive_int("warmup", warmup, minimum=0)
    check_choice("schedule", schedule, ("constant", "cosine"))
    check_positive_int("seed", seed, minimum=0)
    if clip_grad is not None and (isinstance(clip_grad, bool) or not isinstance(clip_grad, (int, float))
                                  or not clip_grad > 0):
        raise ValueError(f"clip_grad must be a positive number or None, got {clip_grad!r}")
    checkpoints = set(int(check_positive_int("checkpoints", c)) for c in checkpoints)
    if on_checkpoint is not None and not callable(on_checkpoint):
        raise ValueError("on_checkpoint must be callable or None")
    dev = check_device("device", device)

    def factor(s: int) -> float:
        ramp = min(1.0, (s + 1) / warmup) if warmup else 1.0
        if schedule == "cosine":
            return ramp * 0.5 * (1 + math.cos(math.pi * s / steps))
        return ramp

    gen = make_generator(seed)
    model.to(dev).train()
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    E, N = len(model), train_days.shape[0]
    losses = torch.zeros(steps, E)
    for step in progress(range(steps), desc=desc):
        idx = torch.randint(N, (E * batch,), generator=gen)
        days = train_days[idx.to(train_days.device)].to(dev)                 # [E * batch, T]
        inputs = model_inputs(days).reshape(E, batch, -1, 3)
        target = days.reshape(E, batch, -1).to(torch.float32)
        logits = model(inputs)
        per_member = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((1, 2))
        opt.zero_grad(set_to_none=True)
        per_member.sum().backward()
        if clip_grad is not None:
            _clip_per_member_(params, float(clip_grad))
        opt.step()
        sched.step()
        losses[step] = per_member.detach().cpu()
        if on_checkpoint is not None and step + 1 in checkpoints:
            model.eval()
            with torch.no_grad():
                on_checkpoint(model, step + 1)
            model.train()
    model.eval()
    return losses


@torch.no_grad()
def predict_rain_members(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Every member's P(rain on day t | days < t) for days ``x`` ``[B, T]``: returns
    ``[E, B, T]`` float64 on ``x``'s device (eval mode, no gradients)."""
    if not isinstance(model, _Forecasters):
        raise ValueError(f"model must be GRUForecasters or TransformerForecasters, got {type(model).__name__}")
    E = len(model)
    return _rain_probabilities(model, x, batch_size, lambda inp: model(inp.expand(E, -1, -1, -1)), dim=1)
