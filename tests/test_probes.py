"""mesakit.probes: AUROC against a brute-force pairwise count, logistic probes and contrast
directions, hidden activations, and the steering hook (exact restoration, nesting,
exceptions, per-agent directions, bad input)."""
import pytest
import torch

from mesakit.ppo import BatchedMLPPolicy
from mesakit.probes import (LinearProbe, auroc, contrast_direction, contrast_probe, fit_linear_probe,
                            hidden_activations, steering)


def brute_auroc(scores, labels):
    pos = [s for s, y in zip(scores.tolist(), labels.tolist()) if y == 1]
    neg = [s for s, y in zip(scores.tolist(), labels.tolist()) if y == 0]
    total = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return total / (len(pos) * len(neg))


@pytest.mark.parametrize("trial", range(40))
def test_auroc_matches_pairwise_count_with_ties(trial):
    gen = torch.Generator().manual_seed(trial)
    n = int(torch.randint(2, 30, (1,), generator=gen))
    scores = torch.randint(0, 5, (n,), generator=gen).float()        # few values: many ties
    if trial % 3 == 0:
        scores = scores + torch.rand(n, generator=gen)                 # and some without ties
    labels = torch.randint(0, 2, (n,), generator=gen)
    labels[0], labels[1] = 0, 1                                       # both classes present
    assert auroc(scores, labels) == pytest.approx(brute_auroc(scores, labels), abs=1e-12)


def test_auroc_known_values_and_label_types():
    assert auroc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1])) == 1.0
    assert auroc(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([0, 0, 1, 1])) == 0.0
    assert auroc(torch.ones(6), torch.tensor([0, 1, 0, 1, 1, 0])) == 0.5          # a constant scores 1/2
    assert auroc(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([False, True, True])) == 1.0
    assert auroc([3.0, 1.0, 2.0], [1.0, 0.0, 1.0]) == 1.0
    # invariant to monotone transformations of the score
    s, y = torch.randn(50, generator=torch.Generator().manual_seed(1)), torch.arange(50) % 2
    assert auroc(s, y) == pytest.approx(auroc(torch.exp(3 * s), y))


def test_auroc_bad_input():
    with pytest.raises(ValueError, match="labels"):
        auroc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]))                      # one class only
    with pytest.raises(ValueError, match="labels"):
        auroc(torch.tensor([0.1, 0.2]), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="labels"):
        auroc(torch.tensor([0.1, 0.2]), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="scores"):
        auroc(torch.tensor([[0.1, 0.2]]), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="scores"):
        auroc(torch.tensor([float("nan"), 0.2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="scores"):
        auroc("abc", torch.tensor([0, 1]))


def _separable(n=200, d=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    w = torch.tensor([2.0, -1.0, 0.0, 0.5, 0.0])[:d]
    y = (x @ w + 0.3 * torch.randn(n, generator=gen) > 0).long()
    return x, y, w


def test_fit_linear_probe_recovers_direction_and_is_deterministic():
    x, y, w = _separable()
    p = fit_linear_probe(x, y, l2=1e-3)
    assert isinstance(p, LinearProbe) and p.weight.shape == (5,)
    assert torch.dot(p.direction, w / w.norm()) > 0.95
    assert p.direction.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert auroc(p.score(x), y) > 0.95
    q = fit_linear_probe(x, y, l2=1e-3)
    assert torch.equal(p.weight, q.weight) and p.bias == q.bias
    # features that carry a graph (activations computed with gradients on) give the same probe
    r = fit_linear_probe(x.clone().requires_grad_(True) * 1.0, y, l2=1e-3)
    assert torch.equal(p.weight, r.weight)
    # a heavier penalty shrinks the weight
    assert fit_linear_probe(x, y, l2=1.0).weight.norm() < p.weight.norm()
    # a probe on features that carry no information does no better than chance on new data
    gen = torch.Generator().manual_seed(5)
    noise, noise_test = torch.randn(300, 5, generator=gen), torch.randn(300, 5, generator=gen)
    labels = torch.arange(300) % 2
    r = fit_linear_probe(noise, labels)
    assert abs(auroc(r.score(noise_test), labels) - 0.5) < 0.1


def test_fit_linear_probe_bad_input():
    x, y, _ = _separable()
    with pytest.raises(ValueError, match="features"):
        fit_linear_probe(x[0], y)
    with pytest.raises(ValueError, match="features"):
        fit_linear_probe(x.long(), y)
    with pytest.raises(ValueError, match="labels"):
        fit_linear_probe(x, y[:-1])
    with pytest.raises(ValueError, match="labels"):
        fit_linear_probe(x, torch.zeros_like(y))
    with pytest.raises(ValueError, match="l2"):
        fit_linear_probe(x, y, l2=-1.0)
    with pytest.raises(ValueError, match="steps"):
        fit_linear_probe(x, y, steps=0)
    with pytest.raises(ValueError, match="device"):
        fit_linear_probe(x, y, device="tpu")
    with pytest.raises(ValueError, match="balanced"):
        fit_linear_probe(x, y, balanced="yes")
    with pytest.raises(ValueError, match="features"):
        fit_linear_probe(x, y).score(torch.zeros(3, 4))


def test_contrast_direction_and_probe():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, 3, generator=gen) + torch.tensor([1.0, 0.0, 0.0])
    b = torch.randn(400, 3, generator=gen) - torch.tensor([1.0, 0.0, 0.0])
    d = contrast_direction(a, b)
    assert d.norm().item() == pytest.approx(1.0, abs=1e-6) and d[0] > 0.95
    p = contrast_probe(a, b)
    assert torch.equal(p.direction, d)
    scores = p.score(torch.cat((a, b)))
    assert scores[:400].mean() > 0 > scores[400:].mean()              # bias halfway between the means
    assert auroc(scores, torch.cat((torch.ones(400), torch.zeros(400)))) > 0.85
    with pytest.raises(ValueError, match="features_b"):
        contrast_direction(a, b[:, :2])
    with pytest.raises(ValueError, match="features_a"):
        contrast_direction(a[0], b)
    with pytest.raises(ValueError, match="same mean"):
        contrast_direction(a, a.clone())


def _policy(seeds=(0, 1, 2), obs_dim=7, hidden=8):
    return BatchedMLPPolicy(obs_dim, 4, list(seeds), hidden=hidden)


def test_hidden_activations_match_features():
    pol = _policy()
    obs = torch.randn(3 * 5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(hidden_activations(pol, obs), pol.features(obs))       # layer 2 is features, bit for bit
    h1 = hidden_activations(pol, obs, layer=1)
    assert h1.shape == (3, 5, 8)
    expected = torch.tanh(obs.view(3, 5, 7) @ pol.w1 + pol.b1[:, None])
    assert torch.allclose(h1, expected, atol=1e-6)
    with pytest.raises(ValueError, match="layer"):
        hidden_activations(pol, obs, layer=3)
    with pytest.raises(ValueError, match="policy"):
        hidden_activations(torch.nn.Linear(7, 4), obs)
    with pytest.raises(ValueError, match="obs"):
        hidden_activations(pol, obs[:4])


def test_steering_shifts_the_layer_and_restores_exactly():
    pol = _policy()
    obs = torch.randn(3 * 6, 7, generator=torch.Generator().manual_seed(1))
    logits0, value0, _ = pol(obs)
    h1_0 = hidden_activations(pol, obs, layer=1)
    h2_0 = pol.features(obs)
    d = torch.randn(8, generator=torch.Generator().manual_seed(2))
    for layer in (1, 2):
        with steering(pol, d, 0.7, layer=layer) as same:
            assert same is pol
            h = hidden_activations(pol, obs, layer=layer)
            base = h1_0 if layer == 1 else h2_0
            assert torch.allclose(h, base + 0.7 * d, atol=1e-6)
            logits1, _, _ = pol(obs)
            assert not torch.allclose(logits1, logits0)
            if layer == 2:   # the policy head is linear: a constant shift of every state's logits
                shift = logits1 - logits0
                assert torch.allclose(shift.view(3, 6, 4), (0.7 * d @ pol.wpi)[:, None, :].expand(3, 6, 4), atol=1e-5)
        logits2, value2, _ = pol(obs)
        assert torch.equal(logits2, logits0) and torch.equal(value2, value0)    # bitwise the original
        assert "features" not in pol.__dict__
    # coefficient zero changes nothing
    with steering(pol, d, 0.0):
        assert torch.equal(pol(obs)[0], logits0)


def test_steering_per_agent_nested_and_exception_safe():
    pol = _policy()
    obs = torch.randn(3 * 4, 7, generator=torch.Generator().manual_seed(3))
    logits0 = pol(obs)[0]
    h1_0 = hidden_activations(pol, obs, layer=1)
    dirs = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    coef = [1.0, -2.0, 0.0]
    with steering(pol, dirs, coef):
        h = hidden_activations(pol, obs, layer=1)
        assert torch.allclose(h, h1_0 + torch.tensor(coef)[:, None, None] * dirs[:, None, :], atol=1e-6)
        assert torch.equal(h[2], h1_0[2])                                 # agent 2 is not steered
        assert torch.equal(pol(obs)[0].view(3, 4, 4)[2], logits0.view(3, 4, 4)[2])
    # nesting: the shifts add; closing the inner one leaves the outer one
    with steering(pol, dirs[0], 1.0):
        outer = pol(obs)[0]
        with steering(pol, dirs[1], 0.5, layer=2):
            with steering(pol, dirs[0], -1.0):
                both = hidden_activations(pol, obs, layer=1)
                assert torch.allclose(both, h1_0, atol=1e-6)
        assert torch.equal(pol(obs)[0], outer)
    assert torch.equal(pol(obs)[0], logits0)
    # an exception inside the block restores the policy too
    with pytest.raises(RuntimeError, match="boom"):
        with steering(pol, dirs, torch.tensor(coef)):
            raise RuntimeError("boom")
    assert torch.equal(pol(obs)[0], logits0) and "features" not in pol.__dict__
    # contexts closed out of order still restore the policy
    a, b = steering(pol, dirs[0], 1.0), steering(pol, dirs[1], 1.0)
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert torch.allclose(hidden_activations(pol, obs, layer=1), h1_0 + dirs[1], atol=1e-6)
    b.__exit__(None, None, None)
    assert torch.equal(pol(obs)[0], logits0)


def test_steering_bad_input():
    pol = _policy()
    d = torch.zeros(8)
    with pytest.raises(ValueError, match="policy"):
        with steering(torch.nn.Linear(3, 3), d, 1.0):
            pass
    with pytest.raises(ValueError, match="direction"):
        with steering(pol, torch.zeros(7), 1.0):
            pass
    with pytest.raises(ValueError, match="direction"):
        with steering(pol, torch.zeros(8, dtype=torch.long), 1.0):
            pass
    with pytest.raises(ValueError, match="direction"):
        with steering(pol, torch.full((8,), float("inf")), 1.0):
            pass
    with pytest.raises(ValueError, match="coefficient"):
        with steering(pol, d, [1.0, 2.0]):
            pass
    with pytest.raises(ValueError, match="coefficient"):
        with steering(pol, d, "big"):
            pass
    with pytest.raises(ValueError, match="coefficient"):
        with steering(pol, d, float("nan")):
            pass
    with pytest.raises(ValueError, match="layer"):
        with steering(pol, d, 1.0, layer=0):
            pass
    assert "features" not in pol.__dict__ and "_mesakit_steering" not in pol.__dict__
