"""Workbook 1's checks: the reference passes, and each kind of wrong answer gets a hint
(never a traceback), a stub gets "not implemented yet"."""
import pytest
import torch

from mesakit import knapsack, mazes, thermostat
from mesakit.checks import ch01


def stub(*args, **kwargs):
    raise NotImplementedError()


def test_references_pass():
    assert ch01.check_greedy_by_density(knapsack.greedy_by_density)
    assert ch01.check_knapsack_dp(knapsack.solve_dp)
    assert ch01.check_sides_with(knapsack.sides_with)
    assert ch01.check_random_shooting_planner(
        lambda temp, setpoint, **kw: thermostat.random_shooting_planner(temp, setpoint, **kw))
    assert ch01.check_fit_behavioral_setpoint(thermostat.fit_behavioral_setpoint)
    assert ch01.check_flood_fill_step(mazes.flood_fill_step)
    assert ch01.check_bfs_distances(mazes.bfs_distances)


@pytest.mark.parametrize("check", [getattr(ch01, name) for name in ch01.__all__], ids=ch01.__all__)
def test_stubs_are_not_implemented_yet(check, capsys):
    result = check(stub)
    assert not result and result.status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


def test_greedy_wrong_order_gets_a_hint(capsys):
    def by_value(values, weights, capacity):  # ranks by value, not value per weight
        order = torch.sort(values, dim=1, descending=True, stable=True).indices
        return knapsack._pack_in_order(order, weights, capacity)
    result = ch01.check_greedy_by_density(by_value)
    out = capsys.readouterr().out
    assert not result and "wrong answer" in out and "Hint:" in out


def test_dp_any_optimal_set_passes_and_wrong_values_fail(capsys):
    def dp_returning_other_optimum(values, weights, capacity):
        # The same optimum found scanning items in reverse: ties may pick another set.
        chosen, best = knapsack.solve_dp(values.flip(1), weights.flip(1), capacity)
        return chosen.flip(1), best
    assert ch01.check_knapsack_dp(dp_returning_other_optimum)

    def greedy_as_dp(values, weights, capacity):
        chosen = knapsack.greedy_by_density(values, weights, capacity)
        return chosen, knapsack.total_value(values, chosen)
    result = ch01.check_knapsack_dp(greedy_as_dp)
    assert not result and "best (the optimal total value)" in capsys.readouterr().out

    def overfull(values, weights, capacity):
        chosen, best = knapsack.solve_dp(values, weights, capacity)
        return torch.ones_like(chosen), best
    assert not ch01.check_knapsack_dp(overfull)
    assert "breaks the capacity" in capsys.readouterr().out

    def only_value(values, weights, capacity):
        return knapsack.solve_dp(values, weights, capacity)[1]
    assert not ch01.check_knapsack_dp(only_value)
    assert "expected a pair (chosen, best)" in capsys.readouterr().out


def test_planner_wrong_objective_and_shape(capsys):
    def last_action(temp, setpoint, **kw):  # returns the whole plan's last power: wrong
        return thermostat.random_shooting_planner(temp, setpoint + 5, **kw)
    assert not ch01.check_random_shooting_planner(last_action)
    assert "wrong answer" in capsys.readouterr().out

    def unbatched(temp, setpoint, **kw):
        return thermostat.random_shooting_planner(temp, setpoint, **kw)[:1]
    assert not ch01.check_random_shooting_planner(unbatched)
    assert "expected shape" in capsys.readouterr().out


def test_behavioral_fit_exception_becomes_hint(capsys):
    def crashes(temps, powers, candidates, params):
        return candidates[torch.argmin(temps @ candidates)]  # shape error
    assert not ch01.check_fit_behavioral_setpoint(crashes)
    out = capsys.readouterr().out
    assert "your function raised RuntimeError" in out and "Hint:" in out
