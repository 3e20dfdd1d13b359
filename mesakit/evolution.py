"""Evolution as a base optimizer: a genetic algorithm over a forager's innate drive.

"Risks from Learned Optimization" uses biological evolution as its running analogy: a
base optimizer that selects organisms for (inclusive genetic) fitness, and produces
brains that pursue objectives of their own, which agree with fitness in the environment
they evolved in and can part from it elsewhere (Hubinger et al. 2019, "Risks from Learned
Optimization in Advanced Machine Learning Systems", arXiv:1906.01820, section 1). This module is the smallest working version of that story, for Chapter 3,
lesson 5.

The world. A forager lives for ``meals`` meals; at each meal it is offered ``items`` food
items and eats one. Every item has a hidden energy content (kcal) and ``D`` features the
forager can sense, ``FEATURES = ("sweetness", "redness", "smell")`` by default. Natural
food is linear-Gaussian: with ``z ~ N(0, 1)`` per item,

    kcal      = kcal_mean + kcal_sd * z          (clamped at 0, which is rare)
    feature_i = rho_i * z + sqrt(1 - rho_i**2) * noise_i,   noise_i ~ N(0, 1) independent

so ``rho_i`` (``ForagingWorld.cue_correlation``) is the correlation of feature ``i`` with
energy, set by the world's author. A fraction ``candy_fraction`` of items is *candy*: zero
kcal, sweetness (feature 0) ``~ N(candy_sweetness, candy_sweetness_sd)``, every other
feature ``~ N(0, 1)`` and uncorrelated with anything. The ancestral world has no candy.

The forager. Its genome is a *drive*, a unit vector ``w`` of ``D`` weights; its innate
reward for an item with features ``f`` is ``w . f``. It eats the item its drive rates
highest (greedy; ties have probability zero). Its *fitness*, the base objective, is the
energy it eats over a lifetime (kcal); its *drive satisfaction*, its own objective, is the
sum of ``w . f`` over the items it ate. The drive never sees kcal.

The base optimizer. :func:`genetic_algorithm` evolves ``runs`` independent populations of
``population`` unit vectors at once, as one ``[runs, population, D]`` tensor: truncation
selection, elitism, uniform crossover and Gaussian mutation, with every individual of a
run scored on the same freshly drawn lifetimes each generation (common random numbers).
:func:`evolve_drives` runs it with fitness = energy eaten in a given world.

Yardsticks and nulls: :func:`oracle_fitness` (a forager that knows every item's kcal),
:func:`random_forager_fitness` (eats a uniformly random item; exact expectation) and
:func:`calorie_weights` (the least-squares fit of kcal on the features, in closed form: in
a world without candy, the best possible drive direction, because kcal and features are
jointly Gaussian there and the conditional mean of kcal is linear in the features).

Randomness comes from CPU ``torch.Generator`` objects (``mk.make_generator``) and results
are moved to ``device``, so a seed gives the same numbers on any device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch

from .core import check_device, check_in_range, check_positive_int, make_generator, progress

__all__ = [
    "FEATURES",
    "ForagingWorld",
    "Meals",
    "ForageResult",
    "GAResult",
    "ancestral_world",
    "shifted_world",
    "sample_meals",
    "drive_values",
    "forage",
    "oracle_fitness",
    "random_forager_fitness",
    "calorie_weights",
    "drive_calorie_correlation",
    "random_drives",
    "genetic_algorithm",
    "evolve_drives",
]

FEATURES = ("sweetness", "redness", "smell")


@dataclass(frozen=True)
class ForagingWorld:
    """The food of one world (see the module docstring for the generative model).

    Attributes:
        cue_correlation: correlation of each sensed feature with an item's kcal among
            natural food, one number in [-1, 1] per feature (feature 0 is sweetness).
        candy_fraction: probability in [0, 1) that an item is candy (zero kcal).
        candy_sweetness: mean sweetness of candy, in the features' units (natural food's
            sweetness has mean 0 and standard deviation 1).
        candy_sweetness_sd: standard deviation of candy's sweetness, >= 0.
        kcal_mean: mean energy of a natural item, kcal, > 0.
        kcal_sd: standard deviation of a natural item's energy, kcal, > 0.

    Raises:
        ValueError: naming the attribute, for a value out of range.
    """

    cue_correlation: tuple = (0.9, 0.5, 0.0)
    candy_fraction: float = 0.0
    candy_sweetness: float = 2.5
    candy_sweetness_sd: float = 0.5
    kcal_mean: float = 100.0
    kcal_sd: float = 40.0

    def __post_init__(self):
        rho = self.cue_correlation
        if isinstance(rho, (str, bytes)) or not hasattr(rho, "__len__") or len(rho) < 1:
            raise ValueError(f"cue_correlation must be a sequence of at least one number, got {rho!r}")
        rho = tuple(check_in_range("cue_correlation", r, -1.0, 1.0) for r in rho)
        object.__setattr__(self, "cue_correlation", rho)
        frac = check_in_range("candy_fraction", self.candy_fraction, 0.0, 1.0)
        if frac >= 1.0:
            raise ValueError(f"candy_fraction must be below 1 (some food must be natural), got {frac!r}")
        check_in_range("candy_sweetness", self.candy_sweetness, -100.0, 100.0)
        check_in_range("candy_sweetness_sd", self.candy_sweetness_sd, 0.0, 100.0)
        for name in ("kcal_mean", "kcal_sd"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")

    @property
    def n_features(self) -> int:
        """D, the number of sensed features."""
        return len(self.cue_correlation)


def ancestral_world(cue_correlation: Sequence[float] = (0.9, 0.5, 0.0), **kwargs) -> ForagingWorld:
    """The world the drive evolves in: natural food only (``candy_fraction = 0``).

    Args:
        cue_correlation: correlation of each feature with kcal, in [-1, 1]; the default
            makes sweetness a reliable cue (0.9), redness a weak one (0.5) and smell none.
        **kwargs: other :class:`ForagingWorld` attributes (not ``candy_fraction``).

    Raises:
        ValueError: for a bad attribute, or if ``candy_fraction`` is passed.
    """
    if "candy_fraction" in kwargs:
        raise ValueError("candy_fraction: the ancestral world has no candy; use shifted_world")
    return ForagingWorld(cue_correlation=tuple(cue_correlation), candy_fraction=0.0, **kwargs)


def shifted_world(world: ForagingWorld, candy_fraction: float = 0.3, **kwargs) -> ForagingWorld:
    """``world`` after the shift: the same natural food, plus candy (sweet, zero kcal).

    Args:
        world: the ancestral :class:`ForagingWorld`.
        candy_fraction: share of items that are candy, in (0, 1).
        **kwargs: other attributes to change, e.g. ``candy_sweetness``.

    Raises:
        ValueError: if ``world`` is not a ForagingWorld or a value is out of range.
    """
    if not isinstance(world, ForagingWorld):
        raise ValueError(f"world must be a ForagingWorld, got {type(world).__name__}")
    if check_in_range("candy_fraction", candy_fraction, 0.0, 1.0) <= 0.0:
        raise ValueError(f"candy_fraction must be above 0 for a shift, got {candy_fraction!r}")
    return replace(world, candy_fraction=float(candy_fraction), **kwargs)


@dataclass
class Meals:
    """Lifetimes of meals: ``features [*batch, meals, items, D]`` (feature units),
    ``kcal [*batch, meals, items]`` (kcal) and ``candy [*batch, meals, items]`` (bool)."""

    features: torch.Tensor
    kcal: torch.Tensor
    candy: torch.Tensor


def _check_world(world):
    if not isinstance(world, ForagingWorld):
        raise ValueError(f"world must be a ForagingWorld, got {type(world).__name__}")
    return world


def _check_batch_shape(batch_shape):
    if isinstance(batch_shape, int) and not isinstance(batch_shape, bool):
        batch_shape = (batch_shape,)
    try:
        shape = tuple(batch_shape)
    except TypeError:
        raise ValueError(f"batch_shape must be a tuple of positive integers, got {batch_shape!r}") from None
    for s in shape:
        check_positive_int("batch_shape", s)
    return tuple(int(s) for s in shape)


def _generator(seed, generator, device):
    if generator is not None:
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise ValueError("generator must be a CPU torch.Generator")
        return generator
    if seed is None:
        raise ValueError("seed must be given (a non-negative integer) when no generator is passed")
    return make_generator(seed, device)


def sample_meals(world: ForagingWorld, batch_shape, meals: int, items: int, *,
                 seed: int | None = None, generator: torch.Generator | None = None,
                 device=None) -> Meals:
    """Draw lifetimes of meals from ``world``.

    Args:
        world: a :class:`ForagingWorld`.
        batch_shape: leading shape, e.g. ``(runs,)`` or ``()``; positive integers.
        meals: meals per lifetime, >= 1.
        items: items offered at each meal, >= 1.
        seed: seeds a private generator (ignored when ``generator`` is given).
        generator: a CPU ``torch.Generator`` to draw from (advanced in place).
        device: where the returned tensors live.

    Returns:
        :class:`Meals` with ``features [*batch_shape, meals, items, D]`` (float32),
        ``kcal [*batch_shape, meals, items]`` (float32, kcal, >= 0) and
        ``candy [*batch_shape, meals, items]`` (bool).

    Raises:
        ValueError: naming the argument, for a bad world, shape, count, seed or device.
    """
    device = check_device("device", device)
    world = _check_world(world)
    shape = _check_batch_shape(batch_shape) + (check_positive_int("meals", meals),
                                               check_positive_int("items", items))
    gen = _generator(seed, generator, device)
    rho = torch.tensor(world.cue_correlation, dtype=torch.float32)
    D = rho.numel()
    z = torch.randn(shape, generator=gen)
    noise = torch.randn(shape + (D,), generator=gen)
    feats = rho * z.unsqueeze(-1) + torch.sqrt(1 - rho ** 2) * noise
    kcal = (world.kcal_mean + world.kcal_sd * z).clamp_min(0.0)
    candy = torch.rand(shape, generator=gen) < world.candy_fraction
    candy_feats = torch.randn(shape + (D,), generator=gen)   # drawn always, so the stream does not depend on the shift
    candy_feats[..., 0] = world.candy_sweetness + world.candy_sweetness_sd * candy_feats[..., 0]
    feats = torch.where(candy.unsqueeze(-1), candy_feats, feats)
    kcal = torch.where(candy, torch.zeros_like(kcal), kcal)
    return Meals(feats.to(device), kcal.to(device), candy.to(device))


def _check_weights(weights, name="weights"):
    if not isinstance(weights, torch.Tensor) or weights.dim() < 2 or not weights.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor [..., population, D], got "
                         f"{getattr(weights, 'shape', type(weights).__name__)}")
    if not torch.isfinite(weights).all():
        raise ValueError(f"{name} must be finite")
    return weights


def _check_meals(meals):
    if not isinstance(meals, Meals):
        raise ValueError(f"meals must be a Meals (from sample_meals), got {type(meals).__name__}")
    return meals


def drive_values(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """The innate reward ``w . f`` of every individual for every item.

    Args:
        weights: drives ``[*batch, population, D]`` (any scale; :func:`forage` uses them as given).
        features: items ``[*batch, meals, items, D]``; ``*batch`` must match ``weights``'.

    Returns:
        ``[*batch, population, meals, items]`` drive values (drive units).

    Raises:
        ValueError: naming the argument, for wrong shapes.
    """
    weights = _check_weights(weights)
    if not isinstance(features, torch.Tensor) or features.dim() != weights.dim() + 1:
        raise ValueError(f"features must be a tensor [*batch, meals, items, D] with one more dim than "
                         f"weights {tuple(weights.shape)}, got {getattr(features, 'shape', None)}")
    if features.shape[:-3] != weights.shape[:-2] or features.shape[-1] != weights.shape[-1]:
        raise ValueError(f"features {tuple(features.shape)} do not match weights {tuple(weights.shape)} "
                         "(leading dims and D must agree)")
    return torch.einsum("...pd,...mkd->...pmk", weights, features)


@dataclass
class ForageResult:
    """Outcome of one lifetime per individual: ``fitness [*batch, population]`` (kcal
    eaten), ``satisfaction [*batch, population]`` (drive summed over the items eaten, drive
    units) and ``candy_eaten [*batch, population]`` (share of meals that were candy)."""

    fitness: torch.Tensor
    satisfaction: torch.Tensor
    candy_eaten: torch.Tensor


def forage(weights: torch.Tensor, meals: Meals) -> ForageResult:
    """Live one lifetime per individual: at every meal eat the item the drive rates highest.

    All individuals of a batch entry face the same meals. Vectorized over batch,
    population and meals (no Python loop).

    Args:
        weights: drives ``[*batch, population, D]``.
        meals: :class:`Meals` with ``features [*batch, meals, items, D]``.

    Returns:
        :class:`ForageResult` with tensors ``[*batch, population]``.

    Raises:
        ValueError: naming the argument, for wrong types or shapes.
    """
    meals = _check_meals(meals)
    drive = drive_values(weights, meals.features)                    # [*b, P, M, K]
    choice = drive.argmax(-1, keepdim=True)                          # [*b, P, M, 1]
    P = weights.shape[-2]
    kcal = meals.kcal.unsqueeze(-3).expand(*meals.kcal.shape[:-2], P, *meals.kcal.shape[-2:])
    candy = meals.candy.unsqueeze(-3).expand_as(kcal)
    eaten = kcal.gather(-1, choice).squeeze(-1)                      # [*b, P, M]
    joy = drive.gather(-1, choice).squeeze(-1)
    ate_candy = candy.gather(-1, choice).squeeze(-1).float()
    return ForageResult(eaten.sum(-1), joy.sum(-1), ate_candy.mean(-1))


def oracle_fitness(meals: Meals) -> torch.Tensor:
    """The yardstick: energy eaten by a forager that knows every item's kcal and eats the
    richest, ``[*batch]`` kcal per lifetime.

    Raises:
        ValueError: if ``meals`` is not a :class:`Meals`.
    """
    return _check_meals(meals).kcal.amax(-1).sum(-1)


def random_forager_fitness(meals: Meals) -> torch.Tensor:
    """The null: expected energy of a forager that eats a uniformly random item at every
    meal (exact expectation over its choices), ``[*batch]`` kcal per lifetime.

    Raises:
        ValueError: if ``meals`` is not a :class:`Meals`.
    """
    return _check_meals(meals).kcal.mean(-1).sum(-1)


def calorie_weights(world: ForagingWorld) -> torch.Tensor:
    """The least-squares weights of kcal on the features (with an intercept), in closed form.

    Computed from the exact first and second moments of ``world``'s item mixture
    (natural food and candy), ignoring the clamp of kcal at 0 (a 2.5-sd event with the
    defaults). In a world without candy kcal and features are jointly Gaussian, so these
    weights give the conditional mean of kcal and their direction is the best possible
    drive; with candy they are only the best *linear* fit.

    Args:
        world: a :class:`ForagingWorld`.

    Returns:
        ``[D]`` float64 weights, kcal per feature unit.

    Raises:
        ValueError: if ``world`` is not a ForagingWorld, or the features' covariance is
            singular (a feature with |correlation| = 1 and no candy, say).
    """
    world = _check_world(world)
    rho = torch.tensor(world.cue_correlation, dtype=torch.float64)
    D, p = rho.numel(), world.candy_fraction
    nat_second = torch.outer(rho, rho) + torch.diag(1 - rho ** 2)   # E[f f'] natural (mean 0)
    candy_mean = torch.zeros(D, dtype=torch.float64)
    candy_mean[0] = world.candy_sweetness
    candy_cov = torch.eye(D, dtype=torch.float64)
    candy_cov[0, 0] = world.candy_sweetness_sd ** 2
    mean_f = p * candy_mean
    second = (1 - p) * nat_second + p * (candy_cov + torch.outer(candy_mean, candy_mean))
    cov_f = second - torch.outer(mean_f, mean_f)
    mean_k = (1 - p) * world.kcal_mean
    cross = (1 - p) * world.kcal_sd * rho                      # E[f kcal]; candy adds 0
    cov_fk = cross - mean_f * mean_k
    if torch.linalg.matrix_rank(cov_f) < D:
        raise ValueError("world: the features' covariance is singular; no unique calorie weights")
    return torch.linalg.solve(cov_f, cov_fk)


def drive_calorie_correlation(weights: torch.Tensor, meals: Meals) -> torch.Tensor:
    """How well each drive tracks energy: the Pearson correlation, over all items offered
    in ``meals``, between the drive's value of an item and the item's kcal.

    Args:
        weights: drives ``[*batch, population, D]``.
        meals: :class:`Meals` with ``features [*batch, meals, items, D]``.

    Returns:
        ``[*batch, population]`` correlations in [-1, 1] (NaN for a constant drive).

    Raises:
        ValueError: naming the argument, for wrong types or shapes.
    """
    meals = _check_meals(meals)
    drive = drive_values(weights, meals.features).flatten(-2)            # [*b, P, M*K]
    kcal = meals.kcal.flatten(-2).unsqueeze(-2)                           # [*b, 1, M*K]
    dc = drive - drive.mean(-1, keepdim=True)
    kc = kcal - kcal.mean(-1, keepdim=True)
    return (dc * kc).sum(-1) / (dc.norm(dim=-1) * kc.norm(dim=-1))


def random_drives(runs: int, population: int, dim: int, *, seed: int | None = None,
                  generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Drives drawn uniformly on the unit sphere, ``[runs, population, dim]``: the
    starting population, and the null "random drive".

    Raises:
        ValueError: naming the argument, for a bad count, seed or device.
    """
    device = check_device("device", device)
    shape = (check_positive_int("runs", runs), check_positive_int("population", population),
             check_positive_int("dim", dim))
    gen = _generator(seed, generator, device)
    w = torch.randn(shape, generator=gen)
    return (w / w.norm(dim=-1, keepdim=True)).to(device)


@dataclass
class GAResult:
    """What :func:`genetic_algorithm` returns.

    Attributes:
        weights: final populations ``[runs, population, D]``, unit vectors.
        history: every generation's populations ``[generations + 1, runs, population, D]``;
            ``history[g]`` is the population scored in generation ``g`` (``history[0]`` the
            initial one, ``history[-1]`` equals ``weights``).
        fitness: ``[generations, runs, population]``, the score of ``history[g]`` on the
            lifetimes drawn in generation ``g`` (the selection signal; noisy).
    """

    weights: torch.Tensor
    history: torch.Tensor
    fitness: torch.Tensor


def genetic_algorithm(fitness_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor], dim: int, *,
                      runs: int = 5, population: int = 128, generations: int = 100,
                      elite: int = 2, parent_fraction: float = 0.25, mutation_sd: float = 0.1,
                      init: torch.Tensor | None = None, seed: int = 0, device=None,
                      desc: str | None = None) -> GAResult:
    """Evolve ``runs`` independent populations of unit vectors at once (one tensor).

    Each generation: score every individual with ``fitness_fn``; per run, sort by fitness
    (stable, best first); keep the ``elite`` best unchanged; fill the rest with children
    of two parents drawn uniformly from the best ``parent_fraction`` of the population,
    by uniform crossover (each weight from either parent) plus Gaussian mutation of
    standard deviation ``mutation_sd`` on every weight, renormalized to unit length.
    Vectorized over runs and individuals; the only Python loop is over generations.

    Args:
        fitness_fn: ``fitness_fn(weights [runs, population, dim], generator) -> [runs, population]``
            (higher is better); it may draw from the CPU ``generator`` (e.g. new lifetimes).
        dim: D, the number of weights per individual, >= 1.
        runs: independent populations, >= 1.
        population: individuals per run, >= 2.
        generations: generations of selection, >= 1.
        elite: individuals copied unchanged, 0 <= elite < population.
        parent_fraction: share of the population allowed to breed, in (0, 1]
            (at least 2 parents).
        mutation_sd: mutation size, >= 0 (in weight units, before renormalizing).
        init: optional starting population ``[runs, population, dim]`` (renormalized);
            default :func:`random_drives`.
        seed: seeds the private generator (initial population, lifetimes, breeding).
        device: where the populations live.
        desc: label of the progress bar (``mk.progress``).

    Returns:
        :class:`GAResult`.

    Raises:
        ValueError: naming the argument, for any bad value, or if ``fitness_fn`` returns a
            tensor of the wrong shape.
    """
    device = check_device("device", device)
    if not callable(fitness_fn):
        raise ValueError("fitness_fn must be callable")
    dim = check_positive_int("dim", dim)
    runs = check_positive_int("runs", runs)
    population = check_positive_int("population", population, minimum=2)
    generations = check_positive_int("generations", generations)
    elite = check_positive_int("elite", elite, minimum=0)
    if elite >= population:
        raise ValueError(f"elite must be below population ({population}), got {elite}")
    parent_fraction = check_in_range("parent_fraction", parent_fraction, 0.0, 1.0)
    n_parents = int(round(parent_fraction * population))
    if n_parents < 2:
        raise ValueError(f"parent_fraction must leave at least 2 parents, got {parent_fraction} "
                         f"of {population}")
    mutation_sd = check_in_range("mutation_sd", mutation_sd, 0.0, 1e3)
    gen = make_generator(seed, device)
    if init is None:
        w = random_drives(runs, population, dim, generator=gen, device="cpu")
    else:
        if not isinstance(init, torch.Tensor) or tuple(init.shape) != (runs, population, dim):
            raise ValueError(f"init must be a tensor [runs, population, dim] = {(runs, population, dim)}, "
                             f"got {getattr(init, 'shape', type(init).__name__)}")
        if not torch.isfinite(init).all() or (init.norm(dim=-1) == 0).any():
            raise ValueError("init must be finite with no zero vector")
        w = init.detach().to("cpu", torch.float32)
        w = w / w.norm(dim=-1, keepdim=True)
    w = w.to(device)
    history = torch.empty((generations + 1, runs, population, dim), device=device)
    scores = torch.empty((generations, runs, population), device=device)
    n_children = population - elite
    for g in progress(range(generations), desc=desc or "evolution", leave=False):
        history[g] = w
        fit = fitness_fn(w, gen)
        if not isinstance(fit, torch.Tensor) or tuple(fit.shape) != (runs, population):
            raise ValueError(f"fitness_fn must return a tensor [runs, population] = {(runs, population)}, "
                             f"got {getattr(fit, 'shape', type(fit).__name__)}")
        scores[g] = fit
        order = torch.sort(fit.float(), dim=1, descending=True, stable=True).indices
        ranked = w.gather(1, order.unsqueeze(-1).expand(-1, -1, dim))          # [R, P, D]
        pick = torch.randint(n_parents, (runs, n_children, 2), generator=gen).to(device)
        mum = ranked.gather(1, pick[..., 0:1].expand(-1, -1, dim))
        dad = ranked.gather(1, pick[..., 1:2].expand(-1, -1, dim))
        mask = (torch.rand((runs, n_children, dim), generator=gen) < 0.5).to(device)
        child = torch.where(mask, mum, dad)
        child = child + mutation_sd * torch.randn((runs, n_children, dim), generator=gen).to(device)
        norm = child.norm(dim=-1, keepdim=True)
        child = torch.where(norm > 0, child / norm.clamp_min(1e-12), ranked[:, elite:elite + 1].expand_as(child))
        w = torch.cat([ranked[:, :elite], child], dim=1)
    history[generations] = w
    return GAResult(w, history, scores)


def evolve_drives(world: ForagingWorld, *, runs: int = 5, population: int = 128, generations: int = 100,
                  meals: int = 50, items: int = 6, elite: int = 2, parent_fraction: float = 0.25,
                  mutation_sd: float = 0.1, init: torch.Tensor | None = None, seed: int = 0,
                  device=None, desc: str | None = None) -> GAResult:
    """Evolve foragers' drives in ``world`` with fitness = energy eaten over one lifetime.

    Every generation each run draws one batch of ``meals`` meals of ``items`` items;
    all individuals of that run live it (common random numbers), and their kcal eaten is
    their fitness. See :func:`genetic_algorithm` for the operators and the other arguments.

    Args:
        world: the :class:`ForagingWorld` selection happens in.
        meals: meals per lifetime, >= 1.
        items: items offered per meal, >= 2.

    Returns:
        :class:`GAResult`; ``fitness`` in kcal per lifetime.

    Raises:
        ValueError: naming the argument, for any bad value.
    """
    device = check_device("device", device)
    world = _check_world(world)
    meals = check_positive_int("meals", meals)
    items = check_positive_int("items", items, minimum=2)
    runs = check_positive_int("runs", runs)

    def fitness(w, gen):
        lives = sample_meals(world, (runs,), meals, items, generator=gen, device=device)
        return forage(w, lives).fitness

    return genetic_algorithm(fitness, world.n_features, runs=runs, population=population,
                             generations=generations, elite=elite, parent_fraction=parent_fraction,
                             mutation_sd=mutation_sd, init=init, seed=seed, device=device, desc=desc)
