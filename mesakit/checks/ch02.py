"""Checks for Workbook 2 (Mesa-learning).

Each ``check_*`` runs the learner's function and the mesakit reference on the same seeded
inputs and prints a pass, a hint or "not implemented yet"; it returns a
:class:`~mesakit.checks.CheckResult` (truthy only on a pass).

The cases are built to separate the common wrong answers from the right one (bandit
states where the exact form of the exploration bonus decides, contexts whose posterior
over the pool is spread out, ties, empty contexts), and each known wrong variant has a
diagnosis, so the hint names the mistake (``tests/test_checks_ch02.py`` feeds every one).

Two references live here because no mesakit module needs them: :func:`probe_r2`, the
linear probe of Exercise 7, and :func:`maml_inner_step`, the challenge's inner step.
"""
from __future__ import annotations

import math

import torch

from .. import bandits, history_tasks, icl_regression, weather
from .core import Case, CheckResult, compare_tensors, run_check, same_as
# Not a check (so not in __all__): the hidden tests write `checks.forbid_reference(...)`.
from .core import forbid_reference  # noqa: F401

__all__ = [
    "check_ucb1_action",
    "check_thompson_action",
    "check_sticky_bayes_predictor",
    "check_ridge_predict",
    "check_dmmse_predict",
    "check_kv_cache_bytes",
    "check_probe_r2",
    "check_maml_inner_step",
]

_INT = compare_tensors(dtype_kind="int")


def _nan_diagnosis(got, args, kwargs) -> str | None:
    if isinstance(got, torch.Tensor) and got.is_floating_point() and bool(torch.isnan(got).any()):
        return ("your answer contains NaN: exponentials that underflow to 0 give 0/0. Work with logarithms "
                "(torch.softmax or torch.logsumexp on the log-likelihoods) instead of dividing by a sum of exp.")
    return None


# ----------------------------------------------------------------------------- bandits

def _count_cases(seed: int) -> list[Case]:
    """Counts ``(successes, failures)`` of a few sizes, some with untried arms and ties."""
    gen = torch.Generator().manual_seed(seed)
    cases = [Case((torch.zeros(3, 2), torch.zeros(3, 2)), description="3 bandits before the first pull"),
             Case((torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]])),
                  description="one bandit with an untried arm (arm 1)", hint="that untried arms go first"),
             Case((torch.tensor([[2.0, 2.0], [3.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, 3.0]])),
                  description="a tie, and equal means with unequal pulls", hint="the tie rule: the lowest index")]
    for n, k, most in ((16, 2, 6), (64, 3, 10), (128, 5, 30)):
        s = torch.randint(0, most, (n, k), generator=gen).float()
        f = torch.randint(0, most, (n, k), generator=gen).float()
        f[s + f == 0] = 1.0          # every arm tried: the bonus decides
        cases.append(Case((s, f), description=f"{n} bandits with {k} arms, every arm tried"))
    return cases


def _ucb_variant(*, log=torch.log, shift: float = 0.0, factor: float = 2.0, untried_first: bool = True,
                 last_on_ties: bool = False):
    """UCB1 with one mistake switched on (the defaults are right): ``log(t + shift)``,
    another factor under the root, untried arms not forced first, ties to the last arm."""
    def ucb(successes, failures, t):
        pulls = successes + failures
        t = torch.as_tensor(t, dtype=torch.float64).expand(pulls.shape[0])[:, None]
        safe = pulls.double().clamp_min(1.0)
        score = successes / safe + torch.sqrt(factor * log((t + shift).clamp_min(1.0)) / safe)
        if untried_first:
            score = torch.where(pulls == 0, torch.full_like(score, math.inf), score)
        if last_on_ties:
            return score.shape[1] - 1 - score.flip(1).argmax(1)
        return score.argmax(1)
    return ucb


_UCB_VARIANTS = [
    (dict(shift=1.0), "you used log(t + 1); the bound is mean + sqrt(2 ln t / n_k) with t itself, the pulls "
                      "made so far."),
    (dict(factor=1.0), "the factor 2 under the square root is missing: sqrt(2 * ln(t) / n_k)."),
    (dict(log=torch.log2), "you used log base 2; ln is the natural logarithm (torch.log)."),
    (dict(log=torch.log10), "you used log base 10; ln is the natural logarithm (torch.log)."),
    (dict(untried_first=False), "an untried arm must be pulled before any arm is pulled twice: give arms with "
                                "n_k = 0 the score inf (torch.where), so the lowest-index untried arm wins."),
    (dict(last_on_ties=True), "on a tie you picked the last arm; ties go to the lowest index (argmax does it)."),
]


def _bonus_sensitive_case() -> Case:
    """Bandit states, every arm tried, where UCB1's choice changes under each wrong form
    of the bonus: drawn at random and kept only where some variant disagrees."""
    gen = torch.Generator().manual_seed(31)
    s = torch.randint(0, 8, (8192, 3), generator=gen).double()
    f = torch.randint(0, 8, (8192, 3), generator=gen).double()
    f[s + f == 0] = 1.0
    t = (s + f).sum(1)
    right = _ucb_variant()(s, f, t)
    keep = torch.zeros(8192, dtype=torch.bool)
    for kw, _ in _UCB_VARIANTS:
        differs = (_ucb_variant(**kw)(s, f, t) != right).nonzero().flatten()
        keep[differs[:16]] = True
    rows = keep.nonzero().flatten()
    return Case((s[rows].float(), f[rows].float(), t[rows].long()),
                description=f"{rows.numel()} bandits of 3 arms where the exact form of the bonus decides",
                hint="the exact bound mean + sqrt(2 ln t / n_k)")


def check_ucb1_action(fn) -> CheckResult:
    """``fn(successes, failures, t) -> actions`` (long ``[N]``), UCB1: untried arms first
    (lowest index), then the argmax of ``mean + sqrt(2 ln t / n_arm)``."""
    cases = []
    for case in _count_cases(0):
        s, f = case.args
        t = int((s + f)[0].sum())
        cases.append(Case((s, f, t), description=case.description + f", t = {t}", hint=case.hint))
    cases.append(_bonus_sensitive_case())
    s, f = _count_cases(1)[-1].args
    cases.append(Case((s, f, (s + f).sum(1)), description="t given as a tensor [N], one per bandit"))
    return run_check(
        "ucb1_action", fn, bandits.ucb1_action, cases, compare=_INT,
        diagnoses=[same_as(_ucb_variant(**kw), text, _INT) for kw, text in _UCB_VARIANTS],
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

    def swapped(s, f, a, b, *, generator):
        return bandits.sample_beta(b + f, a + s, tuple(s.shape), generator=generator).argmax(1)

    def lowest(s, f, a, b, *, generator):
        return bandits.sample_beta(a + s, b + f, tuple(s.shape), generator=generator).argmin(1)

    def uniform_prior(s, f, a, b, *, generator):
        return bandits.sample_beta(1.0 + s, 1.0 + f, tuple(s.shape), generator=generator).argmax(1)

    def transposed(s, f, a, b, *, generator):
        return bandits.sample_beta((a + s).T, (b + f).T, tuple(s.T.shape), generator=generator).T.argmax(1)

    def posterior_mean(s, f, a, b, *, generator):
        return ((a + s) / (a + b + s + f)).argmax(1)

    diagnoses = [same_as(seeded(v), text, _INT) for v, text in [
        (swapped, "you drew from Beta(prior_b + failures, prior_a + successes): successes go with prior_a, "
                  "as Beta(prior_a + successes, prior_b + failures)."),
        (lowest, "you pulled the arm with the smallest draw; Thompson sampling pulls the largest (argmax)."),
        (uniform_prior, "you ignored the given prior and used Beta(1, 1); use prior_a and prior_b."),
        (transposed, "your draws were made with shape [K, N]; draw with shape [N, K], tuple(successes.shape), "
                     "so the random numbers land on the same arms as the reference's."),
        (posterior_mean, "you pulled the arm with the largest posterior mean: that is greedy, not Thompson "
                         "sampling, which pulls the arm with the largest random draw from each posterior."),
    ]]
    return run_check(
        "thompson_action", seeded(fn), seeded(bandits.thompson_action), cases,
        compare=_INT, diagnoses=diagnoses,
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
    cases.append(Case((torch.tensor([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0]]), 3.0, 0.5),
                      description="two short sequences under the prior Beta(3, 0.5)",
                      hint="how the prior's two numbers enter q"))
    for i, (b, T, pa, pb) in enumerate([(8, 12, 1.0, 1.0), (32, 30, 2.0, 0.5), (16, 20, 0.5, 3.0)]):
        x = (torch.rand(b, T, generator=gen) < 0.5).long()
        cases.append(Case((x, pa, pb), description=f"{b} random sequences of {T} days, prior Beta({pa}, {pb})"))
    compare = compare_tensors(atol=1e-9)

    def variant(*, peek=False, denominator_t=False, swap_branches=False, swap_prior=False, day0_prior=False):
        def predict(x, a, b):
            if swap_prior:
                a, b = b, a
            xf = x.double()
            p = torch.full_like(xf, a / (a + b) if day0_prior else 0.5)
            if x.shape[-1] > 1:
                same = (xf[..., 1:] == xf[..., :-1]).double()
                repeats = same.cumsum(-1) - (0 if peek else same)
                seen = torch.arange(same.shape[-1], dtype=torch.float64) + (1 if denominator_t or peek else 0)
                q = (repeats + a) / (seen + a + b)
                prev = xf[..., :-1]
                if swap_branches:
                    prev = 1 - prev
                p[..., 1:] = prev * q + (1 - prev) * (1 - q)
            return p
        return predict

    diagnoses = [
        same_as(variant(peek=True), "you counted the transition into day t, which uses the day being predicted; "
                                    "count only the t - 1 transitions before it.", compare),
        same_as(variant(denominator_t=True), "the denominator counts t transitions; before day t there are t - 1: "
                                             "q = (repeats + a) / ((t - 1) + a + b).", compare),
        same_as(variant(swap_branches=True), "the branches are swapped: after a rainy day predict rain with "
                                             "probability q (the weather repeats), after a sunny day 1 - q.", compare),
        same_as(variant(swap_prior=True), "prior_a and prior_b are swapped: prior_a counts as repeats, "
                                          "q = (repeats + prior_a) / (seen + prior_a + prior_b).", compare),
        same_as(variant(day0_prior=True), "day 0 rains with probability 1/2 whatever the stickiness: p[..., 0] "
                                          "= 0.5.", compare),
        same_as(lambda x, a, b: weather.coin_bayes_predictor(x, a, b),
                "that is the coin world's predictor (it counts rainy days); the sticky world counts repeats.",
                compare),
    ]
    return run_check(
        "sticky_bayes_predictor", fn, weather.sticky_bayes_predictor, cases, compare=compare, diagnoses=diagnoses,
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
    gen = torch.Generator().manual_seed(44)
    xs, xq = torch.randn(16, 3, 6, generator=gen), torch.randn(16, 6, generator=gen)
    cases.append(Case((xs, torch.randn(16, 3, generator=gen), xq, 4.0),
                      description="16 contexts of 3 pairs in d = 6 (fewer pairs than dimensions), lam = 4",
                      hint="where the ridge term matters most: more dimensions than pairs"))
    compare = compare_tensors(atol=1e-4, rtol=1e-4)

    def variant(*, scale_n=False, no_lam=False):
        def predict(xs, ys, xq, lam):
            n, d = xs.shape[1], xs.shape[2]
            gram = xs.transpose(1, 2) @ xs
            if no_lam:
                return icl_regression.ridge_predict(xs, ys, xq, 0.0)
            gram = gram + (lam * n if scale_n else lam) * torch.eye(d)
            w = torch.linalg.solve(gram, xs.transpose(1, 2) @ ys.unsqueeze(-1)).squeeze(-1)
            return (w * xq).sum(-1)
        return predict

    diagnoses = [
        same_as(variant(no_lam=True), "that is least squares without the ridge term: add lam * I to X^T X.", compare),
        same_as(variant(scale_n=True), "you added lam * n (times the number of pairs); the ridge term is lam * I.",
                compare),
    ]
    return run_check(
        "ridge_predict", fn, icl_regression.ridge_predict, cases, compare=compare, diagnoses=diagnoses,
        hint="per context, w_hat = (X^T X + lam I)^-1 X^T y with X = xs [batch, n, d] (batched: xs.transpose(1, 2) @ xs, "
             "torch.linalg.solve), and the prediction is (w_hat * x_query).sum(-1), one number per context.")


def _dmmse_cases() -> list[Case]:
    cases = []
    for i, ((xs, ys, xq, desc), (m, noise)) in enumerate(zip(_regression_cases(5), ((1, 0.5), (3, 0.5), (8, 0.25), (64, 0.05)))):
        pool = torch.randn(m, xs.shape[-1], generator=torch.Generator().manual_seed(50 + i))
        cases.append(Case((xs, ys, xq, pool, noise), description=f"{desc}, {m} pool tasks, noise_std {noise}"))
    # Contexts that leave the posterior spread over the pool, where a hard choice of one
    # task is far from the posterior mean.
    gen = torch.Generator().manual_seed(58)
    pool = torch.randn(6, 4, generator=gen)
    tasks = pool[torch.randint(0, 6, (64,), generator=gen)]
    xs = torch.randn(64, 2, 4, generator=gen)
    ys = (xs @ tasks.unsqueeze(-1)).squeeze(-1) + 1.5 * torch.randn(64, 2, generator=gen)
    xq = 3 * torch.randn(64, 4, generator=gen)
    cases.append(Case((xs, ys, xq, pool, 1.5), description="64 contexts of 2 noisy pairs, 6 pool tasks, noise_std 1.5",
                      hint="a posterior spread over several tasks: weigh every task by its posterior"))
    cases.append(Case((xs[:8, :0], ys[:8, :0], xq[:8], pool, 1.5),
                      description="8 empty contexts (no pairs yet), 6 pool tasks",
                      hint="an empty context: the posterior is the uniform prior, the prediction the pool's mean"))
    return cases


def check_dmmse_predict(fn) -> CheckResult:
    """``fn(xs, ys, x_query, task_pool, noise_std) -> predictions [batch]``, the Bayes
    prediction under a uniform prior over the pool's tasks."""
    cases = _dmmse_cases()
    compare = compare_tensors(atol=1e-4, rtol=1e-4)

    def variant(*, hard=False, factor=2.0, power=2, axis=-1, reduce="sum"):
        def predict(xs, ys, xq, pool, noise):
            resid = ys.unsqueeze(-1) - xs @ pool.T
            sq = (resid ** 2).sum(1) if reduce == "sum" else (resid ** 2).mean(1)
            log_lik = -sq / (factor * noise ** power)
            if hard:
                post = torch.nn.functional.one_hot(log_lik.argmax(-1), pool.shape[0]).to(xq.dtype)
            else:
                post = torch.softmax(log_lik, dim=axis)
            return (post * (xq @ pool.T)).sum(-1)
        return predict

    diagnoses = [
        _nan_diagnosis,
        same_as(variant(hard=True), "you predicted with the single most likely task (a hard argmax); the Bayes "
                                    "prediction is the posterior-weighted mean over all pool tasks, "
                                    "sum_m post_m * (w_m . x_query).", compare),
        same_as(variant(factor=1.0), "the factor 2 in 2 * noise_std**2 is missing from the log-likelihood.", compare),
        same_as(variant(power=1), "you divided by noise_std, not by its square: -(resid**2).sum / (2 * noise_std**2).",
                compare),
        same_as(variant(axis=0), "the softmax ran over the batch axis; normalize over the pool axis (dim=-1), "
                                 "one posterior per context.", compare),
        same_as(variant(reduce="mean"), "you averaged the squared residuals over the context; the likelihood of "
                                        "n pairs multiplies, so their log-likelihoods add up (sum over the pairs).",
                compare),
    ]
    return run_check(
        "dmmse_predict", fn, icl_regression.dmmse_predict, cases, compare=compare, diagnoses=diagnoses,
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


# ------------------------------------------------------------------------- the probe

def probe_r2(features_train: torch.Tensor, targets_train: torch.Tensor, features_test: torch.Tensor,
             targets_test: torch.Tensor, lam: float) -> torch.Tensor:
    """A linear probe (Alain & Bengio 2016): fit ``targets ≈ features @ W + b`` by ridge
    regression on the training rows and return its R² on the test rows, one per target.

    ``features_*`` float ``[n, d]``, ``targets_*`` float ``[n, k]`` (``n`` may differ
    between train and test), ``lam >= 0``. The intercept ``b`` is not penalized: centre
    the features and the targets by their *training* means, solve
    ``(Fc^T Fc + lam I) W = Fc^T Yc``, and predict ``(F_test - mean_F) @ W + mean_Y``.
    ``R²_j = 1 - sum_i (y_ij - pred_ij)² / sum_i (y_ij - mean_i y_ij)²`` on the test rows,
    the mean in the denominator being the test targets' own. Returns float64 ``[k]``:
    1 for a perfect probe, 0 for one that does no better than the test mean, negative for
    worse. Computed in float64."""
    f_tr, y_tr, f_te, y_te = (a.detach().to(torch.float64) for a in (features_train, targets_train,
                                                                     features_test, targets_test))
    mean_f, mean_y = f_tr.mean(0), y_tr.mean(0)
    fc = f_tr - mean_f
    w = torch.linalg.solve(fc.T @ fc + lam * torch.eye(fc.shape[1], dtype=torch.float64), fc.T @ (y_tr - mean_y))
    pred = (f_te - mean_f) @ w + mean_y
    return 1 - ((y_te - pred) ** 2).sum(0) / ((y_te - y_te.mean(0)) ** 2).sum(0)


def _probe_variant(*, intercept="centre", evaluate="test", denominator="test", lam_used=True, r2="r2"):
    def probe(f_tr, y_tr, f_te, y_te, lam):
        f_tr, y_tr, f_te, y_te = (a.double() for a in (f_tr, y_tr, f_te, y_te))
        lam = lam if lam_used else 0.0
        if intercept == "none":
            mean_f, mean_y = torch.zeros_like(f_tr[0]), torch.zeros_like(y_tr[0])
        else:
            mean_f, mean_y = f_tr.mean(0), y_tr.mean(0)
        if intercept == "penalized":          # a column of ones, inside the ridge penalty
            a = torch.cat([f_tr, torch.ones_like(f_tr[:, :1])], 1)
            w = torch.linalg.solve(a.T @ a + lam * torch.eye(a.shape[1], dtype=torch.float64), a.T @ y_tr)
            fit = lambda f: torch.cat([f, torch.ones_like(f[:, :1])], 1) @ w
        else:
            fc = f_tr - mean_f
            w = torch.linalg.lstsq(fc.T @ fc + lam * torch.eye(fc.shape[1], dtype=torch.float64),
                                   fc.T @ (y_tr - mean_y)).solution
            fit = lambda f: (f - mean_f) @ w + mean_y
        f_ev, y_ev = (f_tr, y_tr) if evaluate == "train" else (f_te, y_te)
        pred = fit(f_ev)
        if r2 == "correlation":
            pc, yc = pred - pred.mean(0), y_ev - y_ev.mean(0)
            return (pc * yc).sum(0) ** 2 / ((pc ** 2).sum(0) * (yc ** 2).sum(0))
        centre = y_tr.mean(0) if denominator == "train" else y_ev.mean(0)
        return 1 - ((y_ev - pred) ** 2).sum(0) / ((y_ev - centre) ** 2).sum(0)
    return probe


def _probe_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(77)
    cases = []

    def linear(n, d, k, noise, offset):
        f = torch.randn(n, d, generator=gen)
        w = torch.randn(d, k, generator=gen)
        return f, f @ w + offset + noise * torch.randn(n, k, generator=gen)

    f, y = linear(400, 6, 2, 0.5, 5.0)
    cases.append(Case((f[:300], y[:300], f[300:], y[300:], 1e-3),
                      description="300 training and 100 test rows, 6 features, 2 targets with mean 5"))
    f, y = linear(60, 20, 3, 1.0, 10.0)
    cases.append(Case((f[:30], y[:30], f[30:], y[30:], 5.0),
                      description="30 training rows, 20 features, 3 targets with mean 10, lam = 5",
                      hint="a probe with few rows and many features, where the fit on the training rows "
                           "flatters it and the ridge term and the unpenalized intercept matter"))
    f, y = linear(300, 4, 2, 1.0, 0.0)
    y_te = y[200:] + torch.tensor([3.0, -2.0])          # test targets shifted away from the training mean
    cases.append(Case((f[:200], y[:200], f[200:], y_te, 0.1),
                      description="test targets shifted from the training targets (R² may be negative)",
                      hint="the denominator: the spread of the test targets around their own mean"))
    f = torch.randn(500, 8, generator=gen)
    y = torch.stack([f[:, 0] ** 2, torch.sin(3 * f[:, 1]), torch.randn(500, generator=gen)], 1)
    cases.append(Case((f[:250], y[:250], f[250:], y[250:], 1.0),
                      description="targets no linear probe can read (R² near 0 or below)"))
    return cases


def check_probe_r2(fn) -> CheckResult:
    """``fn(features_train, targets_train, features_test, targets_test, lam) -> r2 [k]``:
    the test R² of a ridge linear probe with an unpenalized intercept, per target."""
    compare = compare_tensors(atol=1e-6, rtol=1e-6)
    diagnoses = [same_as(_probe_variant(**kw), text, compare) for kw, text in [
        (dict(evaluate="train"), "you scored the probe on the rows it was fit on; score it on the test rows, or a "
                                 "probe with many features looks good on anything."),
        (dict(intercept="none"), "your probe has no intercept (the targets were not centred): centre features "
                                 "and targets by their training means, and add the target mean back."),
        (dict(intercept="penalized"), "your intercept is inside the ridge penalty (a column of ones, shrunk with "
                                      "the weights); leave it out of the penalty by centring instead."),
        (dict(lam_used=False), "you fit by least squares without the ridge term: add lam * I to Fc^T Fc."),
        (dict(denominator="train"), "the denominator of R² used the training mean; use the test targets' own "
                                    "mean, sum (y - y.mean(0))**2 on the test rows."),
        (dict(r2="correlation"), "you returned the squared correlation between predictions and targets; R² is "
                                 "1 - (squared error) / (spread of the targets), which is lower when the "
                                 "predictions are biased or mis-scaled."),
    ]]
    return run_check(
        "probe_r2", fn, probe_r2, _probe_cases(), compare=compare, diagnoses=diagnoses,
        hint="mean_f, mean_y = features_train.mean(0), targets_train.mean(0); Fc = features_train - mean_f; "
             "W = torch.linalg.solve(Fc.T @ Fc + lam * I, Fc.T @ (targets_train - mean_y)); "
             "pred = (features_test - mean_f) @ W + mean_y; return 1 - ((y - pred)**2).sum(0) / "
             "((y - y.mean(0))**2).sum(0) on the test rows, in float64.")


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

    def variant(*, sign=1.0, reduce="mean", baseline=True, axis=-1):
        def step(logits, actions, rewards, lr):
            probs = torch.softmax(logits, dim=axis)
            onehot = torch.nn.functional.one_hot(actions.long(), logits.shape[-1]).to(logits.dtype)
            centred = onehot - probs.unsqueeze(1) if baseline else onehot
            g = rewards.to(logits.dtype).unsqueeze(-1) * centred
            g = g.mean(1) if reduce == "mean" else g.sum(1)
            return logits + sign * lr * g
        return step

    diagnoses = [same_as(variant(**kw), text, values) for kw, text in [
        (dict(sign=-1.0), "you stepped downhill (logits - lr * gradient); we maximize the reward: gradient "
                          "ascent, logits + lr * gradient."),
        (dict(reduce="sum"), "you summed over the pulls; J is the mean over the m pulls, so is its gradient."),
        (dict(baseline=False), "the gradient of log softmax(logits)[a] is onehot(a) - softmax(logits); you left "
                               "out the - softmax(logits) term."),
        (dict(axis=0), "the softmax ran over the batch axis; it is over the arms (dim=-1), one policy per row."),
    ]]
    return run_check(
        "maml_inner_step", fn, maml_inner_step, cases, compare=compare, diagnoses=diagnoses,
        hint="probs = softmax(logits); the gradient is the mean over pulls of reward * (one_hot(action) - probs) "
             "(shape [N, K]); return logits + lr * gradient (ascent: we maximize reward).")
