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


# ------------------------------------------------------- device, ensemble, control imitator


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_is_validated_with_a_clear_error():
    with pytest.raises(ValueError, match="device='cuda' asks for CUDA"):
        K.random_instances(4, 3, seed=0, device="cuda")
    with pytest.raises(ValueError, match="device"):
        K.train_imitation(steps=1, seed=0, device="cuda")
    with pytest.raises(ValueError, match="device"):
        K.train_imitation_ensemble(seeds=[0], steps=1, device="cuda")


def test_device_that_is_not_a_device():
    with pytest.raises(ValueError, match="device must be"):
        K.random_instances(4, 3, seed=0, device="gpu0")


def test_ensemble_members_equal_single_runs():
    kw = dict(n_items=6, steps=12, batch_size=32, hidden=16, n_blocks=1, lr=3e-3)
    nets, losses, snaps = K.train_imitation_ensemble(seeds=[3, 0], checkpoints=[5, 12], **kw)
    assert losses.shape == (12, 2) and sorted(snaps) == [5, 12]
    v, w, c = K.random_instances(50, 9, seed=11)
    for i, s in enumerate([3, 0]):
        ref, ref_losses = K.train_imitation(seed=s, **kw)
        torch.testing.assert_close(losses[:, i], torch.tensor(ref_losses, dtype=torch.float64),
                                   rtol=1e-4, atol=1e-5)
        for (name, p), (_, q) in zip(ref.named_parameters(), nets[i].named_parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
        torch.testing.assert_close(K.predict_scores(nets[i], v, w, c), K.predict_scores(ref, v, w, c),
                                   rtol=1e-4, atol=1e-5)
        # The last snapshot is the final network; an earlier one differs from it.
        for p, q in zip(snaps[12][i].parameters(), nets[i].parameters()):
            assert torch.equal(p, q)
        assert not all(torch.equal(p, q) for p, q in zip(snaps[5][i].parameters(), nets[i].parameters()))
    assert not nets[0].training


def test_ensemble_bad_inputs():
    with pytest.raises(ValueError, match="seeds"):
        K.train_imitation_ensemble(seeds=[], steps=1)
    with pytest.raises(ValueError, match="seed"):
        K.train_imitation_ensemble(seeds=[0, -1], steps=1)
    with pytest.raises(ValueError, match="checkpoints"):
        K.train_imitation_ensemble(seeds=[0], steps=3, checkpoints=[4])
    with pytest.raises(ValueError, match="checkpoints"):
        K.train_imitation_ensemble(seeds=[0], steps=3, checkpoints=[0])
    with pytest.raises(ValueError, match="lr"):
        K.train_imitation_ensemble(seeds=[0], steps=3, lr=0.0)


def test_flip_at_random():
    a = torch.rand(400, 25, generator=torch.Generator().manual_seed(0)) < 0.4
    assert torch.equal(K.flip_at_random(a, 0.0, seed=1), a)
    assert torch.equal(K.flip_at_random(a, 1.0, seed=1), ~a)
    f = K.flip_at_random(a, 0.2, seed=1)
    assert torch.equal(f, K.flip_at_random(a, 0.2, seed=1))
    assert not torch.equal(f, K.flip_at_random(a, 0.2, seed=2))
    assert abs((f != a).double().mean().item() - 0.2) < 0.015
    with pytest.raises(ValueError, match="rate"):
        K.flip_at_random(a, 1.5, seed=0)
    with pytest.raises(ValueError, match="chosen"):
        K.flip_at_random(a.int(), 0.1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        K.flip_at_random(a, 0.1, seed=-2)


def test_noisy_dp_scores():
    v, w, c = K.random_instances(300, 10, seed=2)
    dp, best = K.solve_dp(v, w, c)
    s0 = K.noisy_dp_scores(dp, 0.0, seed=0)
    assert s0.dtype == torch.float64 and torch.equal(s0, dp.double())
    # Noise-free scores decode to an optimal set.
    assert torch.equal(K.total_value(v, K.decode_by_score(s0, w, c)), best)
    s = K.noisy_dp_scores(dp, 0.5, seed=4)
    assert torch.equal(s, K.noisy_dp_scores(dp, 0.5, seed=4))
    assert abs((s - dp.double()).std().item() - 0.5) < 0.03
    for bad in (-0.1, float("nan"), "1"):
        with pytest.raises(ValueError, match="noise"):
            K.noisy_dp_scores(dp, bad, seed=0)
    with pytest.raises(ValueError, match="dp_chosen"):
        K.noisy_dp_scores(dp.float(), 0.1, seed=0)


@pytest.mark.parametrize("target", [0.05, 0.2, 0.4])
def test_dp_with_random_mistakes_hits_the_error_rate(target):
    v, w, c = K.random_instances(4000, 10, seed=5)
    dp, best = K.solve_dp(v, w, c)
    chosen, noise = K.dp_with_random_mistakes(v, w, c, error_rate=target, seed=1)
    assert noise > 0 and K.is_feasible(w, c, chosen).all()
    wrong = K.total_value(v, chosen) < best
    assert abs(wrong.double().mean().item() - target) < 0.005
    # Same seed, same sets; precomputed DP answers give the same result.
    again, noise2 = K.dp_with_random_mistakes(v, w, c, error_rate=target, seed=1, dp_chosen=dp, best=best)
    assert torch.equal(again, chosen) and noise2 == noise
    # Its mistakes have nothing to do with greedy's: where greedy is wrong, it is wrong
    # about as often as anywhere else, and it almost never lands on greedy's set.
    g = K.greedy_by_density(v, w, c)
    greedy_wrong = K.total_value(v, g) < best
    assert abs(greedy_wrong[wrong].double().mean() - greedy_wrong.double().mean()) < 0.1
    assert K.same_set(chosen, g)[greedy_wrong].double().mean() < 0.15


def test_dp_with_random_mistakes_edge_cases_and_bad_inputs():
    v, w, c = K.random_instances(500, 8, seed=6)
    dp, best = K.solve_dp(v, w, c)
    chosen, noise = K.dp_with_random_mistakes(v, w, c, error_rate=0.0, seed=0)
    assert noise == 0.0 and torch.equal(K.total_value(v, chosen), best)
    # A target beyond what random scores reach: as many mistakes as it can make.
    chosen, noise = K.dp_with_random_mistakes(v, w, c, error_rate=0.99, seed=0)
    assert noise > 10 and (K.total_value(v, chosen) < best).double().mean() > 0.5
    with pytest.raises(ValueError, match="error_rate"):
        K.dp_with_random_mistakes(v, w, c, error_rate=1.0, seed=0)
    with pytest.raises(ValueError, match="error_rate"):
        K.dp_with_random_mistakes(v, w, c, error_rate=-0.1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        K.dp_with_random_mistakes(v, w, c, error_rate=0.1, seed=-1)
    with pytest.raises(ValueError, match="dp_chosen"):
        K.dp_with_random_mistakes(v, w, c, error_rate=0.1, seed=0, dp_chosen=dp[:3], best=best)
    with pytest.raises(ValueError, match="best"):
        K.dp_with_random_mistakes(v, w, c, error_rate=0.1, seed=0, dp_chosen=dp, best=best[:3])
    with pytest.raises(ValueError, match="weights"):
        K.dp_with_random_mistakes(v, w.double(), c, error_rate=0.1, seed=0)
