"""Tests of mesakit.knapsack: the DP against brute force, the greedy heuristic, decoding,
metrics, input validation and training determinism."""
import pytest
import torch

from mesakit import knapsack as K


def _classic():
    """The textbook instance on which greedy-by-density is suboptimal."""
    values = torch.tensor([[60, 100, 120]])
    weights = torch.tensor([[10, 20, 30]])
    capacity = torch.tensor([50])
    return values, weights, capacity


@pytest.mark.parametrize("n_items", [1, 2, 5, 8, 11])
def test_dp_matches_brute_force(n_items):
    v, w, c = K.random_instances(400, n_items, seed=n_items, max_value=30, max_weight=12)
    dp_set, dp_best = K.solve_dp(v, w, c)
    bf_set, bf_best = K.brute_force(v, w, c)
    assert torch.equal(dp_best, bf_best)
    assert torch.equal(K.total_value(v, dp_set), dp_best)
    assert K.is_feasible(w, c, dp_set).all()
    # Same tie rule on both sides, so even the chosen sets agree.
    assert torch.equal(dp_set, bf_set)


def test_dp_ties_many_optimal_sets():
    # Small value range -> many instances with several optimal sets.
    v, w, c = K.random_instances(500, 7, seed=3, max_value=3, max_weight=4)
    dp_set, dp_best = K.solve_dp(v, w, c)
    bf_set, bf_best = K.brute_force(v, w, c)
    assert torch.equal(dp_best, bf_best)
    assert torch.equal(dp_set, bf_set)


def test_dp_tie_rule_and_edge_cases():
    # Two identical items, room for one: exactly one is taken, the lower-index one.
    v = torch.tensor([[5, 5], [7, 3], [4, 4]])
    w = torch.tensor([[3, 3], [10, 1], [2, 2]])
    c = torch.tensor([4, 0, 4])
    chosen, best = K.solve_dp(v, w, c)
    assert chosen.tolist() == [[True, False], [False, False], [True, True]]
    assert best.tolist() == [5, 0, 8]


def test_dp_float_values_and_classic():
    v, w, c = _classic()
    chosen, best = K.solve_dp(v, w, c)
    assert chosen.tolist() == [[False, True, True]] and best.item() == 220
    chosen_f, best_f = K.solve_dp(v.double() / 10, w, c)
    assert torch.equal(chosen_f, chosen) and best_f.item() == pytest.approx(22.0)


def test_greedy_known_suboptimal_example():
    v, w, c = _classic()
    g = K.greedy_by_density(v, w, c)
    assert g.tolist() == [[True, True, False]]
    _, best = K.solve_dp(v, w, c)
    assert K.value_ratio(v, g, best).item() == pytest.approx(160 / 220)


def test_greedy_feasible_and_maximal():
    v, w, c = K.random_instances(2000, 15, seed=4)
    g = K.greedy_by_density(v, w, c)
    assert K.is_feasible(w, c, g).all()
    # Maximal: no left-out item fits in the room that is left.
    room = c - K.total_weight(w, g)
    assert not ((~g) & (w <= room.unsqueeze(1))).any()
    _, best = K.solve_dp(v, w, c)
    assert (K.total_value(v, g) <= best).all()


def test_decode_by_density_is_greedy_and_always_feasible():
    v, w, c = K.random_instances(1000, 12, seed=5)
    density = v.double() / w.double()
    assert torch.equal(K.decode_by_score(density, w, c), K.greedy_by_density(v, w, c))
    random_scores = torch.rand(v.shape, generator=torch.Generator().manual_seed(0))
    assert K.is_feasible(w, c, K.decode_by_score(random_scores, w, c)).all()


def test_random_instances_seeded_and_in_range():
    a = K.random_instances(50, 6, seed=7, max_value=9, max_weight=5)
    b = K.random_instances(50, 6, seed=7, max_value=9, max_weight=5)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    v, w, c = a
    assert v.shape == w.shape == (50, 6) and c.shape == (50,)
    assert v.min() >= 1 and v.max() <= 9 and w.min() >= 1 and w.max() <= 5
    assert (c >= 1).all() and (c <= w.sum(1)).all()
    other = K.random_instances(50, 6, seed=8, max_value=9, max_weight=5)
    assert not torch.equal(other[0], v)


def test_metrics():
    a = torch.tensor([[True, False, True, False]])
    b = torch.tensor([[True, True, False, False]])
    cand = torch.tensor([[True, True, True, True]])
    assert K.same_set(a, a).item() and not K.same_set(a, b).item()
    assert K.item_agreement(a, b).item() == pytest.approx(0.5)
    agree_a, agree_b = K.sides_with(cand, a, b)
    assert agree_a.item() == 1 and agree_b.item() == 1
    v = torch.tensor([[1, 2, 3, 4]])
    assert K.value_ratio(v, a, torch.tensor([8])).item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_instances=0, n_items=3, seed=0), "n_instances"),
        (dict(n_instances=2, n_items=0, seed=0), "n_items"),
        (dict(n_instances=2, n_items=3, seed=-1), "seed"),
        (dict(n_instances=2, n_items=3, seed=0, max_weight=0), "max_weight"),
        (dict(n_instances=2, n_items=3, seed=0, capacity_fraction=(0.8, 0.2)), "capacity_fraction"),
    ],
)
def test_random_instances_bad_inputs(kwargs, name):
    with pytest.raises(ValueError, match=name):
        K.random_instances(**kwargs)


def test_solvers_bad_inputs():
    v, w, c = _classic()
    for fn in (K.solve_dp, K.greedy_by_density, K.brute_force):
        with pytest.raises(ValueError, match="weights"):
            fn(v, w.double(), c)
        with pytest.raises(ValueError, match="weights"):
            fn(v, torch.tensor([[10, 0, 30]]), c)
        with pytest.raises(ValueError, match="capacity"):
            fn(v, w, torch.tensor([50, 50]))
        with pytest.raises(ValueError, match="capacity"):
            fn(v, w, torch.tensor([-1]))
        with pytest.raises(ValueError, match="values"):
            fn(-v, w, c)
        with pytest.raises(ValueError, match="values"):
            fn(v[0], w, c)
    with pytest.raises(ValueError, match="values"):
        K.brute_force(*K.random_instances(2, 17, seed=0))
    with pytest.raises(ValueError, match="scores"):
        K.decode_by_score(torch.zeros(1, 2), w, c)
    with pytest.raises(ValueError, match="chosen"):
        K.value_ratio(v, torch.ones(1, 3), torch.tensor([220]))


def test_train_imitation_deterministic_and_bad_inputs():
    kw = dict(n_items=6, steps=15, batch_size=32, hidden=16, n_blocks=1, seed=0)
    net1, loss1 = K.train_imitation(**kw)
    net2, loss2 = K.train_imitation(**kw)
    assert loss1 == loss2 and len(loss1) == 15
    for p1, p2 in zip(net1.parameters(), net2.parameters()):
        assert torch.equal(p1, p2)
    # The trained network runs on any number of items and decodes to feasible sets.
    v, w, c = K.random_instances(20, 13, seed=1)
    chosen = K.decode_by_score(K.predict_scores(net1, v, w, c), w, c)
    assert chosen.shape == (20, 13) and K.is_feasible(w, c, chosen).all()
    with pytest.raises(ValueError, match="steps"):
        K.train_imitation(steps=0, seed=0)
    with pytest.raises(ValueError, match="lr"):
        K.train_imitation(lr=-1.0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        K.train_imitation(steps=1, seed=-3)
