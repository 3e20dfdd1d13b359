"""mesakit.alignment: the three-outcome classifier, episodes played by an oracle, path
efficiency against BFS, and the choice model recovering known utilities."""
import math

import pytest
import torch

from mesakit.alignment import (OUTCOMES, OraclePolicy, RandomPolicy, choice_accuracy, classify_outcomes, fit_choice_model,
                               object_features, outcome_rates, path_efficiency, run_episodes)
from mesakit.gridworld import COLOURS, KINDS, GridWorld, LevelSpec

RED, BLUE, GREEN = (COLOURS.index(c) for c in ("red", "blue", "green"))
DOOR, KEY, BALL = (KINDS.index(k) for k in ("door", "key", "ball"))


def test_three_outcomes_one_per_episode():
    colour = torch.tensor([BLUE, RED, GREEN, -1, RED, RED])
    kind = torch.tensor([DOOR, KEY, BALL, -1, DOOR, BALL])
    out = classify_outcomes(colour, kind, intended="door", proxy="red")
    # blue door: intended; red key: proxy; green ball: neither; timeout: neither;
    # a red door is both and counts as intended
    assert out.tolist() == [0, 1, 2, 2, 0, 1]
    assert OUTCOMES[0] == "intended"


def test_proxy_first_overrides_a_later_door_and_needs_a_proxy():
    colour = torch.tensor([BLUE, BLUE, -1])
    kind = torch.tensor([DOOR, DOOR, -1])
    first = torch.tensor([True, False, True])
    assert classify_outcomes(colour, kind, proxy=None, proxy_first=first).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="proxy"):
        classify_outcomes(colour, kind, proxy=None)
    with pytest.raises(ValueError, match="reached_colour"):
        classify_outcomes(torch.tensor([9, 0, 0]), kind)
    with pytest.raises(ValueError, match="intended"):
        classify_outcomes(colour, kind, intended="window")


def test_outcome_rates_per_agent():
    rates = outcome_rates(torch.tensor([0, 0, 1, 2, 2, 2]), agents=2)
    torch.testing.assert_close(rates, torch.tensor([[2 / 3, 1 / 3, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="agents"):
        outcome_rates(torch.tensor([0, 1, 2]), agents=2)


Oracle = OraclePolicy


def test_a_random_policy_rarely_takes_a_shortest_path():
    env = GridWorld(300, height=7, width=7, num_objects=3, seed=0)
    ep = run_episodes(RandomPolicy(env.num_actions), env, seed=2)
    eff = path_efficiency(ep)
    assert float(eff.nanmean()) < 0.6
    with pytest.raises(ValueError, match="num_actions"):
        RandomPolicy(1)


def test_an_oracle_reaches_the_door_by_a_shortest_path():
    env = GridWorld(200, height=7, width=7, num_objects=3, layout="rooms",
                    levels=LevelSpec("blue", ("red", "green")), seed=0)
    ep = run_episodes(Oracle(env), env, seed=3, greedy=True)
    out = classify_outcomes(ep["reached_colour"], ep["reached_kind"], proxy="red")
    reachable = ep["object_distance"][:, 0] >= 0
    assert bool((out[reachable] == 0).all())
    eff = path_efficiency(ep)[reachable]
    torch.testing.assert_close(eff, torch.ones_like(eff))


def test_watch_cell_records_the_first_visit():
    env = GridWorld(50, height=6, width=6, num_objects=2,
                    levels=LevelSpec("any", "any", goal_in_corner=1.0, corner="top_right"), seed=0)
    ep = run_episodes(Oracle(env), env, seed=1, greedy=True, watch_cell=(1, 4))
    # the door sits on the watched corner: the visit is the episode's last step
    assert torch.equal(ep["watch_step"], ep["length"])
    with pytest.raises(ValueError, match="watch_cell"):
        run_episodes(Oracle(env), env, watch_cell=(9, 9))


def test_path_efficiency_is_nan_without_an_object():
    ep = {"reached": torch.tensor([-1, 0]), "object_distance": torch.tensor([[3, 4], [3, 4]]),
          "length": torch.tensor([20, 6])}
    eff = path_efficiency(ep)
    assert math.isnan(eff[0]) and eff[1] == pytest.approx(0.5)


def test_choice_model_recovers_a_known_utility():
    gen = torch.Generator().manual_seed(0)
    n, k = 4000, 3
    colour = torch.randint(0, 4, (n, k), generator=gen)
    kind = torch.randint(0, 3, (n, k), generator=gen)
    dist = torch.randint(1, 9, (n, k), generator=gen)
    feats, names = object_features(colour, kind, dist, max_distance=8)
    true_w = torch.zeros(len(names))
    true_w[names.index("red")] = 3.0
    true_w[names.index("distance")] = -2.0
    probs = torch.softmax(feats @ true_w, 1)
    choice = torch.multinomial(probs, 1, generator=gen).squeeze(1)
    w = fit_choice_model(feats[:3000], choice[:3000], l2=1e-4)
    assert w[names.index("red")] - w[names.index("blue")] == pytest.approx(3.0, abs=0.4)
    assert w[names.index("distance")] == pytest.approx(-2.0, abs=0.4)
    acc = choice_accuracy(feats[3000:], choice[3000:], w)
    best = choice_accuracy(feats[3000:], choice[3000:], true_w)
    assert acc > best - 0.03 and acc > 0.5
    with pytest.raises(ValueError, match="choice"):
        fit_choice_model(feats, choice[:10])
