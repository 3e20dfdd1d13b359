"""Workbook 2's checks: the references pass, a stub gets "not implemented yet", and
realistic wrong answers get a hint (never a traceback)."""
import math

import pytest
import torch

from mesakit import bandits, history_tasks, icl_regression, weather
from mesakit.checks import ch02


def stub(*args, **kwargs):
    raise NotImplementedError()


def wrong(result, capsys, *needles):
    out = capsys.readouterr().out
    assert not result and result.status == "failed", out
    assert "Hint:" in out
    for needle in needles:
        assert needle in out, out


def test_references_pass():
    assert ch02.check_ucb1_action(bandits.ucb1_action)
    assert ch02.check_thompson_action(bandits.thompson_action)
    assert ch02.check_sticky_bayes_predictor(weather.sticky_bayes_predictor)
    assert ch02.check_ridge_predict(icl_regression.ridge_predict)
    assert ch02.check_dmmse_predict(icl_regression.dmmse_predict)
    assert ch02.check_kv_cache_bytes(history_tasks.kv_cache_bytes)
    assert ch02.check_maml_inner_step(ch02.maml_inner_step)


@pytest.mark.parametrize("check", [getattr(ch02, name) for name in ch02.__all__], ids=ch02.__all__)
def test_stubs_are_not_implemented_yet(check, capsys):
    result = check(stub)
    assert not result and result.status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


def test_ucb1_wrong_answers(capsys):
    def no_factor_two(s, f, t):
        n = s + f
        score = s / n.clamp_min(1) + torch.sqrt(math.log(max(float(torch.as_tensor(t).max()), 1)) / n.clamp_min(1))
        return torch.where(n == 0, torch.full_like(score, math.inf), score).argmax(1)
    wrong(ch02.check_ucb1_action(no_factor_two), capsys, "wrong answer")

    def greedy(s, f, t):  # no exploration bonus, untried arms first
        n = s + f
        return torch.where(n == 0, torch.full_like(s, math.inf), s / n.clamp_min(1)).argmax(1)
    wrong(ch02.check_ucb1_action(greedy), capsys, "wrong answer")

    def as_float(s, f, t):
        return bandits.ucb1_action(s, f, t).float()
    wrong(ch02.check_ucb1_action(as_float), capsys, "expected an integer tensor")


def test_thompson_wrong_answers(capsys):
    def no_prior(s, f, a, b, *, generator):
        return bandits.sample_beta(s + 1e-3, f + 1e-3, tuple(s.shape), generator=generator).argmax(1)
    wrong(ch02.check_thompson_action(no_prior), capsys, "wrong answer")

    def posterior_mean(s, f, a, b, *, generator):  # greedy on the posterior mean: no sampling
        return ((a + s) / (a + b + s + f)).argmax(1)
    wrong(ch02.check_thompson_action(posterior_mean), capsys, "wrong answer")

    def crashes(s, f, a, b, *, generator):
        return torch.distributions.Beta(a + s, b + f).sample(generator=generator).argmax(1)  # no such argument
    wrong(ch02.check_thompson_action(crashes), capsys, "your function raised")


def test_sticky_wrong_answers(capsys):
    def peeks(x, a, b):  # counts the transition into day t too: uses the answer
        xf = x.double()
        out = torch.full_like(xf, 0.5)
        same = (xf[..., 1:] == xf[..., :-1]).double()
        n = torch.arange(1, same.shape[-1] + 1, dtype=torch.float64)
        q = (same.cumsum(-1) + a) / (n + a + b)
        prev = xf[..., :-1]
        out[..., 1:] = prev * q + (1 - prev) * (1 - q)
        return out
    wrong(ch02.check_sticky_bayes_predictor(peeks), capsys, "wrong answer")

    def coin(x, a, b):  # the coin world's predictor: right shape, wrong world
        return weather.coin_bayes_predictor(x, a, b)
    wrong(ch02.check_sticky_bayes_predictor(coin), capsys, "wrong answer")


def test_ridge_and_dmmse_wrong_answers(capsys):
    def least_squares(xs, ys, xq, lam):  # forgets the ridge term
        return icl_regression.ridge_predict(xs, ys, xq, 0.0)
    wrong(ch02.check_ridge_predict(least_squares), capsys, "wrong answer")

    def one_context(xs, ys, xq, lam):
        return icl_regression.ridge_predict(xs, ys, xq, lam)[:1]
    wrong(ch02.check_ridge_predict(one_context), capsys, "expected shape")

    def pool_average(xs, ys, xq, pool, noise):  # ignores the context
        return (xq @ pool.T).mean(-1)
    wrong(ch02.check_dmmse_predict(pool_average), capsys, "wrong answer")

    def unnormalized_exp(xs, ys, xq, pool, noise):  # exp then divide: 0/0 when the noise is small
        lik = torch.exp(-((ys.unsqueeze(-1) - xs @ pool.T) ** 2).sum(1) / (2 * noise ** 2))
        return (lik * (xq @ pool.T)).sum(-1) / lik.sum(-1)
    wrong(ch02.check_dmmse_predict(unnormalized_exp), capsys, "wrong answer")


def test_kv_cache_wrong_answers(capsys):
    def keys_only(n_layers, d_model, length, *, batch=1, bytes_per_element=4):
        return n_layers * d_model * length * batch * bytes_per_element
    wrong(ch02.check_kv_cache_bytes(keys_only), capsys, "factor 0.5")

    def as_float(n_layers, d_model, length, *, batch=1, bytes_per_element=4):
        return float(history_tasks.kv_cache_bytes(n_layers, d_model, length, batch=batch,
                                                  bytes_per_element=bytes_per_element))
    wrong(ch02.check_kv_cache_bytes(as_float), capsys, "expected an int")

    def no_batch(n_layers, d_model, length):
        return 2 * n_layers * d_model * length * 4
    wrong(ch02.check_kv_cache_bytes(no_batch), capsys, "your function raised TypeError")


def test_maml_reference_is_the_autograd_gradient():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=gen, requires_grad=True)
    actions = torch.randint(0, 3, (6, 4), generator=gen)
    rewards = (torch.rand(6, 4, generator=gen) < 0.5).float()
    objective = (rewards * torch.log_softmax(logits, -1).gather(1, actions)).mean(1).sum()
    (grad,) = torch.autograd.grad(objective, logits)
    adapted = ch02.maml_inner_step(logits, actions, rewards, 0.7)
    assert torch.allclose(adapted, logits + 0.7 * grad, atol=1e-6)
    assert adapted.requires_grad


def test_maml_wrong_answers(capsys):
    def descent(logits, actions, rewards, lr):
        return ch02.maml_inner_step(logits, actions, rewards, -lr)
    wrong(ch02.check_maml_inner_step(descent), capsys, "wrong answer")

    def summed(logits, actions, rewards, lr):  # sum over pulls instead of the mean
        return ch02.maml_inner_step(logits, actions, rewards, lr * actions.shape[1])
    wrong(ch02.check_maml_inner_step(summed), capsys, "wrong answer")

    def detached(logits, actions, rewards, lr):
        return ch02.maml_inner_step(logits.detach(), actions, rewards, lr)
    wrong(ch02.check_maml_inner_step(detached), capsys, "do not depend on logits")
