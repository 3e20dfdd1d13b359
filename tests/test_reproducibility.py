"""Same seed, same machine, same numbers: the lessons' training functions, run twice."""
import torch

from mesakit import bandits, knapsack, thermostat


def _same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_knapsack_imitation_training_repeats_exactly():
    runs = [knapsack.train_imitation(n_items=6, steps=15, batch_size=32, hidden=16, n_blocks=1, seed=3)
            for _ in range(2)]
    (net_a, losses_a), (net_b, losses_b) = runs
    assert losses_a == losses_b
    assert _same_parameters(net_a, net_b)
    other, _ = knapsack.train_imitation(n_items=6, steps=15, batch_size=32, hidden=16, n_blocks=1, seed=4)
    assert not _same_parameters(net_a, other), "a different seed should give a different network"


def test_thermostat_controller_training_repeats_exactly():
    runs = [thermostat.train_neural_controller(20.0, steps=10, n_rooms=16, horizon=5, seed=1) for _ in range(2)]
    assert runs[0][1] == runs[1][1]
    assert _same_parameters(runs[0][0], runs[1][0])


def test_bandit_meta_learning_repeats_exactly():
    kw = dict(k=2, horizon=8, memory=True, hidden=8, batch=16, updates=5, seed=2)
    net_a, log_a = bandits.train_meta_learner(**kw)
    net_b, log_b = bandits.train_meta_learner(**kw)
    assert _same_parameters(net_a, net_b)
