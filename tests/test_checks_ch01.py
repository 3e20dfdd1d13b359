"""Workbook 1's checks: the references pass, a stub gets "not implemented yet", and every
known wrong answer is rejected with the hint that names its mistake (never a traceback).

The wrong variants are written here as a learner would write them, independently of the
diagnoses inside the checks."""
import pytest
import torch
import torch.nn.functional as F

from mesakit import knapsack, mazes, thermostat
from mesakit.checks import ch01
from check_testing import rejected, stub


def test_references_pass():
    assert ch01.check_greedy_by_density(knapsack.greedy_by_density)
    assert ch01.check_knapsack_dp(knapsack.solve_dp)
    assert ch01.check_sides_with(knapsack.sides_with)
    assert ch01.check_random_shooting_planner(
        lambda temp, setpoint, **kw: thermostat.random_shooting_planner(temp, setpoint, **kw))
    assert ch01.check_fit_behavioral_setpoint(thermostat.fit_behavioral_setpoint)
    assert ch01.check_flood_fill_step(mazes.flood_fill_step)
    assert ch01.check_bfs_distances(mazes.bfs_distances)
    assert ch01.check_accuracy_by_iterations(lambda net, free, source, n: mazes.trace_thinking(net, free, source, n)[0])


@pytest.mark.parametrize("check", [getattr(ch01, name) for name in ch01.__all__], ids=ch01.__all__)
def test_stubs_are_not_implemented_yet(check, capsys):
    result = check(stub)
    assert not result and result.status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


def test_finished_function_with_unfinished_helper_names_the_helper(capsys):
    def flood_fill_step(reached, free):
        raise NotImplementedError()

    def bfs_distances(free, source):           # finished, but calls the unfinished step
        reached = source.clone()
        dist = torch.where(reached, 0, -1)
        k = 0
        while True:
            new = flood_fill_step(reached, free)
            if torch.equal(new, reached):
                return dist
            k += 1
            dist[new & ~reached] = k
            reached = new

    result = ch01.check_bfs_distances(bfs_distances)
    out = capsys.readouterr().out
    assert result.status == "not implemented"
    assert "flood_fill_step, which it calls, is not implemented yet" in out
    assert "bfs_distances: not implemented yet" not in out


# ------------------------------------------------------------------ a sample of learners

def greedy_loop(values, weights, capacity, *, sort, fits=lambda w, left: w <= left, stop=False, caps=None):
    """A learner's greedy: ``sort(density) -> order``; loops over instances (allowed to be slow)."""
    chosen = torch.zeros_like(values, dtype=torch.bool)
    density = values / weights
    for b in range(values.shape[0]):
        left = int(capacity[b] if caps is None else caps(capacity, b))
        for i in sort(density[b]).tolist():
            w = int(weights[b, i])
            if fits(w, left):
                chosen[b, i] = True
                left -= w
            elif stop:
                break
    return chosen


GREEDY_WRONG = {
    "unstable sort": (lambda v, w, c: greedy_loop(v, w, c, sort=lambda d: torch.argsort(d, descending=True)),
                      ["tie rule with many ties", "stable"]),
    "ascending then flipped": (lambda v, w, c: greedy_loop(v, w, c, sort=lambda d: torch.argsort(d, stable=True).flip(0)),
                               ["reverse index order"]),
    "strict fit": (lambda v, w, c: greedy_loop(v, w, c, sort=lambda d: torch.sort(d, descending=True, stable=True).indices,
                                               fits=lambda w_, left: w_ < left), ["weight <= capacity left"]),
    "stops at first misfit": (lambda v, w, c: greedy_loop(v, w, c, sort=lambda d: torch.sort(d, descending=True, stable=True).indices,
                                                          stop=True), ["stop at the first item that does not fit"]),
    "integer density": (lambda v, w, c: _int_density_greedy(v, w, c), ["integer division"]),
    "first capacity for all": (lambda v, w, c: greedy_loop(v, w, c, sort=lambda d: torch.sort(d, descending=True, stable=True).indices,
                                                           caps=lambda cap, b: cap[0]), ["first instance's capacity"]),
    "by value": (lambda v, w, c: knapsack._pack_in_order(torch.sort(v, dim=1, descending=True, stable=True).indices, w, c),
                 ["ranked items by value"]),
}


def _int_density_greedy(values, weights, capacity):
    chosen = torch.zeros_like(values, dtype=torch.bool)
    for b in range(values.shape[0]):
        left = int(capacity[b])
        density = values[b] // weights[b]
        for i in torch.sort(density, descending=True, stable=True).indices.tolist():
            if int(weights[b, i]) <= left:
                chosen[b, i] = True
                left -= int(weights[b, i])
    return chosen


@pytest.mark.parametrize("name", list(GREEDY_WRONG))
def test_greedy_wrong_answers(name, capsys):
    fn, needles = GREEDY_WRONG[name]
    rejected(ch01.check_greedy_by_density(fn), capsys, "wrong answer", *needles)


def dp_loop(values, weights, capacity, *, increasing=False, start=0, read=lambda best, cap, b: best[cap]):
    """A learner's DP, one instance at a time, over a 1-D table updated in place."""
    B, n = values.shape
    out_best = torch.zeros(B, dtype=torch.long)
    chosen = knapsack.solve_dp(values, weights, capacity)[0]    # the mistakes here are in best
    for b in range(B):
        C = int(capacity.max())
        best = [0] + [start] * C
        for i in range(n):
            w, v = int(weights[b, i]), int(values[b, i])
            cs = range(w, C + 1) if increasing else range(C, w - 1, -1)
            for c in cs:
                best[c] = max(best[c], best[c - w] + v)
        out_best[b] = max(0, read(best, int(capacity[b]), b))
    return chosen, out_best


DP_WRONG = {
    "unbounded": (lambda v, w, c: dp_loop(v, w, c, increasing=True), ["used more than once"]),
    "exact fill": (lambda v, w, c: dp_loop(v, w, c, start=-10 ** 9), ["fill the capacity exactly"]),
    "batch capacity": (lambda v, w, c: dp_loop(v, w, c, read=lambda best, cap, b: best[-1]), ["largest capacity"]),
    "capacity - 1": (lambda v, w, c: dp_loop(v, w, c, read=lambda best, cap, b: best[max(cap - 1, 0)]), ["capacity - 1"]),
    "greedy": (lambda v, w, c: (knapsack.greedy_by_density(v, w, c),
                                knapsack.total_value(v, knapsack.greedy_by_density(v, w, c))), ["greedy heuristic's value"]),
}


@pytest.mark.parametrize("name", list(DP_WRONG))
def test_dp_wrong_answers(name, capsys):
    fn, needles = DP_WRONG[name]
    rejected(ch01.check_knapsack_dp(fn), capsys, "best (the optimal total value)", *needles)


def test_dp_any_optimal_set_passes_and_broken_sets_fail(capsys):
    def dp_returning_other_optimum(values, weights, capacity):
        # The same optimum found scanning items in reverse: ties may pick another set.
        chosen, best = knapsack.solve_dp(values.flip(1), weights.flip(1), capacity)
        return chosen.flip(1), best
    assert ch01.check_knapsack_dp(dp_returning_other_optimum)

    def overfull(values, weights, capacity):
        chosen, best = knapsack.solve_dp(values, weights, capacity)
        return torch.ones_like(chosen), best
    rejected(ch01.check_knapsack_dp(overfull), capsys, "breaks the capacity")

    def only_value(values, weights, capacity):
        return knapsack.solve_dp(values, weights, capacity)[1]
    rejected(ch01.check_knapsack_dp(only_value), capsys, "expected a pair (chosen, best)")


SIDES_WRONG = {
    "counts undisputed items": (lambda c, a, b: ((c == a).sum(1), (c == b).sum(1)), ["including items a and b agree on"]),
    "swapped": (lambda c, a, b: tuple(reversed(knapsack.sides_with(c, a, b))), ["swapped"]),
    "sums over instances": (lambda c, a, b: (((a != b) & (c == a)).sum(0), ((a != b) & (c == b)).sum(0)),
                            ["summed over the instances"]),
    "float counts": (lambda c, a, b: tuple(x.float() for x in knapsack.sides_with(c, a, b)), ["expected an integer tensor"]),
}


@pytest.mark.parametrize("name", list(SIDES_WRONG))
def test_sides_with_wrong_answers(name, capsys):
    fn, needles = SIDES_WRONG[name]
    rejected(ch01.check_sides_with(fn), capsys, *needles)


def planner(temp, setpoint, *, horizon, n_samples, params, seed, score="sq", final=False, pick=torch.argmin,
            first=0, draw_shape="rooms", goal_row=False, carry=True):
    """A learner's planner with switches for the usual slips."""
    import mesakit as mk
    n = temp.shape[0]
    gen = mk.make_generator(seed)
    if draw_shape == "rooms":
        plans = params.max_power * torch.rand(n, n_samples, horizon, generator=gen)
    else:
        plans = params.max_power * torch.rand(n_samples, n, horizon, generator=gen).permute(1, 0, 2)
    goal = torch.as_tensor(setpoint, dtype=temp.dtype).expand(n)
    goal = torch.as_tensor(setpoint, dtype=temp.dtype) if goal_row else goal.view(n, 1)
    T = temp.view(n, 1).repeat(1, n_samples)
    cost = 0
    for h in range(horizon):
        T = thermostat.expected_next_temp(T if carry else temp.view(n, 1), plans[..., h], params)
        gap = (T - goal) ** 2 if score == "sq" else (T - goal).abs()
        cost = gap if final else cost + gap
    return plans[torch.arange(n), pick(cost, dim=1), first]


PLANNER_WRONG = {
    "final state only": (dict(final=True), ["last predicted temperature only"]),
    "absolute error": (dict(score="abs"), ["squares the gap"]),
    "argmax": (dict(pick=torch.argmax), ["highest cost"]),
    "last action": (dict(first=-1), ["last power of the best plan"]),
    "other draw shape": (dict(draw_shape="samples"), ["drawn with another shape"]),
    "setpoints on the sample axis": (dict(goal_row=True), ["that room's setpoint"]),
    "no rollout": (dict(carry=False), ["roll the plan forward"]),
}


@pytest.mark.parametrize("name", list(PLANNER_WRONG))
def test_planner_wrong_answers(name, capsys):
    kw, needles = PLANNER_WRONG[name]
    rejected(ch01.check_random_shooting_planner(lambda t, s, **k: planner(t, s, **k, **kw)), capsys, *needles)


def test_planner_wrong_shape(capsys):
    def unbatched(temp, setpoint, **kw):
        return thermostat.random_shooting_planner(temp, setpoint, **kw)[:1]
    rejected(ch01.check_random_shooting_planner(unbatched), capsys, "expected shape")


def fit(temps, powers, candidates, params, *, loss=lambda d: d ** 2, choose=lambda s: s.argmin(1), value=True):
    ideal = torch.stack([thermostat.best_one_step_power(temps, float(s), params) for s in candidates], dim=1)
    score = loss(ideal - powers[:, None, :]).mean(-1)
    i = choose(score)
    return candidates[i] if value else i


FIT_WRONG = {
    "index": (dict(value=False), ["index of the best candidate"]),
    "argmax": (dict(choose=lambda s: s.argmax(1)), ["largest gap"]),
    "last on ties": (dict(choose=lambda s: s.shape[1] - 1 - s.flip(1).argmin(1)), ["you picked the last"]),
    "absolute gap": (dict(loss=torch.abs), ["mean absolute gap"]),
}


@pytest.mark.parametrize("name", list(FIT_WRONG))
def test_behavioral_fit_wrong_answers(name, capsys):
    kw, needles = FIT_WRONG[name]
    rejected(ch01.check_fit_behavioral_setpoint(lambda *a: fit(*a, **kw)), capsys, *needles)


def test_behavioral_fit_exception_becomes_hint(capsys):
    def crashes(temps, powers, candidates, params):
        return candidates[torch.argmin(temps @ candidates)]  # shape error
    rejected(ch01.check_fit_behavioral_setpoint(crashes), capsys, "your function raised RuntimeError")


STEP_WRONG = {
    "diagonal": (lambda r, f: f & (F.max_pool2d(r[:, None].float(), 3, 1, 1)[:, 0] > 0), ["diagonal neighbours"]),
    "wraps": (lambda r, f: f & (r | r.roll(1, 1) | r.roll(-1, 1) | r.roll(1, 2) | r.roll(-1, 2)), ["wraps around"]),
    "drops reached": (lambda r, f: f & (F.conv2d(r[:, None].float(), torch.tensor([[[[0., 1, 0], [1, 0, 1], [0, 1, 0]]]]),
                                                 padding=1)[:, 0] > 0), ["was dropped"]),
    "no free mask": (lambda r, f: r | (F.conv2d(r[:, None].float(), torch.tensor([[[[0., 1, 0], [1, 1, 1], [0, 1, 0]]]]),
                                                padding=1)[:, 0] > 0), ["walls became reached"]),
}


@pytest.mark.parametrize("name", list(STEP_WRONG))
def test_flood_fill_step_wrong_answers(name, capsys):
    fn, needles = STEP_WRONG[name]
    rejected(ch01.check_flood_fill_step(fn), capsys, *needles)


def bfs(free, source, *, iterations=None, start=0, unreached=-1, step=mazes.flood_fill_step, until=torch.Tensor.all):
    """A learner's BFS: a fixed number of ``iterations``, or until every grid (``until``)
    stops changing."""
    reached = source & free
    dist = torch.where(reached, start, unreached).long()
    k = 0
    while iterations is None or k < iterations:
        new = step(reached, free)
        if bool(until((new == reached).flatten(1).all(1))):
            break
        k += 1
        dist[new & ~reached] = k + start
        reached = new
    return dist


BFS_WRONG = {
    "19 iterations": (dict(iterations=19), ["stop at 19", "needs 78 steps"]),
    "H + W iterations": (dict(iterations=24), ["stop at 24"]),
    "stops when one grid stops": (dict(until=torch.Tensor.any), ["all grids, not just one"]),
    "starts at 1": (dict(start=1), ["one too large"]),
    "unreachable as 0": (dict(unreached=0), ["must get -1"]),
    "diagonal moves": (dict(step=lambda r, f: mazes.flood_fill_step(r, f, diagonal=True)), ["diagonal moves"]),
}


@pytest.mark.parametrize("name", list(BFS_WRONG))
def test_bfs_wrong_answers(name, capsys):
    kw, needles = BFS_WRONG[name]
    rejected(ch01.check_bfs_distances(lambda f, s: bfs(f, s, **kw)), capsys, *needles)


def test_bfs_test_grids_are_deep_and_have_unreachable_cells():
    cases = ch01._long_grids()
    depths = [int(mazes.bfs_distances(*c.args).max()) for c in cases]
    assert max(depths) > 100 and sorted(depths)[1] > 19
    free, source = cases[2].args
    assert bool(((mazes.bfs_distances(free, source) < 0) & free).any()), "free cells that cannot be reached"


def test_flood_fill_net_is_a_flood_fill():
    free, source = mazes.random_mazes(30, 11, seed=4)
    d8 = mazes.bfs_distances(free, source, diagonal=True)
    for leaky in (False, True):
        net = ch01.flood_fill_net(leaky_walls=leaky)
        for t in (1, 2, 5, 9):
            assert torch.equal(mazes.predict(net, free, source, t), (d8 >= 0) & (d8 <= t - 1))
    with torch.no_grad():
        logits, _ = ch01.flood_fill_net(leaky_walls=True)(mazes.maze_inputs(free, source), 6)
    assert bool(((logits > 0) & ~free).any()), "the leaky net lights up walls (so masking matters)"


def accuracy(net, free, source, max_iterations, *, late=False, per_pixel=False, mask=True):
    x = mazes.maze_inputs(free, source)
    target = mazes.reachable(free, source)
    out = torch.zeros(max_iterations)
    for t in range(1, max_iterations + 1):
        with torch.no_grad():
            logits, _ = net(x, t - 1 if late else t)        # a fresh run per t: slow but fine
        pred = (logits > 0) & free if mask else logits > 0
        right = pred == target
        out[t - 1] = right.float().mean() if per_pixel else right.flatten(1).all(1).float().mean()
    return out


ACCURACY_WRONG = {
    "one iteration late": (dict(late=True), ["one iteration late"]),
    "per pixel": (dict(per_pixel=True), ["share of pixels"]),
    "walls not masked": (dict(mask=False), ["walls are never reachable"]),
}


def test_accuracy_fresh_runs_pass():
    assert ch01.check_accuracy_by_iterations(accuracy)


@pytest.mark.parametrize("name", list(ACCURACY_WRONG))
def test_accuracy_wrong_answers(name, capsys):
    kw, needles = ACCURACY_WRONG[name]
    rejected(ch01.check_accuracy_by_iterations(lambda *a: accuracy(*a, **kw)), capsys, *needles)
