"""mesakit.treacherous: the payoff toy of Hubinger et al. (2019, section 4) computed exactly
(the paper's 1 vs 3, closed forms for other numbers of episodes and discounts, brute-force
agreement, bad input), and the learner of lesson 4.4."""
import itertools

import pytest
import torch

from mesakit import treacherous as tr


def test_paper_numbers():
    p = tr.toy_payoffs()                                    # two training, three deployment episodes
    assert p["always_defect"] == 1.0
    assert p["defect_in_deployment"] == 3.0
    assert p["always_comply"] == 0.0
    assert p["best"] == 3.0 and p["best_plan"] == "AABBB" and p["optimal_plans"] == 1


@pytest.mark.parametrize("k,d", [(0, 1), (0, 4), (1, 0), (1, 1), (2, 3), (3, 1), (4, 2), (5, 5), (1, 7), (6, 0)])
@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5])
def test_closed_forms(k, d, gamma):
    p = tr.toy_payoffs(k, d, discount=gamma)
    turn = sum(gamma ** t for t in range(k, k + d))         # B in every deployment episode, never modified
    defect = 1.0 if k >= 1 else turn                        # B once, then modified (or never overseen)
    assert p["always_defect"] == pytest.approx(defect, abs=1e-12)
    assert p["defect_in_deployment"] == pytest.approx(turn, abs=1e-12)
    assert p["always_comply"] == 0.0
    # best over all plans: defect at once (worth 1) or wait for deployment (worth `turn`)
    assert p["best"] == pytest.approx(max(defect, turn), abs=1e-12)


def test_discount_can_make_waiting_lose():
    # long training and a discount: the deployment B's are worth less than one B now
    p = tr.toy_payoffs(10, 3, discount=0.8)
    assert p["defect_in_deployment"] < p["always_defect"] == p["best"] == 1.0
    assert p["best_plan"].startswith("B")
    # more deployment episodes than 1 and no discount: the turn always wins, however long training is
    for k in range(1, 12):
        assert tr.toy_payoffs(k, 2)["best_plan"] == "A" * k + "BB"


def test_plan_payoffs_against_brute_force():
    # a literal re-simulation, episode by episode, of every plan of length 6 with 0..6 overseen episodes
    for k in range(7):
        plans = tr.all_plans(6)
        got = tr.plan_payoffs(plans, k, discount=0.7)
        for row, value in zip(plans.tolist(), got.tolist()):
            modified, total = False, 0.0
            for t, b in enumerate(row):
                if modified:
                    continue
                if b:
                    total += 0.7 ** t
                    if t < k:
                        modified = True
            assert value == pytest.approx(total, abs=1e-12)


def test_all_plans_is_every_plan_once():
    plans = tr.all_plans(4)
    assert plans.shape == (16, 4)
    assert {tuple(r) for r in plans.tolist()} == set(itertools.product([False, True], repeat=4))
    assert tr.plan_string(plans[3]) == "AABB"


def test_plan_payoffs_shapes_and_int_input():
    assert tr.plan_payoffs([[0, 1, 1], [1, 1, 1]], 1).tolist() == [2.0, 1.0]
    assert tr.plan_payoffs(torch.ones(2, 5, 3, dtype=torch.bool), 0).shape == (2, 5)


def test_bad_input():
    for kwargs, name in [(dict(training_episodes=-1), "training_episodes"),
                         (dict(training_episodes=1.5), "training_episodes"),
                         (dict(deployment_episodes=-2), "deployment_episodes"),
                         (dict(training_episodes=0, deployment_episodes=0), "training_episodes"),
                         (dict(training_episodes=15, deployment_episodes=6), "at most"),
                         (dict(discount=0.0), "discount"), (dict(discount=1.2), "discount"),
                         (dict(discount=True), "discount")]:
        with pytest.raises(ValueError, match=name):
            tr.toy_payoffs(**kwargs)
    with pytest.raises(ValueError, match="plans"):
        tr.plan_payoffs([0.5, 1.0], 1)
    with pytest.raises(ValueError, match="plans"):
        tr.plan_payoffs([0, 2], 1)
    with pytest.raises(ValueError, match="plans"):
        tr.plan_payoffs(torch.tensor(1), 0)
    with pytest.raises(ValueError, match="training_episodes"):
        tr.plan_payoffs([[0, 1]], 3)
    with pytest.raises(ValueError, match="discount"):
        tr.plan_payoffs([[0, 1]], 1, discount=-1)
    with pytest.raises(ValueError, match="episodes"):
        tr.all_plans(0)
    with pytest.raises(ValueError, match="episodes"):
        tr.all_plans(21)
    with pytest.raises(ValueError, match="plan"):
        tr.plan_string([[0, 1]])
