"""Checks for Workbook 1 (Selection versus control).

Each ``check_*`` runs the learner's function and the mesakit reference on the same seeded
inputs and prints a pass, a hint or "not implemented yet"; it returns a
:class:`~mesakit.checks.CheckResult` (truthy only on a pass).

The cases are built to separate the common wrong answers from the right one: ties that
a sort must break the stated way, items that fit exactly, mazes whose distances run far
beyond any small fixed number of steps, unreachable cells. Each known wrong variant has a
diagnosis, so the hint names the mistake (``tests/test_checks_ch01.py`` feeds every one).
"""
from __future__ import annotations

import torch

from .. import knapsack, mazes, thermostat
from ..core import make_generator
from .core import Case, CheckResult, compare_tensors, run_check, same_as
# Not a check (so not in __all__): the hidden tests write `checks.forbid_reference(...)`.
from .core import forbid_reference  # noqa: F401

__all__ = [
    "check_greedy_by_density",
    "check_knapsack_dp",
    "check_sides_with",
    "check_random_shooting_planner",
    "check_fit_behavioral_setpoint",
    "check_flood_fill_step",
    "check_bfs_distances",
    "check_accuracy_by_iterations",
]

_BOOL = compare_tensors(dtype_kind="bool")
_INT = compare_tensors(dtype_kind="int")


def _t(rows) -> torch.Tensor:
    return torch.tensor(rows)


# ---------------------------------------------------------------------------- knapsack

def _pack(order, weights, capacity, *, strict: bool = False, stop: bool = False, one_capacity: bool = False):
    """Walk the items in ``order`` and take each that fits: the greedy packing, with the
    mistakes a learner can make switched on (``<`` for ``<=``, stopping at the first item
    that does not fit, using the first instance's capacity for all)."""
    B, n = weights.shape
    w_sorted = weights.long().gather(1, order)
    left = capacity.long().clone()
    if one_capacity:
        left = left[:1].expand(B).clone()
    open_ = torch.ones(B, dtype=torch.bool)
    take_sorted = torch.zeros(B, n, dtype=torch.bool)
    for k in range(n):
        fits = (w_sorted[:, k] < left) if strict else (w_sorted[:, k] <= left)
        if stop:
            open_ = open_ & fits
            fits = fits & open_
        take_sorted[:, k] = fits
        left = left - torch.where(fits, w_sorted[:, k], torch.zeros_like(left))
    chosen = torch.zeros_like(take_sorted)
    chosen.scatter_(1, order, take_sorted)
    return chosen


def _density_order(values, weights, *, ties: str = "index", integer: bool = False, key: str = "density"):
    if key == "value":
        density = values.double()
    elif integer:
        density = torch.div(values, weights, rounding_mode="floor").double()
    else:
        density = values.double() / weights.double()
    if ties == "index":
        return torch.sort(density, dim=1, descending=True, stable=True).indices
    return torch.sort(density, dim=1, stable=True).indices.flip(1)    # ascending, then reversed


def _greedy_variant(**mistake):
    order_kw = {k: mistake.pop(k) for k in ("ties", "integer", "key") if k in mistake}

    def greedy(values, weights, capacity):
        return _pack(_density_order(values, weights, **order_kw), weights, capacity, **mistake)
    return greedy


_GREEDY_DIAGNOSES = [
    same_as(_greedy_variant(ties="reverse"),
            "items of equal density were taken in reverse index order (did you sort ascending and then flip?). "
            "Equal densities go in index order: torch.sort(density, descending=True, stable=True).", _BOOL),
    same_as(_greedy_variant(integer=True),
            "your densities look like integer division (values // weights), which makes unequal densities "
            "tie; divide as floats: values.double() / weights.double().", _BOOL),
    same_as(_greedy_variant(strict=True),
            "an item whose weight equals the capacity left was not taken: an item fits when "
            "weight <= capacity left (not <).", _BOOL),
    same_as(_greedy_variant(stop=True),
            "you stop at the first item that does not fit; greedy skips it and keeps going, since a "
            "lighter item further down the order may still fit.", _BOOL),
    same_as(_greedy_variant(one_capacity=True),
            "every instance was packed against the first instance's capacity; each instance has its own "
            "capacity (keep a running capacity per row: left = capacity.clone()).", _BOOL),
    same_as(_greedy_variant(key="value"),
            "you ranked items by value; the heuristic ranks them by value per unit weight (values / weights).", _BOOL),
]


def _tie_instances() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """4 instances of 40 items in two density classes (1 and 2, so many exact ties), with
    capacity for about half of them: the order among equal densities decides what fits.
    Forty equal keys are enough for torch's default (unstable) sort to shuffle them."""
    gen = torch.Generator().manual_seed(17)
    weights = torch.randint(1, 12, (4, 40), generator=gen)
    values = weights * torch.randint(1, 3, (4, 40), generator=gen)
    capacity = weights.sum(1) // 3
    return values, weights, capacity


def _common_knapsack_cases() -> list[Case]:
    return [
        Case(knapsack.random_instances(1, 3, seed=0)[:3], description="1 instance of 3 items"),
        Case((_t([[60, 100, 120]]), _t([[10, 20, 30]]), _t([50])),
             description="the textbook instance: values (60, 100, 120), weights (10, 20, 30), capacity 50"),
        Case((_t([[5, 4]]), _t([[9, 9]]), _t([3])), description="nothing fits"),
        Case((_t([[3, 4]]), _t([[1, 2]]), _t([0])), description="capacity 0"),
        Case((_t([[10, 1]]), _t([[5, 1]]), _t([5])), description="the densest item fills the knapsack exactly",
             hint="an item fits when its weight is at most the capacity left (<=)"),
        Case((_t([[10, 9, 1]]), _t([[6, 5, 1]]), _t([7])),
             description="the second-densest item does not fit, a later light one does",
             hint="that greedy skips an item that does not fit and keeps going"),
        Case((_t([[9, 5]]), _t([[4, 2]]), _t([4])), description="densities 2.25 and 2.5",
             hint="densities as fractions, not rounded down"),
        Case((_t([[2, 4, 3]]), _t([[2, 4, 3]]), _t([4])), description="three items of equal density 1",
             hint="the tie rule: equal densities go in index order"),
        Case((_t([[1, 2, 3, 4], [1, 2, 3, 4]]), _t([[1, 2, 3, 4], [1, 2, 3, 4]]), _t([3, 10])),
             description="two instances with different capacities (3 and 10)",
             hint="that each instance is packed against its own capacity"),
        Case(_tie_instances(), description="4 instances of 40 items with many equal densities",
             hint="the tie rule with many ties: equal densities in index order, which only a stable sort "
                  "guarantees (torch.sort(..., stable=True); the default sort may shuffle equal keys)"),
    ]


def _random_knapsack_cases() -> list[Case]:
    return [Case(knapsack.random_instances(b, n, seed=seed), description=f"{b} random instances of {n} items")
            for seed, (b, n) in enumerate([(8, 5), (32, 10), (64, 12)], start=1)]


def check_greedy_by_density(fn) -> CheckResult:
    """``fn(values, weights, capacity) -> chosen`` (bool ``[B, n]``), the value-density
    heuristic: items by value/weight, highest first (equal densities in index order),
    each taken if it still fits."""
    return run_check(
        "greedy_by_density", fn, knapsack.greedy_by_density, _common_knapsack_cases() + _random_knapsack_cases(),
        compare=_BOOL, diagnoses=_GREEDY_DIAGNOSES,
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
    problem = _BOOL(chosen, ref_chosen)
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


def _dp_best(values, weights, capacity, *, unbounded: bool = False, exact_fill: bool = False,
             batch_capacity: bool = False, off_by_one: bool = False) -> torch.Tensor:
    """The optimal value as a learner's DP with one mistake would compute it."""
    B, n = values.shape
    c_max = int(capacity.max())
    neg = -10 ** 12
    best = torch.full((B, c_max + 1), neg if exact_fill else 0, dtype=torch.long)
    best[:, 0] = 0
    for i in range(n):
        w, v = weights[:, i].long(), values[:, i].long()
        if unbounded:      # capacities in increasing order, updated in place: items get reused
            for c in range(c_max + 1):
                prev = best[torch.arange(B), (c - w).clamp_min(0)] + v
                best[:, c] = torch.where(w <= c, torch.maximum(best[:, c], prev), best[:, c])
        else:
            cs = torch.arange(c_max + 1)
            before = cs[None, :] - w[:, None]
            cand = best.gather(1, before.clamp_min(0)) + v[:, None]
            best = torch.where(before >= 0, torch.maximum(best, cand), best)
    if batch_capacity:
        cap = torch.full_like(capacity, c_max)
    elif off_by_one:
        cap = (capacity - 1).clamp_min(0)
    else:
        cap = capacity
    return best[torch.arange(B), cap.long()].clamp_min(0)


def _dp_diagnosis(hint: str, **mistake):
    def diagnose(got, args, kwargs):
        if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], torch.Tensor)):
            return None
        wrong = _dp_best(*args, **mistake)
        if torch.equal(wrong, knapsack.solve_dp(*args)[1].long()):
            return None        # the mistake makes no difference on this case
        try:
            same = torch.equal(got[1].detach().cpu().long(), wrong)
        except RuntimeError:
            return None
        return hint if same else None
    return diagnose


def _greedy_value_diagnosis(got, args, kwargs):
    if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], torch.Tensor)):
        return None
    values, weights, capacity = args
    greedy = knapsack.total_value(values, knapsack.greedy_by_density(values, weights, capacity))
    if torch.equal(greedy.long(), knapsack.solve_dp(values, weights, capacity)[1].long()):
        return None
    if got[1].shape == greedy.shape and torch.equal(got[1].detach().cpu().long(), greedy.long()):
        return ("your best equals the greedy heuristic's value, which is not always optimal: the DP must "
                "consider, for every capacity, both taking and skipping each item.")
    return None


_DP_DIAGNOSES = [
    _dp_diagnosis("an item was used more than once (0/1 knapsack: each item at most once). Updating best in "
                  "place in increasing capacity order reuses the item just added; compute the candidate for "
                  "item i from the table as it was before item i (all capacities at once, or capacities in "
                  "decreasing order).", unbounded=True),
    _dp_diagnosis("your table only counts sets that fill the capacity exactly (best started at -inf except "
                  "capacity 0); start best at 0 for every capacity, since a knapsack may keep room to spare.",
                  exact_fill=True),
    _dp_diagnosis("every instance was read at the largest capacity of the batch: read best[b, capacity[b]], "
                  "each instance at its own capacity.", batch_capacity=True),
    _dp_diagnosis("you read the table at capacity - 1: best has C + 1 columns (capacities 0 .. C), so the "
                  "answer is best[b, capacity[b]].", off_by_one=True),
    _greedy_value_diagnosis,
]


def check_knapsack_dp(fn) -> CheckResult:
    """``fn(values, weights, capacity) -> (chosen, best)``: an optimal set (bool
    ``[B, n]``) and its total value ``[B]``, by dynamic programming. Any optimal set passes."""
    cases = _common_knapsack_cases() + [
        Case((_t([[10]]), _t([[3]]), _t([9])), description="one item of weight 3, capacity 9",
             hint="that each item is taken at most once"),
        Case((_t([[5]]), _t([[3]]), _t([4])), description="one item of weight 3, capacity 4",
             hint="sets that leave room to spare"),
        Case((_t([[6, 5, 5]] * 2), _t([[4, 3, 3]] * 2), _t([6, 3])),
             description="the same items under capacities 6 and 3",
             hint="that each instance is read at its own capacity"),
    ] + _random_knapsack_cases()
    return run_check(
        "knapsack_dp", fn, _dp_reference, cases, compare=_compare_dp, diagnoses=_DP_DIAGNOSES,
        hint="best[c] = the best value with capacity c using the items so far; for each item, "
             "best[c] = max(best[c], best[c - w] + v) for c >= w (all instances at once: best is [B, C+1]). "
             "Remember, per item, which capacities took it, then backtrack from the full capacity.")


def _sides_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(11)
    random8 = torch.rand(3, 6, 8, generator=gen) > 0.5
    square = torch.rand(3, 6, 6, generator=gen) > 0.5
    return [
        Case(tuple(random8[i] for i in range(3)), description="6 random instances of 8 items"),
        Case((_t([[True, False, True]]),) * 3, description="no disputed items"),
        Case((_t([[True, True, False, False]]), _t([[True, False, True, False]]), _t([[False, True, True, True]])),
             description="a candidate that agrees with a on an item both a and b take",
             hint="that only the disputed items (a != b) count"),
        Case(tuple(square[i] for i in range(3)), description="6 random instances of 6 items",
             hint="that the counts run over the item axis (dim 1), one count per instance"),
    ]


def _compare_pair(labels):
    def compare(got, expected):
        if not (isinstance(got, tuple) and len(got) == 2):
            return f"expected a pair ({labels[0]}, {labels[1]}), got {type(got).__name__}"
        for label, g, e in zip(labels, got, expected):
            problem = _INT(g, e)
            if problem:
                return f"{label}: {problem}"
        return None
    return compare


def check_sides_with(fn) -> CheckResult:
    """``fn(candidate, a, b) -> (agree_a, agree_b)``: over the items exactly one of a and
    b takes, how many the candidate decides like a, and like b (int ``[B]`` each)."""
    compare = _compare_pair(("agree_a", "agree_b"))

    def swapped(c, a, b):
        agree_a, agree_b = knapsack.sides_with(c, a, b)
        return agree_b, agree_a

    def undisputed(c, a, b):
        return (c == a).sum(1), (c == b).sum(1)

    def wrong_axis(c, a, b):
        d = a != b
        return (d & (c == a)).sum(0), (d & (c == b)).sum(0)

    diagnoses = [
        same_as(undisputed, "you counted every item where the candidate equals a (or b), including items a and b "
                            "agree on; count only the disputed items, disputed = a != b.", compare),
        same_as(swapped, "agree_a and agree_b are swapped: return (agree with a, agree with b), in that order.",
                compare),
        same_as(wrong_axis, "you summed over the instances (dim 0); sum over the items (dim 1), one count per "
                            "instance.", compare),
    ]
    return run_check("sides_with", fn, knapsack.sides_with, _sides_cases(), compare=compare, diagnoses=diagnoses,
                     hint="disputed = a != b; count, per row, the disputed items where candidate == a, "
                          "and those where candidate == b (sum over the item axis).")


# -------------------------------------------------------------------------- thermostat

def _planner_variant(*, cost: str = "squared", final_only: bool = False, best: str = "argmin",
                     return_step: int = 0, draw: str = "rooms-first", goal_axis: str = "rooms",
                     carry: bool = True):
    """A random-shooting planner with one mistake switched on (the defaults are right)."""
    def planner(temp, setpoint, *, horizon, n_samples, params, seed):
        n_rooms = temp.shape[0]
        gen = make_generator(seed)
        if draw == "rooms-first":
            plans = params.max_power * torch.rand(n_rooms, n_samples, horizon, generator=gen, dtype=temp.dtype)
        else:
            plans = (params.max_power * torch.rand(n_samples, n_rooms, horizon, generator=gen,
                                                   dtype=temp.dtype)).transpose(0, 1)
        goal = torch.as_tensor(setpoint, dtype=temp.dtype).expand(n_rooms)
        goal = goal[:, None] if goal_axis == "rooms" else goal[None, :]
        start = temp[:, None].expand(n_rooms, n_samples)
        t_now, total = start, torch.zeros(n_rooms, n_samples, dtype=temp.dtype)
        for h in range(horizon):
            t_now = thermostat.expected_next_temp(t_now if carry else start, plans[:, :, h], params)
            gap = t_now - goal
            step_cost = gap ** 2 if cost == "squared" else gap.abs()
            total = step_cost if final_only else total + step_cost
        pick = total.argmin(dim=1) if best == "argmin" else total.argmax(dim=1)
        return plans[torch.arange(n_rooms), pick, return_step]
    return planner


def check_random_shooting_planner(fn) -> CheckResult:
    """``fn(temp, setpoint, *, horizon, n_samples, params, seed) -> power [n_rooms]``."""
    params = thermostat.ThermostatParams()
    cases = []
    for i, (n_rooms, setpoint, horizon, n_samples) in enumerate([(1, 20.0, 3, 1), (4, 20.0, 5, 16), (16, 26.0, 8, 64)]):
        temp = thermostat.initial_temps(n_rooms, seed=100 + i)
        cases.append(Case((temp, setpoint), dict(horizon=horizon, n_samples=n_samples, params=params, seed=i),
                          description=f"{n_rooms} rooms, setpoint {setpoint}, horizon {horizon}, {n_samples} samples"))
    temp = thermostat.initial_temps(32, seed=500)
    cases.append(Case((temp, 22.0), dict(horizon=10, n_samples=128, params=params, seed=0),
                      description="32 rooms, setpoint 22.0, horizon 10, 128 samples",
                      hint="the objective itself: the sum over the horizon of squared gaps"))
    # Rooms and samples equally many: a setpoint on the wrong axis broadcasts without error.
    temp = thermostat.initial_temps(8, seed=8)
    cases.append(Case((temp, torch.linspace(14, 27, 8)), dict(horizon=5, n_samples=8, params=params, seed=4),
                      description="8 rooms with their own setpoints and 8 samples",
                      hint="that room r's plans are scored against room r's setpoint"))
    temp = thermostat.initial_temps(6, seed=7)
    cases.append(Case((temp, torch.linspace(15, 28, 6)), dict(horizon=6, n_samples=32, params=params, seed=3),
                      description="one setpoint per room"))
    reference = _planner_variant()
    variants = [
        (dict(final_only=True), "you scored plans by the last predicted temperature only; the objective sums "
                                "(T_h - setpoint)**2 over every step of the horizon."),
        (dict(cost="absolute"), "you scored plans by |T_h - setpoint|; the objective squares the gap."),
        (dict(best="argmax"), "you picked the plan with the highest cost; the planner selects the lowest (argmin)."),
        (dict(return_step=-1), "you returned the last power of the best plan; return its first power (the "
                               "planner re-plans at every step)."),
        (dict(draw="samples-first"), "your plans were drawn with another shape; draw them exactly as "
                                     "torch.rand(n_rooms, n_samples, horizon, generator=mk.make_generator(seed)) "
                                     "so your random numbers match the reference's."),
        (dict(goal_axis="samples"), "each room's plans must be scored against that room's setpoint: make the "
                                    "goal a column, shape [n_rooms, 1], against costs of shape [n_rooms, n_samples]."),
        (dict(carry=False), "every step of your rollout starts from the room's current temperature; roll the "
                            "plan forward, each step from the previous predicted temperature."),
    ]
    compare = compare_tensors(atol=1e-5)
    return run_check(
        "random_shooting_planner", fn, reference, cases, compare=compare,
        diagnoses=[same_as(_planner_variant(**kw), text, compare) for kw, text in variants],
        hint="draw plans = params.max_power * torch.rand(n_rooms, n_samples, horizon, generator=mk.make_generator(seed)); "
             "roll each plan forward with thermostat.expected_next_temp, score it by the sum over the horizon of "
             "(T - setpoint)**2, and return the first power of the lowest-cost plan of each room.")


def _fit_variant(*, gap: str = "squared", best: str = "first", index: bool = False):
    def fit(temps, powers, candidates, params):
        ideal = thermostat.best_one_step_power(temps[:, None, :], candidates[None, :, None], params)
        diff = ideal - powers[:, None, :]
        score = (diff ** 2 if gap == "squared" else diff.abs()).mean(dim=-1)
        if best == "worst":
            pick = score.argmax(dim=1)
        elif best == "last":
            pick = score.shape[1] - 1 - score.flip(1).argmin(dim=1)
        else:
            pick = score.argmin(dim=1)
        return pick if index else candidates[pick]
    return fit


def check_fit_behavioral_setpoint(fn) -> CheckResult:
    """``fn(temps, powers, candidates, params) -> setpoints`` (one per trajectory)."""
    params = thermostat.ThermostatParams()
    cases = []
    gen = torch.Generator().manual_seed(5)
    candidates = torch.arange(10.0, 30.5, 0.5, dtype=torch.float64)
    for i, (n_rooms, n_steps) in enumerate([(1, 5), (8, 20), (32, 40)]):
        temps = 12 + 16 * torch.rand(n_rooms, n_steps, generator=gen, dtype=torch.float64)
        true_goal = 15 + 10 * torch.rand(n_rooms, 1, generator=gen, dtype=torch.float64)
        powers = (thermostat.best_one_step_power(temps, true_goal, params)
                  + 0.05 * torch.randn(n_rooms, n_steps, generator=gen, dtype=torch.float64))
        cases.append(Case((temps, powers, candidates, params), description=f"{n_rooms} noisy trajectories of {n_steps} steps"))
    hot = 40 + 5 * torch.rand(4, 10, generator=gen, dtype=torch.float64)
    cases.append(Case((hot, torch.zeros(4, 10, dtype=torch.float64), candidates, params),
                      description="4 rooms far too hot, heater off: many candidates explain it equally well",
                      hint="the tie rule: among equally good candidates, the first"))
    temps = 12 + 16 * torch.rand(16, 30, generator=gen, dtype=torch.float64)
    goal = torch.tensor([16.0, 24.0] * 8, dtype=torch.float64)[:, None]
    powers = thermostat.best_one_step_power(temps, goal, params)
    spiky = powers + torch.where(torch.rand(16, 30, generator=gen) < 0.15, 0.6, 0.0).double()
    cases.append(Case((temps, spiky, candidates, params), description="16 trajectories with occasional large "
                                                                      "action errors"))
    compare = compare_tensors(atol=1e-9)
    diagnoses = [
        same_as(_fit_variant(index=True), "you returned the index of the best candidate; return the candidate "
                                          "itself, candidates[index].", _INT),
        same_as(_fit_variant(best="worst"), "you picked the candidate with the largest gap; the best candidate "
                                            "has the smallest (argmin).", compare),
        same_as(_fit_variant(best="last"), "among equally good candidates you picked the last; the rule is the "
                                           "first (argmin does it).", compare),
        same_as(_fit_variant(gap="absolute"), "you scored candidates by the mean absolute gap; the score is the "
                                              "mean squared gap.", compare),
    ]
    return run_check(
        "fit_behavioral_setpoint", fn, thermostat.fit_behavioral_setpoint, cases, compare=compare, diagnoses=diagnoses,
        hint="for every candidate s, compute the ideal actions thermostat.best_one_step_power(temps, s, params), "
             "score s by the mean squared gap to the observed powers over the time axis, and return the "
             "lowest-scoring candidate per trajectory (broadcast: ideal has shape [rooms, candidates, steps]).")


# ------------------------------------------------------------------------------- mazes

def _random_grids(b: int, h: int, w: int, density: float, gen: torch.Generator):
    free = torch.rand(b, h, w, generator=gen) >= density
    idx = torch.randint(0, h * w, (b,), generator=gen)
    source = torch.zeros(b, h * w, dtype=torch.bool)
    source[torch.arange(b), idx] = True
    source = source.view(b, h, w)
    return free | source, source


def serpentine(h: int, w: int) -> torch.Tensor:
    """A ``[h, w]`` corridor that winds row by row (``h`` odd): free even rows, joined by
    one free cell at alternate ends. From the top-left corner its far end is about
    ``h * w / 2`` steps away."""
    free = torch.zeros(h, w, dtype=torch.bool)
    free[0::2] = True
    for i, r in enumerate(range(1, h, 2)):
        free[r, w - 1 if i % 2 == 0 else 0] = True
    return free


def spiral(n: int) -> torch.Tensor:
    """An ``[n, n]`` corridor that spirals inward from the top-left corner, one wall
    between its turns."""
    free = torch.zeros(n, n, dtype=torch.bool)
    r = c = 0
    free[0, 0] = True
    moves = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    d, blocked = 0, 0
    while blocked < 2:
        dr, dc = moves[d]
        nr, nc = r + dr, c + dc
        ok = 0 <= nr < n and 0 <= nc < n and not free[nr, nc]
        if ok:
            for qr, qc in ((nr + 1, nc), (nr - 1, nc), (nr, nc + 1), (nr, nc - 1)):
                if (qr, qc) != (r, c) and 0 <= qr < n and 0 <= qc < n and free[qr, qc]:
                    ok = False
        if ok:
            r, c, blocked = nr, nc, 0
            free[r, c] = True
        else:
            d, blocked = (d + 1) % 4, blocked + 1
    return free


def _at(h: int, w: int, r: int, c: int) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    m[r, c] = True
    return m


def _long_grids() -> list[Case]:
    """Mazes far deeper than any small fixed number of steps, one with an unreachable
    region, and a batch mixing a shallow and a deep maze."""
    cases = []
    s = serpentine(9, 15)
    cases.append(Case((s[None], _at(9, 15, 0, 0)[None]),
                      description="a 9×15 winding corridor, distances up to "
                                  f"{int(mazes.bfs_distances(s[None], _at(9, 15, 0, 0)[None]).max())}",
                      hint="distances far beyond a fixed number of steps"))
    sp = spiral(15)
    cases.append(Case((sp[None], _at(15, 15, 0, 0)[None]),
                      description="a 15×15 spiral, distances up to "
                                  f"{int(mazes.bfs_distances(sp[None], _at(15, 15, 0, 0)[None]).max())}",
                      hint="distances far beyond a fixed number of steps"))
    split = torch.ones(9, 15, dtype=torch.bool)
    split[:, 7] = False
    split[4, 3] = False
    cases.append(Case((split[None], _at(9, 15, 4, 1)[None]),
                      description="a 9×15 room cut in two by a wall: the right half is unreachable",
                      hint="that unreachable cells and walls are -1"))
    open_ = torch.ones(9, 15, dtype=torch.bool)
    batch = torch.stack([open_, s, split, s.flip(1)])
    sources = torch.stack([_at(9, 15, 4, 7), _at(9, 15, 0, 0), _at(9, 15, 0, 0), _at(9, 15, 0, 14)])
    cases.append(Case((batch, sources), description="4 grids of 9×15 that need from 11 to 78 steps",
                      hint="that the loop runs until no grid changes, not until the first one stops"))
    return cases


def _step_cases() -> list[Case]:
    """For the one-step check: random grids with a partly grown reached set, and edges."""
    gen = torch.Generator().manual_seed(21)
    cases = []
    for b, h, w, density in [(1, 3, 3, 0.0), (4, 5, 7, 0.3), (16, 9, 9, 0.35), (8, 12, 5, 0.25)]:
        free, reached = _random_grids(b, h, w, density, gen)
        for _ in range(int(torch.randint(0, 4, (1,), generator=gen))):
            reached = mazes.flood_fill_step(reached, free)
        cases.append(Case((reached, free), description=f"{b} grids of {h}×{w}"))
    open_ = torch.ones(2, 4, 6, dtype=torch.bool)
    edge = torch.zeros(2, 4, 6, dtype=torch.bool)
    edge[0, :, 0] = True          # the left column
    edge[1, 0, :] = True          # the top row
    cases.append(Case((edge, open_), description="open 4×6 grids reached along the left column and the top row",
                      hint="that nothing wraps around the grid's edges"))
    centre = _at(5, 5, 2, 2)[None]
    cases.append(Case((centre, torch.ones(1, 5, 5, dtype=torch.bool)), description="one reached cell in an open 5×5 grid",
                      hint="that only the 4 edge-neighbours count, not the diagonal ones"))
    cases.append(Case((centre, centre.clone()), description="a reached cell walled in on every side",
                      hint="that a cell reached before stays reached"))
    walls = torch.ones(1, 5, 5, dtype=torch.bool)
    walls[0, 1:4, 3] = False
    cases.append(Case((centre, walls), description="a reached cell next to a wall",
                      hint="that walls never become reached"))
    return cases


def check_flood_fill_step(fn) -> CheckResult:
    """``fn(reached, free) -> reached'``: one step of the flood fill (bool ``[B, H, W]``)."""
    def rolled(reached, free):
        r = reached
        return free & (r | r.roll(1, 1) | r.roll(-1, 1) | r.roll(1, 2) | r.roll(-1, 2))

    def neighbours_only(reached, free):
        p = torch.nn.functional.pad(reached, (1, 1, 1, 1))
        return free & (p[:, :-2, 1:-1] | p[:, 2:, 1:-1] | p[:, 1:-1, :-2] | p[:, 1:-1, 2:])

    def no_free_mask(reached, free):
        return mazes.flood_fill_step(reached, torch.ones_like(free)) | reached

    diagnoses = [
        same_as(lambda r, f: mazes.flood_fill_step(r, f, diagonal=True),
                "diagonal neighbours were counted; only the four edge-neighbours (up, down, left, right) are.", _BOOL),
        same_as(rolled, "your shift wraps around the edges (torch.roll brings the last column next to the first); "
                        "pad with False instead (torch.nn.functional.pad) so nothing comes in from outside the grid.",
                _BOOL),
        same_as(neighbours_only, "a cell reached before was dropped because no neighbour of it was reached; "
                                 "keep it: free & (reached | any neighbour reached).", _BOOL),
        same_as(no_free_mask, "walls became reached; a cell is reached only if it is free (AND with free).", _BOOL),
    ]
    return run_check(
        "flood_fill_step", fn, mazes.flood_fill_step, _step_cases(), compare=_BOOL, diagnoses=diagnoses,
        hint="a cell is reached after the step if it is free and it or one of its 4 neighbours was reached; "
             "pad `reached` by one cell of False on every side (torch.nn.functional.pad) and OR the four shifted "
             "slices; diagonal neighbours do not count, and nothing wraps around the edges.")


def _bfs_capped(got, args, kwargs) -> str | None:
    """A BFS that stops too early: right up to some distance k, -1 beyond it."""
    if not isinstance(got, torch.Tensor) or got.is_floating_point():
        return None
    ref = mazes.bfs_distances(*args)
    got = got.detach().cpu().long()
    if got.shape != ref.shape:
        return None
    k = int(got.max())
    if bool((ref > k).any()) and torch.equal(got, torch.where(ref <= k, ref, torch.full_like(ref, -1))):
        return (f"your distances stop at {k}: every cell farther than {k} steps is marked -1. Keep iterating "
                f"until no grid changes any more (all grids, not just one), not a fixed number of times: "
                f"this case needs {int(ref.max())} steps.")
    return None


def check_bfs_distances(fn) -> CheckResult:
    """``fn(free, source) -> distances`` (int ``[B, H, W]``, -1 where unreachable)."""
    gen = torch.Generator().manual_seed(21)
    cases = [Case(_random_grids(b, h, w, density, gen), description=f"{b} grids of {h}×{w}")
             for b, h, w, density in [(1, 3, 3, 0.0), (4, 5, 7, 0.3), (16, 9, 9, 0.35), (8, 12, 5, 0.25)]]
    cases += _long_grids()

    def plus_one(free, source):
        d = mazes.bfs_distances(free, source)
        return torch.where(d >= 0, d + 1, d)

    def zero_unreached(free, source):
        return mazes.bfs_distances(free, source).clamp_min(0)

    diagnoses = [
        _bfs_capped,
        same_as(plus_one, "every distance is one too large: the source has distance 0, its neighbours 1.", _INT),
        same_as(zero_unreached, "walls and unreachable cells got 0; they must get -1 (0 is the source's "
                                "distance).", _INT),
        same_as(lambda f, s: mazes.bfs_distances(f, s, diagonal=True),
                "your distances allow diagonal moves; a move goes to one of the four edge-neighbours.", _INT),
    ]
    return run_check(
        "bfs_distances", fn, mazes.bfs_distances, cases, compare=_INT, diagnoses=diagnoses,
        hint="start from reached = source with distance 0 (everything else -1); at iteration k, the cells "
             "that flood_fill_step newly reaches get distance k; stop when nothing changes in any grid.")


# ------------------------------------------------------- thinking longer: the network

def flood_fill_net(*, leaky_walls: bool = False, sharpness: float = 10.0) -> mazes.RecurrentMazeNet:
    """A :class:`~mesakit.mazes.RecurrentMazeNet` of width 1 whose weights are set by hand
    so that it *is* a flood fill: after ``t`` iterations its logit is positive exactly on
    the free pixels within ``t - 1`` moves of the source (diagonal moves included, since
    its max-pool sees the 3x3 neighbourhood). No training; a test input for checks.

    With ``leaky_walls`` the walls next to a reached pixel get a positive logit too (but
    do not pass it on), so a prediction that forgets to mask the walls is wrong.

    The hidden state is about +1 (reached) or -1; ``say`` passes on the reached pixels
    (for leaky walls, only the free ones), the max-pool spreads them one pixel, and the
    update sets ``h = tanh(sharpness * (heard + free + 2 source - 1.5))`` (for leaky
    walls ``tanh(sharpness * (heard + 2 source - 0.5))``), with the gate ``z`` fully open.
    """
    net = mazes.RecurrentMazeNet(1, seed=0)
    k = float(sharpness)
    with torch.no_grad():
        say, update = net.block.say, net.block.update        # inputs: [h, free, source] / [heard, free, source]
        say.weight.zero_(), say.bias.zero_(), update.weight.zero_(), update.bias.zero_()
        say.weight[0, 0, 0, 0] = 1.0
        update.bias[0] = 30.0                                  # z = sigmoid(30): overwrite h
        if leaky_walls:
            say.weight[0, 1, 0, 0], say.bias[0] = 1.0, -1.0    # relu(h + free - 1): only free pixels speak
            update.weight[1, :, 0, 0] = torch.tensor([k, 0.0, 2 * k])
            update.bias[1] = -0.5 * k
        else:
            update.weight[1, :, 0, 0] = torch.tensor([k, k, 2 * k])
            update.bias[1] = -1.5 * k
        net.head.weight.fill_(1.0)
        net.head.bias.zero_()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _accuracy_variant(*, offset: int = 0, per_pixel: bool = False, mask_walls: bool = True):
    def accuracy(net, free, source, max_iterations):
        x = mazes.maze_inputs(free, source)
        target = mazes.reachable(free, source)
        h = net.initial_state(x)
        out = []
        with torch.no_grad():
            if offset:
                pred = (net.decode(h) > 0) & free
                out.append(((pred == target).flatten(1).all(1)).float().mean())
            for _ in range(max_iterations - offset):
                h = net.step(h, x)
                pred = net.decode(h) > 0
                if mask_walls:
                    pred = pred & free
                right = (pred == target).flatten(1)
                out.append(right.float().mean() if per_pixel else right.all(1).float().mean())
        return torch.stack(out)
    return accuracy


def check_accuracy_by_iterations(fn) -> CheckResult:
    """``fn(net, free, source, max_iterations) -> accuracy`` (float ``[max_iterations]``):
    entry ``t - 1`` is the share of mazes a recurrent net solves exactly (every pixel
    right) after ``t`` iterations."""
    cases = []
    for i, (n, size, iters, leaky) in enumerate([(1, 5, 4, False), (40, 7, 12, False), (30, 9, 16, True),
                                                 (12, 15, 30, True)]):
        free, source = mazes.random_mazes(n, size, seed=300 + i)
        kind = "walls lit up beside reached pixels" if leaky else "a clean flood fill"
        cases.append(Case((flood_fill_net(leaky_walls=leaky), free, source, iters),
                          description=f"{n} mazes of {size}×{size}, {iters} iterations, a hand-set net ({kind})"))

    def reference(net, free, source, max_iterations):
        return mazes.trace_thinking(net, free, source, max_iterations)[0]

    compare = compare_tensors(atol=1e-6)
    diagnoses = [
        same_as(_accuracy_variant(offset=1), "your entries are one iteration late: entry 0 must be the accuracy "
                                             "after 1 iteration (step first, then decode), and the last entry "
                                             "after max_iterations.", compare),
        same_as(_accuracy_variant(per_pixel=True), "you measured the share of pixels that are right; a maze "
                                                   "counts as solved only when every pixel is right "
                                                   "(.flatten(1).all(1), then the mean over mazes).", compare),
        same_as(_accuracy_variant(mask_walls=False), "walls were predicted reachable where the net's logit is "
                                                     "positive; walls are never reachable: predict "
                                                     "(logit > 0) & free.", compare),
    ]
    return run_check(
        "accuracy_by_iterations", fn, reference, cases, compare=compare, diagnoses=diagnoses,
        hint="x = mazes.maze_inputs(free, source), target = mazes.reachable(free, source); h = net.initial_state(x); "
             "for t = 1 .. max_iterations: h = net.step(h, x), pred = (net.decode(h) > 0) & free, and record the "
             "share of mazes with (pred == target) at every pixel. One step per iteration, under torch.no_grad().")
