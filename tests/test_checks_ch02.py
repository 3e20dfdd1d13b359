"""Workbook 2's checks: the references pass, a stub gets "not implemented yet", and every
known wrong answer is rejected with the hint that names its mistake (never a traceback).

The wrong variants are written here as a learner would write them, independently of the
diagnoses inside the checks."""
import math

import pytest
import torch

from mesakit import bandits, history_tasks, icl_regression, weather
from mesakit.checks import ch02
from check_testing import rejected, stub


def test_references_pass():
    assert ch02.check_ucb1_action(bandits.ucb1_action)
    assert ch02.check_thompson_action(bandits.thompson_action)
    assert ch02.check_sticky_bayes_predictor(weather.sticky_bayes_predictor)
    assert ch02.check_ridge_predict(icl_regression.ridge_predict)
    assert ch02.check_dmmse_predict(icl_regression.dmmse_predict)
    assert ch02.check_kv_cache_bytes(history_tasks.kv_cache_bytes)
    assert ch02.check_probe_r2(ch02.probe_r2)
    assert ch02.check_maml_inner_step(ch02.maml_inner_step)


@pytest.mark.parametrize("check", [getattr(ch02, name) for name in ch02.__all__], ids=ch02.__all__)
def test_stubs_are_not_implemented_yet(check, capsys):
    result = check(stub)
    assert not result and result.status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


def ucb(s, f, t, *, log=math.log, inner=lambda t: t, factor=2.0, untried=math.inf, pick=lambda row: row.argmax()):
    """A learner's UCB1, one bandit at a time, with switches for the usual slips."""
    n_bandits, k = s.shape
    ts = torch.as_tensor(t).expand(n_bandits)
    out = torch.zeros(n_bandits, dtype=torch.long)
    for i in range(n_bandits):
        score = torch.zeros(k, dtype=torch.float64)
        for a in range(k):
            n = float(s[i, a] + f[i, a])
            ti = float(ts[i])
            if n == 0:
                score[a] = untried
            else:
                score[a] = float(s[i, a]) / n + math.sqrt(factor * log(max(inner(ti), 1.0)) / n)
        out[i] = pick(score)
    return out


UCB_WRONG = {
    "log(t + 1)": (dict(inner=lambda t: t + 1), ["log(t + 1)"]),
    "no factor 2": (dict(factor=1.0), ["factor 2"]),
    "log base 2": (dict(log=math.log2), ["base 2"]),
    "log base 10": (dict(log=math.log10), ["base 10"]),
    "untried arms scored 0": (dict(untried=0.0), ["untried arm must be pulled"]),
    "last arm on ties": (dict(pick=lambda row: len(row) - 1 - row.flip(0).argmax()), ["picked the last arm"]),
}


@pytest.mark.parametrize("name", list(UCB_WRONG))
def test_ucb1_wrong_answers(name, capsys):
    kw, needles = UCB_WRONG[name]
    rejected(ch02.check_ucb1_action(lambda s, f, t: ucb(s, f, t, **kw)), capsys, "wrong answer", *needles)


def test_ucb1_loop_version_passes_and_float_output_is_named(capsys):
    assert ch02.check_ucb1_action(ucb)

    def as_float(s, f, t):
        return bandits.ucb1_action(s, f, t).float()
    rejected(ch02.check_ucb1_action(as_float), capsys, "expected an integer tensor")

    def greedy(s, f, t):  # no exploration bonus, untried arms first
        n = s + f
        return torch.where(n == 0, torch.full_like(s, math.inf), s / n.clamp_min(1)).argmax(1)
    rejected(ch02.check_ucb1_action(greedy), capsys, "wrong answer")


def test_thompson_wrong_answers(capsys):
    def no_prior(s, f, a, b, *, generator):
        return bandits.sample_beta(s + 1e-3, f + 1e-3, tuple(s.shape), generator=generator).argmax(1)
    rejected(ch02.check_thompson_action(no_prior), capsys, "wrong answer")

    def posterior_mean(s, f, a, b, *, generator):  # greedy on the posterior mean: no sampling
        return ((a + s) / (a + b + s + f)).argmax(1)
    rejected(ch02.check_thompson_action(posterior_mean), capsys, "wrong answer")

    def crashes(s, f, a, b, *, generator):
        return torch.distributions.Beta(a + s, b + f).sample(generator=generator).argmax(1)  # no such argument
    rejected(ch02.check_thompson_action(crashes), capsys, "your function raised")


THOMPSON_WRONG = {
    "Beta(b + f, a + s)": (lambda s, f, a, b, g: bandits.sample_beta(b + f, a + s, tuple(s.shape), generator=g).argmax(1),
                           ["successes go with prior_a"]),
    "argmin": (lambda s, f, a, b, g: bandits.sample_beta(a + s, b + f, tuple(s.shape), generator=g).argmin(1),
               ["smallest draw"]),
    "prior ignored": (lambda s, f, a, b, g: bandits.sample_beta(1 + s, 1 + f, tuple(s.shape), generator=g).argmax(1),
                      ["ignored the given prior"]),
    "draws [K, N]": (lambda s, f, a, b, g: bandits.sample_beta((a + s).T.contiguous(), (b + f).T.contiguous(),
                                                               (s.shape[1], s.shape[0]), generator=g).argmax(0),
                     ["shape [K, N]"]),
    "posterior mean": (lambda s, f, a, b, g: ((a + s) / (a + b + s + f)).argmax(1), ["largest posterior mean"]),
}


@pytest.mark.parametrize("name", list(THOMPSON_WRONG))
def test_thompson_named_mistakes(name, capsys):
    fn, needles = THOMPSON_WRONG[name]
    rejected(ch02.check_thompson_action(lambda s, f, a, b, *, generator: fn(s, f, a, b, generator)), capsys, *needles)


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
    rejected(ch02.check_sticky_bayes_predictor(peeks), capsys, "wrong answer")

    def coin(x, a, b):  # the coin world's predictor: right shape, wrong world
        return weather.coin_bayes_predictor(x, a, b)
    rejected(ch02.check_sticky_bayes_predictor(coin), capsys, "wrong answer", "coin world")


def sticky_loop(x, a, b, *, denominator=lambda t: t - 1, branch=lambda rained, q: q if rained else 1 - q,
                prior=lambda a, b: (a, b), dtype=torch.float64, day0=lambda a, b: 0.5):
    """A learner's sticky predictor, day by day, with switches for the usual slips."""
    a, b = prior(a, b)
    xs = x.reshape(-1, x.shape[-1])
    out = torch.zeros(xs.shape, dtype=dtype)
    for i in range(xs.shape[0]):
        out[i, 0] = day0(a, b)
        for t in range(1, xs.shape[1]):
            repeats = sum(int(xs[i, s] == xs[i, s - 1]) for s in range(1, t))
            q = (repeats + a) / (denominator(t) + a + b)
            out[i, t] = branch(bool(xs[i, t - 1]), q)
    return out.reshape(x.shape)


STICKY_WRONG = {
    "peeks at day t": (None, ["transition into day t"]),
    "t in the denominator": (dict(denominator=lambda t: t), ["denominator counts t transitions"]),
    "branches swapped": (dict(branch=lambda rained, q: 1 - q if rained else q), ["branches are swapped"]),
    "prior swapped": (dict(prior=lambda a, b: (b, a)), ["prior_a and prior_b are swapped"]),
    "day 0 from the prior": (dict(day0=lambda a, b: a / (a + b)), ["day 0 rains with probability 1/2"]),
}


@pytest.mark.parametrize("name", list(STICKY_WRONG))
def test_sticky_named_mistakes(name, capsys):
    kw, needles = STICKY_WRONG[name]
    if kw is None:
        def fn(x, a, b):
            xf = x.double()
            out = torch.full_like(xf, 0.5)
            same = (xf[..., 1:] == xf[..., :-1]).double()
            q = (same.cumsum(-1) + a) / (torch.arange(1, same.shape[-1] + 1) + a + b)
            out[..., 1:] = xf[..., :-1] * q + (1 - xf[..., :-1]) * (1 - q)
            return out
    else:
        def fn(x, a, b):
            return sticky_loop(x, a, b, **kw)
    rejected(ch02.check_sticky_bayes_predictor(fn), capsys, *needles)


def test_sticky_loop_version_passes_also_in_float32():
    assert ch02.check_sticky_bayes_predictor(sticky_loop)
    assert ch02.check_sticky_bayes_predictor(lambda x, a, b: sticky_loop(x, a, b, dtype=torch.float32))


def test_ridge_and_dmmse_wrong_answers(capsys):
    def least_squares(xs, ys, xq, lam):  # forgets the ridge term
        return icl_regression.ridge_predict(xs, ys, xq, 0.0)
    rejected(ch02.check_ridge_predict(least_squares), capsys, "wrong answer")

    def one_context(xs, ys, xq, lam):
        return icl_regression.ridge_predict(xs, ys, xq, lam)[:1]
    rejected(ch02.check_ridge_predict(one_context), capsys, "expected shape")

    def pool_average(xs, ys, xq, pool, noise):  # ignores the context
        return (xq @ pool.T).mean(-1)
    rejected(ch02.check_dmmse_predict(pool_average), capsys, "wrong answer")

    def unnormalized_exp(xs, ys, xq, pool, noise):  # exp then divide: 0/0 when the noise is small
        lik = torch.exp(-((ys.unsqueeze(-1) - xs @ pool.T) ** 2).sum(1) / (2 * noise ** 2))
        return (lik * (xq @ pool.T)).sum(-1) / lik.sum(-1)
    rejected(ch02.check_dmmse_predict(unnormalized_exp), capsys, "wrong answer", "contains NaN")


def ridge_loop(xs, ys, xq, lam, *, penalty=lambda lam, n, d: lam * torch.eye(d)):
    out = torch.zeros(xs.shape[0])
    for i in range(xs.shape[0]):
        X, y = xs[i], ys[i]
        w = torch.linalg.inv(X.T @ X + penalty(lam, X.shape[0], X.shape[1])) @ X.T @ y
        out[i] = w @ xq[i]
    return out


RIDGE_WRONG = {
    "no ridge term": (dict(penalty=lambda lam, n, d: torch.zeros(d, d)), ["without the ridge term"]),
    "lam times n": (dict(penalty=lambda lam, n, d: lam * n * torch.eye(d)), ["lam * n"]),
}


@pytest.mark.parametrize("name", list(RIDGE_WRONG))
def test_ridge_named_mistakes(name, capsys):
    kw, needles = RIDGE_WRONG[name]
    rejected(ch02.check_ridge_predict(lambda *a: ridge_loop(*a, **kw)), capsys, *needles)


def dmmse_loop(xs, ys, xq, pool, noise, *, choose="mean", denom=lambda s: 2 * s ** 2, reduce=torch.sum):
    """A learner's dMMSE, one context at a time."""
    out = torch.zeros(xs.shape[0])
    for i in range(xs.shape[0]):
        sq = reduce((ys[i][:, None] - xs[i] @ pool.T) ** 2, 0) if xs.shape[1] else torch.zeros(pool.shape[0])
        log_lik = -sq / denom(noise)
        preds = pool @ xq[i]
        if choose == "argmax":
            out[i] = preds[log_lik.argmax()]
        else:
            out[i] = (torch.softmax(log_lik, 0) * preds).sum()
    return out


DMMSE_WRONG = {
    "hard argmax": (dict(choose="argmax"), ["hard argmax", "posterior-weighted mean"]),
    "no factor 2": (dict(denom=lambda s: s ** 2), ["factor 2"]),
    "noise not squared": (dict(denom=lambda s: 2 * s), ["not by its square"]),
    "mean over the context": (dict(reduce=torch.mean), ["averaged the squared residuals"]),
}


@pytest.mark.parametrize("name", list(DMMSE_WRONG))
def test_dmmse_named_mistakes(name, capsys):
    kw, needles = DMMSE_WRONG[name]
    rejected(ch02.check_dmmse_predict(lambda *a: dmmse_loop(*a, **kw)), capsys, *needles)


def test_dmmse_softmax_over_the_batch_is_named(capsys):
    def batch_softmax(xs, ys, xq, pool, noise):
        log_lik = -((ys.unsqueeze(-1) - xs @ pool.T) ** 2).sum(1) / (2 * noise ** 2)
        return (torch.softmax(log_lik, dim=0) * (xq @ pool.T)).sum(-1)
    rejected(ch02.check_dmmse_predict(batch_softmax), capsys, "batch axis")


def test_dmmse_loop_version_passes_and_hard_argmax_is_far_off():
    assert ch02.check_dmmse_predict(dmmse_loop)
    xs, ys, xq, pool, noise = [c for c in ch02._dmmse_cases() if "spread" in c.hint][0].args
    gap = (dmmse_loop(xs, ys, xq, pool, noise, choose="argmax") - icl_regression.dmmse_predict(xs, ys, xq, pool, noise)).abs()
    assert float(gap.max()) > 1.0, "the spread-posterior case separates argmax from the posterior mean by a lot"


def test_kv_cache_wrong_answers(capsys):
    def keys_only(n_layers, d_model, length, *, batch=1, bytes_per_element=4):
        return n_layers * d_model * length * batch * bytes_per_element
    rejected(ch02.check_kv_cache_bytes(keys_only), capsys, "factor 0.5")

    def as_float(n_layers, d_model, length, *, batch=1, bytes_per_element=4):
        return float(history_tasks.kv_cache_bytes(n_layers, d_model, length, batch=batch,
                                                  bytes_per_element=bytes_per_element))
    rejected(ch02.check_kv_cache_bytes(as_float), capsys, "expected an int")

    def no_batch(n_layers, d_model, length):
        return 2 * n_layers * d_model * length * 4
    rejected(ch02.check_kv_cache_bytes(no_batch), capsys, "your function raised TypeError")


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
    rejected(ch02.check_maml_inner_step(descent), capsys, "wrong answer")

    def summed(logits, actions, rewards, lr):  # sum over pulls instead of the mean
        return ch02.maml_inner_step(logits, actions, rewards, lr * actions.shape[1])
    rejected(ch02.check_maml_inner_step(summed), capsys, "wrong answer")

    def detached(logits, actions, rewards, lr):
        return ch02.maml_inner_step(logits.detach(), actions, rewards, lr)
    rejected(ch02.check_maml_inner_step(detached), capsys, "do not depend on logits")


def test_maml_named_mistakes(capsys):
    def descent(logits, actions, rewards, lr):
        return ch02.maml_inner_step(logits, actions, rewards, -lr)
    rejected(ch02.check_maml_inner_step(descent), capsys, "stepped downhill")

    def summed(logits, actions, rewards, lr):
        return ch02.maml_inner_step(logits, actions, rewards, lr * actions.shape[1])
    rejected(ch02.check_maml_inner_step(summed), capsys, "summed over the pulls")

    def no_baseline(logits, actions, rewards, lr):
        onehot = torch.nn.functional.one_hot(actions, logits.shape[-1]).float()
        return logits + lr * (rewards.unsqueeze(-1) * onehot).mean(1)
    rejected(ch02.check_maml_inner_step(no_baseline), capsys, "left out the - softmax(logits) term")

    def batch_softmax(logits, actions, rewards, lr):
        probs = torch.softmax(logits, dim=0)
        onehot = torch.nn.functional.one_hot(actions, logits.shape[-1]).float()
        return logits + lr * (rewards.unsqueeze(-1) * (onehot - probs.unsqueeze(1))).mean(1)
    rejected(ch02.check_maml_inner_step(batch_softmax), capsys, "over the batch axis")


def probe(f_tr, y_tr, f_te, y_te, lam, *, centre=True, on="test", lam_on=True, denominator="test",
          ones_column=False, squared_correlation=False):
    """A learner's probe with switches for the usual slips (float64 throughout)."""
    f_tr, y_tr, f_te, y_te = (a.double() for a in (f_tr, y_tr, f_te, y_te))
    if ones_column:
        f_tr = torch.cat([f_tr, torch.ones(len(f_tr), 1, dtype=torch.float64)], 1)
        f_te = torch.cat([f_te, torch.ones(len(f_te), 1, dtype=torch.float64)], 1)
    mf = f_tr.mean(0) if centre and not ones_column else torch.zeros(f_tr.shape[1], dtype=torch.float64)
    my = y_tr.mean(0) if centre and not ones_column else torch.zeros(y_tr.shape[1], dtype=torch.float64)
    a = (f_tr - mf).T @ (f_tr - mf) + (lam if lam_on else 0.0) * torch.eye(f_tr.shape[1], dtype=torch.float64)
    w = torch.linalg.pinv(a) @ (f_tr - mf).T @ (y_tr - my)
    f, y = (f_te, y_te) if on == "test" else (f_tr, y_tr)
    pred = (f - mf) @ w + my
    if squared_correlation:
        return torch.stack([torch.corrcoef(torch.stack([pred[:, j], y[:, j]]))[0, 1] ** 2 for j in range(y.shape[1])])
    centre_y = y.mean(0) if denominator == "test" else y_tr.mean(0)
    return 1 - ((y - pred) ** 2).sum(0) / ((y - centre_y) ** 2).sum(0)


PROBE_WRONG = {
    "scored on the training rows": (dict(on="train"), ["rows it was fit on"]),
    "no intercept": (dict(centre=False), ["no intercept"]),
    "penalized intercept": (dict(ones_column=True), ["inside the ridge penalty"]),
    "no ridge term": (dict(lam_on=False), ["without the ridge term"]),
    "training mean in the denominator": (dict(denominator="train"), ["used the training mean"]),
    "squared correlation": (dict(squared_correlation=True), ["squared correlation"]),
}


def test_probe_learner_version_passes():
    assert ch02.check_probe_r2(probe)


@pytest.mark.parametrize("name", list(PROBE_WRONG))
def test_probe_named_mistakes(name, capsys):
    kw, needles = PROBE_WRONG[name]
    rejected(ch02.check_probe_r2(lambda *a: probe(*a, **kw)), capsys, *needles)


def test_probe_reference_matches_least_squares_with_an_intercept():
    gen = torch.Generator().manual_seed(3)
    f = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    y = f @ torch.randn(5, 2, generator=gen, dtype=torch.float64) + 4.0
    r2 = ch02.probe_r2(f, y, f, y, 0.0)
    assert torch.allclose(r2, torch.ones(2, dtype=torch.float64), atol=1e-10)
    noise = torch.randn(200, 2, generator=gen, dtype=torch.float64)
    assert bool((ch02.probe_r2(f, noise, f, noise[torch.randperm(200, generator=gen)], 1.0) < 0.1).all())
