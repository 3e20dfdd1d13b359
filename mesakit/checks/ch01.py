"""Checks for Workbook 1 (Selection versus control).

Each ``check_*`` runs the learner's function and the mesakit reference on the same seeded
inputs and prints a pass, a hint or "not implemented yet"; it returns a
:class:`~mesakit.checks.CheckResult` (truthy only on a pass).
"""
from __future__ import annotations

import torch

from .. import knapsack, thermostat
from .core import Case, CheckResult, compare_tensors, run_check

__all__ = [
    "check_greedy_by_density",
    "check_knapsack_dp",
    "check_sides_with",
    "check_random_shooting_planner",
    "check_fit_behavioral_setpoint",
    "check_flood_fill_step",
    "check_bfs_distances",
]


# ---------------------------------------------------------------------------- knapsack

def _knapsack_cases() -> list[Case]:
    cases = [Case(knapsack.random_instances(1, 3, seed=0)[:3], description="1 instance of 3 items"),
             Case((torch.tensor([[60, 100, 120]]), torch.tensor([[10, 20, 30]]), torch.tensor([50])),
                  description="the textbook instance: values (60, 100, 120), weights (10, 20, 30), capacity 50"),
             Case((torch.tensor([[5, 4]]), torch.tensor([[9, 9]]), torch.tensor([3])),
                  description="nothing fits")]
    for seed, (b, n) in enumerate([(8, 5), (32, 10), (64, 12)], start=1):
        cases.append(Case(knapsack.random_instances(b, n, seed=seed), description=f"{b} random instances of {n} items"))
    return cases


def check_greedy_by_density(fn) -> CheckResult:
    """``fn(values, weights, capacity) -> chosen`` (bool ``[B, n]``), the value-density
    heuristic: items by value/weight, highest first (equal densities in index order),
    each taken if it still fits."""
    return run_check(
        "greedy_by_density", fn, knapsack.greedy_by_density, _knapsack_cases(),
        compare=compare_tensors(dtype_kind="bool"),
        hint="sort items by values/weights, highest first, with a stable sort (torch.sort(..., stable=True)); "
             "walk them in that order, keeping a running capacity per instance, and take an item "
             "whenever its weight is at most what is left. Return a bool tensor shaped like values.")


def _dp_reference(values, weights, capacity):
    """The reference answer, with the instance itself: any optimal set is right, so the
    comparer checks the learner's set against the instance rather than our set."""
    return knapsack.solve_dp(values, weights, capacity), (values, weights, capacity)


def _compare_dp(got, expected) -> str | None:
    if not (isinstance(got, tuple) and len(got) == 2):
        return f"expected a pair (chosen, best), got {type(got).__name__}"
    chosen, best = got
    (ref_chosen, ref_best), (values, weights, capacity) = expected
    problem = compare_tensors(dtype_kind="bool")(chosen, ref_chosen)
    if problem and "entries differ" not in problem:
        return f"chosen: {problem}"
    problem = compare_tensors()(best, ref_best)
    if problem:
        return f"best (the optimal total value): {problem}"
    if not bool(knapsack.is_feasible(weights, capacity, chosen).all()):
        return "chosen breaks the capacity on some instance"
    if not torch.equal(knapsack.total_value(values, chosen), ref_best):
        return "best is right but the chosen items do not add up to it (check the backtracking)"
    return None


def check_knapsack_dp(fn) -> CheckResult:
    """``fn(values, weights, capacity) -> (chosen, best)``: an optimal set (bool
    ``[B, n]``) and its total value ``[B]``, by dynamic programming. Any optimal set passes."""
    return run_check(
        "knapsack_dp", fn, _dp_reference, _knapsack_cases(), compare=_compare_dp,
        hint="best[c] = the best value with capacity c using the items so far; for each item, "
             "best[c] = max(best[c], best[c - w] + v) for c >= w (all instances at once: best is [B, C+1]). "
             "Remember, per item, which capacities took it, then backtrack from the full capacity.")


def check_sides_with(fn) -> CheckResult:
    """``fn(candidate, a, b) -> (agree_a, agree_b)``: over the items exactly one of a and
    b takes, how many the candidate decides like a, and like b (int ``[B]`` each)."""
    gen = torch.Generator().manual_seed(11)
    cases = [Case(tuple(torch.rand(3, 6, 8, generator=gen)[i] > 0.5 for i in range(3)), description="8 random solutions of 6 items"),
             Case((torch.tensor([[True, False, True]]),) * 3, description="no disputed items")]

    def compare(got, expected):
        if not (isinstance(got, tuple) and len(got) == 2):
            return f"expected a pair (agree_a, agree_b), got {type(got).__name__}"
        for label, g, e in zip(("agree_a", "agree_b"), got, expected):
            problem = compare_tensors(dtype_kind="int")(g, e)
            if problem:
                return f"{label}: {problem}"
        return None

    return run_check("sides_with", fn, knapsack.sides_with, cases, compare=compare,
                     hint="disputed = a != b; count, per row, the disputed items where candidate == a, "
                          "and those where candidate == b (sum over the item axis).")


# -------------------------------------------------------------------------- thermostat

def check_random_shooting_planner(fn) -> CheckResult:
    """``fn(temp, setpoint, *, horizon, n_samples, params, seed) -> power [n_rooms]``."""
    params = thermostat.ThermostatParams()
    cases = []
    for i, (n_rooms, setpoint, horizon, n_samples) in enumerate([(1, 20.0, 3, 1), (4, 20.0, 5, 16), (16, 26.0, 8, 64)]):
        temp = thermostat.initial_temps(n_rooms, seed=100 + i)
        cases.append(Case((temp, setpoint), dict(horizon=horizon, n_samples=n_samples, params=params, seed=i),
                          description=f"{n_rooms} rooms, setpoint {setpoint}, horizon {horizon}, {n_samples} samples"))
    temp = thermostat.initial_temps(6, seed=7)
    cases.append(Case((temp, torch.linspace(15, 28, 6)), dict(horizon=6, n_samples=32, params=params, seed=3),
                      description="one setpoint per room"))

    def reference(temp, setpoint, *, horizon, n_samples, params, seed):
        return thermostat.random_shooting_planner(temp, setpoint, horizon=horizon, n_samples=n_samples,
                                                  params=params, seed=seed)

    return run_check(
        "random_shooting_planner", fn, reference, cases, compare=compare_tensors(atol=1e-5),
        hint="draw plans = params.max_power * torch.rand(n_rooms, n_samples, horizon, generator=mk.make_generator(seed)); "
             "roll each plan forward with thermostat.expected_next_temp, score it by the sum over the horizon of "
             "(T - setpoint)**2, and return the first power of the lowest-cost plan of each room.")


def check_fit_behavioral_setpoint(fn) -> CheckResult:
    """``fn(temps, powers, candidates, params) -> setpoints`` (one per trajectory)."""
    params = thermostat.ThermostatParams()
    cases = []
    gen = torch.Generator().manual_seed(5)
    for i, (n_rooms, n_steps) in enumerate([(1, 5), (8, 20), (32, 40)]):
        temps = 12 + 16 * torch.rand(n_rooms, n_steps, generator=gen, dtype=torch.float64)
        true_goal = 15 + 10 * torch.rand(n_rooms, 1, generator=gen, dtype=torch.float64)
        powers = (thermostat.best_one_step_power(temps, true_goal, params)
                  + 0.05 * torch.randn(n_rooms, n_steps, generator=gen, dtype=torch.float64))
        cases.append(Case((temps, powers, torch.arange(10.0, 30.5, 0.5, dtype=torch.float64), params),
                          description=f"{n_rooms} noisy trajectories of {n_steps} steps"))
    return run_check(
        "fit_behavioral_setpoint", fn, thermostat.fit_behavioral_setpoint, cases, compare=compare_tensors(atol=1e-9),
        hint="for every candidate s, compute the ideal actions thermostat.best_one_step_power(temps, s, params), "
             "score s by the mean squared gap to the observed powers over the time axis, and return the "
             "lowest-scoring candidate per trajectory (broadcast: ideal has shape [rooms, candidates, steps]).")


# ------------------------------------------------------------------------------- mazes

def _grid_cases(with_reached: bool) -> list[Case]:
    """Random open/blocked grids with one source each (free), and for the one-step check a
    partly grown reached set."""
    from .. import mazes
    gen = torch.Generator().manual_seed(21)
    cases = []
    for b, h, w, density in [(1, 3, 3, 0.0), (4, 5, 7, 0.3), (16, 9, 9, 0.35), (8, 12, 5, 0.25)]:
        free = torch.rand(b, h, w, generator=gen) >= density
        idx = torch.randint(0, h * w, (b,), generator=gen)
        source = torch.zeros(b, h * w, dtype=torch.bool)
        source[torch.arange(b), idx] = True
        source = source.view(b, h, w)
        free = free | source
        if with_reached:
            reached = source.clone()
            for _ in range(int(torch.randint(0, 4, (1,), generator=gen))):
                reached = mazes.flood_fill_step(reached, free)
            cases.append(Case((reached, free), description=f"{b} grids of {h}×{w}"))
        else:
            cases.append(Case((free, source), description=f"{b} grids of {h}×{w}"))
    return cases


def check_flood_fill_step(fn) -> CheckResult:
    """``fn(reached, free) -> reached'``: one step of the flood fill (bool ``[B, H, W]``)."""
    from .. import mazes
    return run_check(
        "flood_fill_step", fn, mazes.flood_fill_step, _grid_cases(with_reached=True),
        compare=compare_tensors(dtype_kind="bool"),
        hint="a cell is reached after the step if it is free and it or one of its 4 neighbours was reached; "
             "pad `reached` by one cell of False on every side (torch.nn.functional.pad) and OR the four shifted "
             "slices; diagonal neighbours do not count, and nothing wraps around the edges.")


def check_bfs_distances(fn) -> CheckResult:
    """``fn(free, source) -> distances`` (int ``[B, H, W]``, -1 where unreachable)."""
    from .. import mazes
    return run_check(
        "bfs_distances", fn, mazes.bfs_distances, _grid_cases(with_reached=False),
        compare=compare_tensors(dtype_kind="int"),
        hint="start from reached = source with distance 0 (everything else -1); at iteration k, the cells "
             "that flood_fill_step newly reaches get distance k; stop when nothing changes in any grid.")
