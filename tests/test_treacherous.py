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


# ------------------------------------------------------------------ the oversight game and its learner

N = 5
FULL = tr.TurnCondition("full", 2, "flag")
MYOPIC = tr.TurnCondition("myopic", 2, "flag", myopic=True)
BLIND = tr.TurnCondition("blind", 2, "none")
NO_END = tr.TurnCondition("no end", 5, "flag")
CLOCK = tr.TurnCondition("clock", 2, "index")
CLOCK_UNKNOWN = tr.TurnCondition("clock, unknown lapse", (1, 4), "index")
FLAG_UNKNOWN = tr.TurnCondition("flag, unknown lapse", (1, 4), "flag")
NO_SELECTION = tr.TurnCondition("no selection", 2, "flag", selection=False)
ALL = [FULL, MYOPIC, BLIND, NO_END, CLOCK, CLOCK_UNKNOWN, FLAG_UNKNOWN, NO_SELECTION]


def _brute_force_return(table, cond, n):
    """Sum over all 2**n plans of P(plan | lapse) x payoff, averaged over the lapses."""
    plans = tr.all_plans(n)
    lapses = cond.lapses(n)
    total = 0.0
    for k in lapses:
        pt = table[tr.episode_observations(cond, n, k)]                       # [n]
        prob = torch.where(plans, pt, 1 - pt).prod(1)
        total += (prob * tr.plan_payoffs(plans, k)).sum().item() / len(lapses)
    return total


def test_observations():
    assert tr.episode_observations(FULL, N, 2).tolist() == [1, 1, 0, 0, 0]
    assert tr.episode_observations(NO_END, N, 5).tolist() == [1] * 5
    assert tr.episode_observations(BLIND, N, 2).tolist() == [0] * 5
    assert tr.episode_observations(CLOCK, N, 2).tolist() == [2, 3, 4, 5, 6]
    assert tr.episode_observations(FULL, N, torch.tensor([[1, 3]])).shape == (1, 2, 5)
    assert CLOCK_UNKNOWN.lapses(N) == [1, 2, 3, 4]


@pytest.mark.parametrize("cond", ALL, ids=lambda c: c.name)
def test_exact_return_matches_brute_force(cond):
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        table = torch.rand(N + 2, generator=g, dtype=torch.float64)
        assert tr.exact_return(table, cond, N).item() == pytest.approx(_brute_force_return(table, cond, N), abs=1e-12)
    # a batch of tables at once gives the same as one at a time
    tables = torch.rand(4, N + 2, generator=g, dtype=torch.float64)
    batch = tr.exact_return(tables, cond, N)
    assert torch.allclose(batch, torch.stack([tr.exact_return(t, cond, N) for t in tables]))


def test_exact_return_deterministic_tables_are_the_toy():
    turn = torch.tensor([1.0, 0.0] + [0.5] * N)       # B when not overseen, A when overseen
    assert tr.exact_return(turn, FULL, N).item() == tr.toy_payoffs(2, 3)["defect_in_deployment"]
    always = torch.ones(N + 2)
    assert tr.exact_return(always, FULL, N).item() == tr.toy_payoffs(2, 3)["always_defect"]
    assert tr.exact_return(torch.zeros(N + 2), FULL, N).item() == 0.0
    assert tr.exact_return(turn, FULL, N, discount=0.5).item() == pytest.approx(0.25 + 0.125 + 0.0625)


def test_blind_closed_form():
    # one rate p for all five episodes, two overseen: E = p + (1-p) p + (1-p)^2 3p = 5p - 7p^2 + 3p^3
    for p in (0.0, 0.2, 5 / 9, 0.9, 1.0):
        assert tr.exact_return(torch.full((N + 2,), p), BLIND, N).item() == pytest.approx(5 * p - 7 * p**2 + 3 * p**3)
    table, value = tr.best_policy(BLIND, N)
    assert table[0].item() == pytest.approx(5 / 9, abs=1e-3)
    assert value == pytest.approx(5 * 5 / 9 - 7 * (5 / 9) ** 2 + 3 * (5 / 9) ** 3, abs=1e-6)


def test_best_policies():
    table, value = tr.best_policy(FULL, N)
    assert value == tr.toy_payoffs(2, 3)["best"] == 3.0 and table[:2].tolist() == [1.0, 0.0]
    table, value = tr.best_policy(MYOPIC, N)          # the myopic agent's best: B whenever it chooses
    assert table[:2].tolist() == [1.0, 1.0] and value == 1.0
    table, value = tr.best_policy(NO_END, N)
    assert table[1].item() == 1.0 and value == 1.0
    table, value = tr.best_policy(CLOCK, N)
    assert table[2:].tolist() == [0, 0, 1, 1, 1] and value == 3.0
    _, value = tr.best_policy(CLOCK_UNKNOWN, N)       # wait until episode 2: 3 B if the lapse came, else 1
    assert value == pytest.approx(2.0)
    _, value = tr.best_policy(FLAG_UNKNOWN, N)        # 5 - E[k] = 2.5
    assert value == pytest.approx(2.5)


def test_strategy_rates():
    turn = torch.tensor([1.0, 0.0] + [0.5] * N)
    r = tr.strategy_rates(turn, FULL, N)
    assert r["defect_overseen"] == 0 and r["defect_free"] == 1 and r["turn"] == 1 and r["modified"] == 0
    r = tr.strategy_rates(torch.full((3, N + 2), 0.5), BLIND, N)
    assert r["turn"].shape == (3,) and torch.allclose(r["turn"], torch.tensor(0.5 ** 5, dtype=torch.float64))
    assert torch.allclose(r["modified"], torch.tensor(0.75, dtype=torch.float64))
    r = tr.strategy_rates(torch.full((N + 2,), 0.3), NO_END, N)
    assert torch.isnan(r["defect_free"]) and torch.isnan(r["turn"])
    assert r["modified"].item() == pytest.approx(1 - 0.7 ** 5)


def test_learners_find_the_strategies():
    log = tr.train_turn_learners([FULL, MYOPIC, BLIND], [0, 1], updates=150, seed=1)
    assert log.logits.shape == (3, 2, N + 2) and log.probs.shape == (151, 3, 2, N + 2)
    assert log.sampled_return.shape == (150, 3, 2)
    full = tr.strategy_rates(log.probs[-1, 0], FULL, N)
    assert (full["defect_overseen"] < 0.1).all() and (full["defect_free"] > 0.9).all()
    myopic = tr.strategy_rates(log.probs[-1, 1], MYOPIC, N)
    assert (myopic["defect_first"] > 0.9).all()
    blind = log.probs[-1, 2, :, 0]
    assert ((blind - 5 / 9).abs() < 0.1).all()
    curve = log.exact_curve()
    assert curve.shape == (151, 3, 2) and (curve[-1, 0] > 2.8).all()
    # same seed, same numbers
    again = tr.train_turn_learners([FULL, MYOPIC, BLIND], [0, 1], updates=150, seed=1)
    assert torch.equal(log.probs, again.probs)


def test_learner_bad_input():
    for kwargs, name in [(dict(conditions=[]), "conditions"), (dict(conditions=["full"]), "conditions"),
                         (dict(conditions=[tr.TurnCondition("x", 6)]), "overseen"),
                         (dict(conditions=[tr.TurnCondition("x", (3, 1))]), "overseen"),
                         (dict(conditions=[tr.TurnCondition("x", observe="eyes")]), "observe"),
                         (dict(conditions=[tr.TurnCondition("x", myopic="yes")]), "myopic"),
                         (dict(conditions=[tr.TurnCondition("x", selection=None)]), "selection"),
                         (dict(conditions=[tr.TurnCondition("")]), "name"),
                         (dict(seeds=[]), "seeds"), (dict(seeds=[-1]), "seeds"), (dict(episodes=0), "episodes"),
                         (dict(updates=0), "updates"), (dict(batch=1), "batch"), (dict(lr=0), "lr"),
                         (dict(init_scale=-1.0), "init_scale"), (dict(init_bias=[0.0, 1.0]), "init_bias"),
                         (dict(init_bias=float("nan")), "init_bias"), (dict(seed=-3), "seed"), (dict(device="tpu"), "device")]:
        args = dict(conditions=[FULL], seeds=[0], updates=1)
        args.update(kwargs)
        with pytest.raises(ValueError, match=name):
            tr.train_turn_learners(args.pop("conditions"), args.pop("seeds"), **args)
    with pytest.raises(ValueError, match="probs"):
        tr.exact_return(torch.ones(3), FULL, N)
    with pytest.raises(ValueError, match="probs"):
        tr.exact_return(torch.full((N + 2,), 1.5), FULL, N)
    with pytest.raises(ValueError, match="logits"):
        tr.choice_probabilities([0.0])


def test_init_bias_and_a_learner_that_starts_defecting():
    log = tr.train_turn_learners([FULL, FULL], [0, 1], updates=1, init_bias=[3.0, 0.0], init_scale=0.0)
    assert torch.allclose(log.probs[0, 0], torch.sigmoid(torch.tensor(3.0, dtype=torch.float64)).expand(2, N + 2))
    assert torch.allclose(log.probs[0, 1], torch.full((2, N + 2), 0.5, dtype=torch.float64))
    # a learner that starts out choosing B 95% of the time still finds the turn
    log = tr.train_turn_learners([FULL], [0, 1], updates=200, init_bias=3.0, seed=2)
    r = tr.strategy_rates(log.probs[-1, 0], FULL, N)
    assert (r["defect_overseen"] < 0.1).all() and (r["defect_free"] > 0.9).all()


def test_no_selection_is_scored_in_the_real_game():
    # exact_return and strategy_rates ignore `selection`: they always play the real game
    g = torch.Generator().manual_seed(5)
    tables = torch.rand(3, N + 2, generator=g, dtype=torch.float64)
    assert torch.equal(tr.exact_return(tables, NO_SELECTION, N), tr.exact_return(tables, FULL, N))
    for key, value in tr.strategy_rates(tables, NO_SELECTION, N).items():
        assert torch.equal(value, tr.strategy_rates(tables, FULL, N)[key]), key
    # its yardstick: B everywhere (best in a world without modification), worth always-B's 1 in the real game
    table, value = tr.best_policy(NO_SELECTION, N)
    assert table[:2].tolist() == [1.0, 1.0] and value == 1.0


def test_no_selection_learner_trains_without_modification():
    # trained where B while overseen changes nothing, it learns B everywhere and so is modified in the real game
    log = tr.train_turn_learners([NO_SELECTION, FULL], [0, 1], updates=150, seed=3)
    r = tr.strategy_rates(log.probs[-1, 0], NO_SELECTION, N)
    assert (r["defect_first"] > 0.9).all() and (r["defect_free"] > 0.9).all() and (r["modified"] > 0.99).all()
    assert (log.exact_curve()[-1, 0] - 1.0).abs().max() < 0.01
    # in its own world it reaches B in (almost) every episode: sampled returns near 5, impossible with modification
    assert (log.sampled_return[-10:, 0] > 4.5).all() and (log.sampled_return[:, 1] <= 3.0 + 1e-9).all()
    # with init_scale 0 and a single update, the same seed gives the same first batch in both conditions:
    # the only difference is whether B while overseen is punished, so the sampled returns differ
    a = tr.train_turn_learners([NO_SELECTION], [0], updates=1, init_scale=0.0, seed=4)
    b = tr.train_turn_learners([FULL], [0], updates=1, init_scale=0.0, seed=4)
    assert a.sampled_return.item() > b.sampled_return.item()
