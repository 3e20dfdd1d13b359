"""Checks for Workbook 2 (Mesa-learning).

Each ``check_*`` runs the learner's function and the mesakit reference on the same seeded
inputs and prints a pass, a hint or "not implemented yet"; it returns a
:class:`~mesakit.checks.CheckResult` (truthy only on a pass).

The challenge exercise's reference, :func:`maml_inner_step`, lives here because no
mesakit module needs it.
"""
from __future__ import annotations

import torch

from .. import bandits, history_tasks, icl_regression, weather
from .core import Case, CheckResult, compare_tensors, run_check

__all__ = [
    "check_ucb1_action",
    "check_thompson_action",
    "check_sticky_bayes_predictor",
    "check_ridge_predict",
    "check_dmmse_predict",
    "check_kv_cache_bytes",
    "check_maml_inner_step",
]


# ----------------------------------------------------------------------------- bandits

def _count_cases(seed: int) -> list[Case]:
    """Counts ``(successes, failures)`` of a few sizes, some with untried arms and ties."""
    gen = torch.Generator().manual_seed(seed)
    cases = [Case((torch.zeros(3, 2), torch.zeros(3, 2)), description="3 bandits before the first pull"),
             Case((torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]])),
                  description="one bandit with an untried arm (arm 1)"),
             Case((torch.tensor([[2.0, 2.0], [3.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, 3.0]])),
                  description="a tie, and equal means with unequal pulls")]
    for n, k, most in ((16, 2, 6), (64, 3, 10), (128, 5, 30)):
        s = torch.randint(0, most, (n, k), generator=gen).float()
        f = torch.randint(0, most, (n, k), generator=gen).float()
        f[s + f == 0] = 1.0          # every arm tried: the bonus decides
        cases.append(Case((s, f), description=f"{n} bandits with {k} arms, every arm tried"))
    return cases


def check_ucb1_action(fn) -> CheckResult:
    """``fn(successes, failures, t) -> actions`` (long ``[N]``), UCB1: untried arms first
    (lowest index), then the argmax of ``mean + sqrt(2 ln t / n_arm)``."""
    cases = []
    for case in _count_cases(0):
        s, f = case.args
        t = int((s + f)[0].sum())
        cases.append(Case((s, f, t), description=case.description + f", t = {t}"))
    s, f = _count_cases(1)[-1].args
    cases.append(Case((s, f, (s + f).sum(1)), description="t given as a tensor [N], one per bandit"))
    return run_check(
        "ucb1_action", fn, bandits.ucb1_action, cases, compare=compare_tensors(dtype_kind="int"),
        hint="score = successes / pulls + sqrt(2 * log(t) / pulls) with pulls = successes + failures "
             "(t broadcast as a column if it is a tensor); give untried arms (pulls == 0) the score inf "
             "(torch.where) so the lowest-index untried arm wins, and return score.argmax(1).")


def check_thompson_action(fn) -> CheckResult:
    """``fn(successes, failures, prior_a, prior_b, *, generator) -> actions`` (long
    ``[N]``). Learner and reference each get their own generator with the same seed, so
    the draws match when both call ``bandits.sample_beta`` once, with shape ``[N, K]``."""
    cases = []
    for i, (case, (a, b)) in enumerate(zip(_count_cases(2), [(1.0, 1.0), (1.0, 1.0), (2.0, 1.0), (1.0, 1.0),
                                                            (0.5, 0.5), (1.0, 3.0)])):
        s, f = case.args
        cases.append(Case((s, f, a, b, 100 + i), description=case.description + f", prior Beta({a}, {b})"))

    def seeded(function):
        # A torch.Generator is not cloned between calls, so each side gets a fresh one.
        def call(successes, failures, prior_a, prior_b, seed):
            return function(successes, failures, prior_a, prior_b, generator=torch.Generator().manual_seed(seed))
        return call

    return run_check(
        "thompson_action", seeded(fn), seeded(bandits.thompson_action), cases,
        compare=compare_tensors(dtype_kind="int"),
        hint="draw all arms at once, theta = bandits.sample_beta(prior_a + successes, prior_b + failures, "
             "tuple(successes.shape), generator=generator), and return theta.argmax(1); one call with the "
             "given generator, no other random draws, so your draws match the reference's.")


# ----------------------------------------------------------------------------- weather

def check_sticky_bayes_predictor(fn) -> CheckResult:
    """``fn(x, prior_a, prior_b) -> p``, the sticky world's Bayes predictor: ``p[..., 0]
    = 0.5``, then the posterior mean of the stickiness decides whether to repeat."""
    gen = torch.Generator().manual_seed(3)
    cases = [Case((torch.tensor([1]), 1.0, 1.0), description="a single day"),
             Case((torch.tensor([1, 1, 0]), 1.0, 1.0), description="the days rain, rain, sun"),
             Case((torch.tensor([[0, 0, 0, 0, 0], [1, 0, 1, 0, 1]]), 1.0, 1.0),
                  description="an all-sunny and an alternating sequence")]
    for i, (b, T, pa, pb) in enumerate([(8, 12, 1.0, 1.0), (32, 30, 2.0, 0.5), (16, 20, 0.5, 3.0)]):
        x = (torch.rand(b, T, generator=gen) < 0.5).long()
        cases.append(Case((x, pa, pb), description=f"{b} random sequences of {T} days, prior Beta({pa}, {pb})"))
    return run_check(
        "sticky_bayes_predictor", fn, weather.sticky_bayes_predictor, cases, compare=compare_tensors(atol=1e-9),
        hint="day 0 gets 0.5; for day t >= 1 count the repeats (x[s] == x[s-1]) among the transitions "
             "s = 1 .. t-1 only (not the one into day t), set q = (repeats + prior_a) / (t - 1 + prior_a + prior_b), "
             "and predict q if day t-1 rained, else 1 - q (cumsum over the last axis avoids a loop).")


# -------------------------------------------------------------------- in-context regression

def _regression_cases(seed: int) -> list[tuple]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for b, n, d in ((1, 1, 1), (4, 3, 5), (32, 10, 4), (64, 16, 8)):
        w = torch.randn(b, d, generator=gen)
        xs = torch.randn(b, n, d, generator=gen)
        ys = (xs @ w.unsqueeze(-1)).squeeze(-1) + 0.25 * torch.randn(b, n, generator=gen)
        out.append((xs, ys, torch.randn(b, d, generator=gen), f"{b} contexts of {n} pairs in d = {d}"))
    return out


def check_ridge_predict(fn) -> CheckResult:
    """``fn(xs, ys, x_query, lam) -> predictions [batch]``, ridge regression per context."""
    cases = [Case((xs, ys, xq, lam), description=f"{desc}, lam = {lam}")
             for (xs, ys, xq, desc), lam in zip(_regression_cases(4), (1.0, 0.5, 0.0625, 2.0))]
    return run_check(
        "ridge_predict", fn, icl_regression.ridge_predict, cases, compare=compare_tensors(atol=1e-4, rtol=1e-4),
        hint="per context, w_hat = (X^T X + lam I)^-1 X^T y with X = xs [batch, n, d] (batched: xs.transpose(1, 2) @ xs, "
             "torch.linalg.solve), and the prediction is (w_hat * x_query).sum(-1), one number per context.")


def check_dmmse_predict(fn) -> CheckResult:
    """``fn(xs, ys, x_query, task_pool, noise_std) -> predictions [batch]``, the Bayes
    prediction under a uniform prior over the pool's tasks."""
    cases = []
    for i, ((xs, ys, xq, desc), (m, noise)) in enumerate(zip(_regression_cases(5), ((1, 0.5), (3, 0.5), (8, 0.25), (64, 0.05)))):
        pool = torch.randn(m, xs.shape[-1], generator=torch.Generator().manual_seed(50 + i))
        cases.append(Case((xs, ys, xq, pool, noise), description=f"{desc}, {m} pool tasks, noise_std {noise}"))
    return run_check(
        "dmmse_predict", fn, icl_regression.dmmse_predict, cases, compare=compare_tensors(atol=1e-4, rtol=1e-4),
        hint="log-likelihood of pool task m: -sum_j (y_j - w_m . x_j)^2 / (2 noise_std^2) (shape [batch, M]); "
             "posterior = torch.softmax of it over the pool axis (safe where exp would underflow); predict "
             "sum_m posterior_m * (w_m . x_query).")


# ----------------------------------------------------------------------------- memory

def check_kv_cache_bytes(fn) -> CheckResult:
    """``fn(n_layers, d_model, length, *, batch, bytes_per_element) -> int`` bytes."""
    settings = [(1, 8, 1, 1, 4), (2, 64, 100, 1, 4), (12, 768, 1024, 1, 2), (4, 256, 4096, 8, 4), (32, 4096, 8192, 16, 2)]
    cases = [Case((layers, d, t), dict(batch=b, bytes_per_element=e),
                  description=f"{layers} layers, d_model {d}, {t} tokens, batch {b}, {e} bytes per number")
             for layers, d, t, b, e in settings]

    def compare(got, expected):
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            got = int(got)
        if isinstance(got, bool) or not isinstance(got, int):
            return f"expected an int number of bytes, got {type(got).__name__} {got!r}"
        if got != expected:
            ratio = got / expected
            return f"got {got:,} bytes, expected {expected:,} (you are off by a factor {ratio:g})"
        return None

    return run_check(
        "kv_cache_bytes", fn, history_tasks.kv_cache_bytes, cases, compare=compare,
        hint="each token leaves one key AND one value vector of d_model numbers in every layer, for every "
             "sequence of the batch: 2 * n_layers * batch * length * d_model * bytes_per_element (an int).")


# ----------------------------------------------------------------------------- MAML

def maml_inner_step(logits: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, lr) -> torch.Tensor:
    """One inner-loop step of MAML (Finn et al. 2017) for a memoryless softmax policy over
    arms: gradient *ascent*, with step size ``lr``, on the REINFORCE objective of the pulls
    seen so far, ``J(logits) = mean_t rewards[t] * log softmax(logits)[actions[t]]``.

    Its gradient is ``mean_t rewards[t] * (onehot(actions[t]) - softmax(logits))``, so the
    step raises the logits of arms that paid. ``logits`` float ``[N, K]``, ``actions`` long
    ``[N, m]``, ``rewards`` float ``[N, m]`` (0/1), ``lr`` a number or a tensor that
    broadcasts (a 0-d tensor lets the outer loop learn it). Differentiable in ``logits``
    and ``lr``; returns the adapted logits ``[N, K]``."""
    probs = torch.softmax(logits, dim=-1)
    onehot = torch.nn.functional.one_hot(actions.long(), logits.shape[-1]).to(logits.dtype)   # [N, m, K]
    grad = (rewards.to(logits.dtype).unsqueeze(-1) * (onehot - probs.unsqueeze(1))).mean(1)
    return logits + lr * grad


def check_maml_inner_step(fn) -> CheckResult:
    """``fn(logits, actions, rewards, lr) -> adapted logits [N, K]``, differentiable."""
    gen = torch.Generator().manual_seed(7)
    cases = [Case((torch.zeros(1, 2), torch.tensor([[0, 1]]), torch.tensor([[1.0, 0.0]]), 1.0),
                  description="uniform policy, arm 0 paid and arm 1 did not")]
    for n, k, m, lr in ((4, 2, 3, 0.5), (32, 3, 5, 4.0), (64, 5, 8, torch.tensor(2.5))):
        logits = torch.randn(n, k, generator=gen)
        actions = torch.randint(0, k, (n, m), generator=gen)
        rewards = (torch.rand(n, m, generator=gen) < 0.5).float()
        cases.append(Case((logits.requires_grad_(), actions, rewards, lr),
                          description=f"{n} policies over {k} arms after {m} pulls, lr {float(lr)}"))
    values = compare_tensors(atol=1e-5)

    def compare(got, expected):
        if isinstance(got, torch.Tensor) and expected.requires_grad and not got.requires_grad:
            return ("the adapted logits do not depend on logits through autograd (no .detach(), .item(), "
                    "torch.no_grad() or in-place edits): the outer loop differentiates through your step")
        return values(got, expected)

    return run_check(
        "maml_inner_step", fn, maml_inner_step, cases, compare=compare,
        hint="probs = softmax(logits); the gradient is the mean over pulls of reward * (one_hot(action) - probs) "
             "(shape [N, K]); return logits + lr * gradient (ascent: we maximize reward).")
