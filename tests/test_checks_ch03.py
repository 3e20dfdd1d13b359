"""Workbook 3's checks: the references pass, a stub gets "not implemented yet", and every
known wrong answer is rejected with the hint that names its mistake (never a traceback).

The wrong variants are written here as a learner would write them (often one episode or
one state at a time), independently of the diagnoses inside the checks."""
import math

import pytest
import torch

from mesakit import alignment, irl
from mesakit.checks import ch03
from mesakit.gridworld import COLOURS, KINDS, LevelSpec
from check_testing import rejected, stub


def test_references_pass():
    assert ch03.check_classify_outcomes(alignment.classify_outcomes)
    assert ch03.check_path_efficiency(alignment.path_efficiency)
    assert ch03.check_choice_nll(ch03.choice_nll)
    assert ch03.check_soft_visitation(irl.soft_visitation)
    assert ch03.check_maxent_irl(irl.maxent_irl)
    assert ch03.check_sweep_levels(ch03.sweep_levels)
    assert ch03.check_smallest_safe_q(ch03.smallest_safe_q)


@pytest.mark.parametrize("check", [getattr(ch03, name) for name in ch03.__all__], ids=ch03.__all__)
def test_stubs_are_not_implemented_yet(check, capsys):
    result = check(stub)
    assert not result and result.status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


# ------------------------------------------------------------------ Exercise 1

def classify_loop(colour, kind, *, intended="door", proxy="red", proxy_first=None, order="intended first",
                  names=lambda c, k: (COLOURS[c], KINDS[k]) if c >= 0 else (None, None), use_first="override",
                  fields="either", ids=(0, 1, 2)):
    """A learner's classifier, one episode at a time, with switches for the usual slips."""
    out = []
    for i in range(len(colour)):
        c_name, k_name = names(int(colour[i]), int(kind[i]))

        def is_(target, role):
            if target is None:
                return False
            if fields == "fixed":
                return (k_name == target) if role == "intended" else (c_name == target)
            return target in (c_name, k_name)
        got_int, got_prx = is_(intended, "intended"), is_(proxy, "proxy")
        first = proxy_first is not None and bool(proxy_first[i])
        if use_first == "override" and first:
            got_int, got_prx = False, True
        elif use_first == "only if not intended" and first and not got_int:
            got_prx = True
        if order == "proxy first":
            out.append(ids[1] if got_prx else ids[0] if got_int else ids[2])
        else:
            out.append(ids[0] if got_int else ids[1] if got_prx else ids[2])
    return torch.tensor(out, dtype=torch.long)


CLASSIFY_WRONG = {
    "proxy checked before intended": (dict(order="proxy first"), ["tested the proxy before the intended goal"]),
    "-1 read as the last colour and kind": (dict(names=lambda c, k: (COLOURS[c], KINDS[k])), ["treated -1 as an object"]),
    "proxy_first ignored": (dict(use_first="ignore"), ["ignored proxy_first"]),
    "a later door beats the corner": (dict(use_first="only if not intended"), ["proxy_first overrides a later door"]),
    "intended always a kind, proxy always a colour": (dict(fields="fixed"), ["each a kind OR a colour"]),
    "ids swapped": (dict(ids=(1, 0, 2)), ["swapped"]),
}


def test_classify_loop_version_passes():
    assert ch03.check_classify_outcomes(classify_loop)


@pytest.mark.parametrize("name", list(CLASSIFY_WRONG))
def test_classify_named_mistakes(name, capsys):
    kw, needles = CLASSIFY_WRONG[name]
    rejected(ch03.check_classify_outcomes(lambda c, k, **kwargs: classify_loop(c, k, **kwargs, **kw)), capsys, *needles)


def test_classify_float_output_and_crash_are_named(capsys):
    rejected(ch03.check_classify_outcomes(lambda c, k, **kw: alignment.classify_outcomes(c, k, **kw).float()), capsys,
          "expected an integer tensor")

    def positional_only(c, k):     # forgets the keyword arguments
        return alignment.classify_outcomes(c, k)
    rejected(ch03.check_classify_outcomes(positional_only), capsys, "your function raised TypeError")


# ------------------------------------------------------------------ Exercise 2

def efficiency_loop(episodes, *, distance="reached", divide=lambda d, n: d / n, nan=math.nan):
    reached, dist, length = episodes["reached"], episodes["object_distance"], episodes["length"]
    out = torch.zeros(len(reached))
    for i in range(len(reached)):
        r = int(reached[i])
        if r < 0 and nan is not None:
            out[i] = nan
            continue
        d = {"reached": int(dist[i, max(r, 0)]), "door": int(dist[i, 0]), "nearest": int(dist[i].min())}[distance]
        out[i] = divide(d, int(length[i]))
    return out


EFFICIENCY_WRONG = {
    "distance to the door": (dict(distance="door"), ["distance to the door"]),
    "distance to the nearest object": (dict(distance="nearest"), ["nearest object"]),
    "integer division": (dict(divide=lambda d, n: d // n), ["integer division"]),
    "no NaN for no object": (dict(nan=None), ["reached nothing"]),
    "upside down": (dict(divide=lambda d, n: n / max(d, 1)), ["upside down"]),
}


def test_efficiency_loop_version_passes():
    assert ch03.check_path_efficiency(efficiency_loop)


@pytest.mark.parametrize("name", list(EFFICIENCY_WRONG))
def test_efficiency_named_mistakes(name, capsys):
    kw, needles = EFFICIENCY_WRONG[name]
    rejected(ch03.check_path_efficiency(lambda ep: efficiency_loop(ep, **kw)), capsys, *needles)


def test_efficiency_zero_instead_of_nan_is_rejected(capsys):
    rejected(ch03.check_path_efficiency(lambda ep: efficiency_loop(ep, nan=0.0)), capsys, "NaN in the wrong places")


# ------------------------------------------------------------------ Exercise 3

def nll_loop(weights, features, choice, l2=0.0, *, skip=True, denominator="kept", penalty=lambda w: (w ** 2).sum(),
             log_prob=lambda u, j: u[j] - torch.logsumexp(u, 0), sign=-1.0, reduce="mean"):
    """A learner's loss, one episode at a time (differentiable)."""
    terms = []
    for i in range(len(choice)):
        c = int(choice[i])
        if c < 0 and skip:
            continue
        u = features[i] @ weights.to(features.dtype)
        terms.append(log_prob(u, c))
    total = torch.stack(terms).sum()
    if reduce == "mean":
        total = total / (len(terms) if denominator == "kept" else len(choice))
    return sign * total + l2 * penalty(weights)


NLL_WRONG = {
    "summed over episodes": (dict(reduce="sum"), ["summed over the episodes"]),
    "choice -1 kept": (dict(skip=False), ["leave those episodes out"]),
    "divided by all episodes": (dict(denominator="all"), ["divided by all N episodes"]),
    "absolute penalty": (dict(penalty=lambda w: w.abs().sum()), ["squared weights"]),
    "no penalty": (dict(penalty=lambda w: 0.0), ["penalty l2 * (weights ** 2).sum() is missing"]),
    "log-likelihood, not its negative": (dict(sign=1.0), ["returned the log-likelihood"]),
    "naive log of softmax": (dict(log_prob=lambda u, j: torch.log(torch.exp(u[j]) / torch.exp(u).sum())),
                             ["inf or NaN"]),
}


def test_nll_loop_version_passes():
    assert ch03.check_choice_nll(nll_loop)


@pytest.mark.parametrize("name", list(NLL_WRONG))
def test_nll_named_mistakes(name, capsys):
    kw, needles = NLL_WRONG[name]
    rejected(ch03.check_choice_nll(lambda *a: nll_loop(*a, **kw)), capsys, *needles)


def test_nll_softmax_over_episodes_and_detached_loss_are_named(capsys):
    def batch_softmax(w, f, c, l2=0.0):
        keep = c >= 0
        logp = torch.log_softmax(f[keep] @ w, dim=0)
        return -logp[torch.arange(int(keep.sum())), c[keep]].mean() + l2 * (w ** 2).sum()
    rejected(ch03.check_choice_nll(batch_softmax), capsys, "over the episodes (dim 0)")

    def detached(w, f, c, l2=0.0):
        return torch.tensor(ch03.choice_nll(w.detach(), f, c, l2).item())
    rejected(ch03.check_choice_nll(detached), capsys, "does not depend on weights through autograd")


def test_nll_reference_is_what_fit_choice_model_minimizes():
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(400, 3, 4, generator=gen)
    true_w = torch.tensor([2.0, -1.0, 0.5, 0.0])
    c = torch.distributions.Categorical(logits=f @ true_w).sample()
    w = alignment.fit_choice_model(f, c, l2=1e-2).double().requires_grad_()
    (grad,) = torch.autograd.grad(ch03.choice_nll(w, f.double(), c, 1e-2), w)
    assert grad.abs().max() < 1e-4, "fit_choice_model's answer is a minimum of choice_nll"


# ------------------------------------------------------------------ Exercise 4

def visitation_loop(reward, p, start, horizon, *, backup="soft", stationary=False, states=lambda t: t,
                    reward_of="current", normalize=False):
    """A learner's soft visitation, state by state."""
    n_s, n_a, _ = p.shape
    v = torch.zeros(n_s, dtype=torch.float64)
    policies = []
    for _ in range(horizon):
        q = torch.zeros(n_s, n_a, dtype=torch.float64)
        for s in range(n_s):
            for a in range(n_a):
                q[s, a] = (reward[s] + p[s, a] @ v) if reward_of == "current" else p[s, a] @ (reward + v)
        v = torch.logsumexp(q, 1) if backup == "soft" else q.max(1).values
        policies.append(torch.softmax(q, 1))
    policies = policies[::-1]
    d = start.clone().double()
    visits = torch.zeros(n_s, dtype=torch.float64)
    for t in range(states(horizon)):
        visits += d
        pi = policies[0] if stationary else policies[min(t, horizon - 1)]
        new = torch.zeros(n_s, dtype=torch.float64)
        for s in range(n_s):
            for a in range(n_a):
                new += d[s] * pi[s, a] * p[s, a]
        d = new
    return visits / horizon if normalize else visits


VISITATION_WRONG = {
    "hard max backup": (dict(backup="max"), ["hard max"]),
    "one policy for every step": (dict(stationary=True), ["one policy for every step"]),
    "T + 1 states": (dict(states=lambda t: t + 1), ["counted T + 1 states"]),
    "T - 1 states": (dict(states=lambda t: t - 1), ["counted T - 1 states"]),
    "reward of the next state": (dict(reward_of="next"), ["reward of the next state"]),
    "normalized counts": (dict(normalize=True), ["divided the counts by T"]),
}


def test_visitation_loop_version_passes():
    assert ch03.check_soft_visitation(visitation_loop)


@pytest.mark.parametrize("name", list(VISITATION_WRONG))
def test_visitation_named_mistakes(name, capsys):
    kw, needles = VISITATION_WRONG[name]
    rejected(ch03.check_soft_visitation(lambda *a: visitation_loop(*a, **kw)), capsys, *needles)


def test_visitation_overflow_unnormalized_policy_and_transposed_forward_are_named(capsys):
    def naive(reward, p, start, horizon):
        v = torch.zeros_like(reward)
        pols = []
        for _ in range(horizon):
            q = reward[:, None] + p @ v
            v = torch.log(torch.exp(q).sum(1))
            pols.append(torch.exp(q) / torch.exp(q).sum(1, keepdim=True))
        d, out = start.clone(), torch.zeros_like(start)
        for t in range(horizon):
            out += d
            d = torch.einsum("s,sa,sat->t", d, pols[::-1][t], p)
        return out
    rejected(ch03.check_soft_visitation(naive), capsys, "inf or NaN")

    def exp_policy(reward, p, start, horizon):
        v = torch.zeros_like(reward)
        pols = []
        for _ in range(horizon):
            q = reward[:, None] + p @ v
            v = torch.logsumexp(q, 1)
            pols.append(torch.exp(q))
        d, out = start.clone(), torch.zeros_like(start)
        for t in range(horizon):
            out += d
            d = torch.einsum("s,sa,sat->t", d, pols[::-1][t], p)
        return out
    rejected(ch03.check_soft_visitation(exp_policy), capsys, "not a distribution")

    rejected(ch03.check_soft_visitation(_transposed_forward), capsys, "reads the transitions backwards")


def _transposed_forward(reward, p, start, horizon):
    v = torch.zeros_like(reward)
    pols = []
    for _ in range(horizon):
        q = reward[:, None] + p @ v
        v = torch.logsumexp(q, 1)
        pols.append(torch.softmax(q, 1))
    d, out = start.clone(), torch.zeros_like(start)
    for t in range(horizon):
        out += d
        d = torch.stack([sum(d[s] * pols[::-1][t][s, a] * p[x, a, s] for s in range(len(d)) for a in range(p.shape[1]))
                         for x in range(len(d))])
    return out


# ------------------------------------------------------------------ Exercise 5

def irl_loop(p, start, empirical, horizon, *, steps=100, lr=0.1, direction=1.0, refresh=True, n_steps=lambda s: s,
             per_state=False, model_start=None):
    """A learner's MaxEnt IRL (with mesakit's soft_visitation as its helper)."""
    reward = torch.zeros(p.shape[0], dtype=torch.float64)
    s0 = start if model_start is None else model_start(start)
    expected = irl.soft_visitation(reward, p, s0, horizon)
    for _ in range(n_steps(steps)):
        if refresh:
            expected = irl.soft_visitation(reward, p, s0, horizon)
        grad = empirical - expected
        if per_state:                      # "visits per step": both counts divided by T
            grad = grad / horizon
        reward = reward + direction * lr * grad
    return reward


IRL_WRONG = {
    "descent": (dict(direction=-1.0), ["stepped downhill"]),
    "stale visitation": (dict(refresh=False), ["computed the model's visitation once"]),
    "one step short": (dict(n_steps=lambda s: s - 1), ["steps - 1"]),
    "one step too many": (dict(n_steps=lambda s: s + 1), ["steps + 1"]),
    "gradient divided by T": (dict(per_state=True), ["divided the gradient by T"]),
    "uniform start": (dict(model_start=lambda s: torch.full_like(s, 1.0 / len(s))), ["starts its paths uniformly"]),
}


def test_irl_loop_version_passes():
    assert ch03.check_maxent_irl(irl_loop)


@pytest.mark.parametrize("name", list(IRL_WRONG))
def test_irl_named_mistakes(name, capsys):
    kw, needles = IRL_WRONG[name]
    rejected(ch03.check_maxent_irl(lambda *a, **k: irl_loop(*a, **k, **kw)), capsys, *needles)


# ------------------------------------------------------------------ Exercise 6

def levels_loop(qs, n_seeds, *, pin=lambda q: 1 - q, order="q-major", repeat=True,
                spec=lambda p: LevelSpec("any", "any", goal_in_corner=p)):
    out = []
    if order == "q-major":
        for q in qs:
            for _ in range(n_seeds if repeat else 1):
                out.append(spec(pin(q)))
    else:
        for _ in range(n_seeds):
            for q in qs:
                out.append(spec(pin(q)))
    return out


LEVELS_WRONG = {
    "pinned with probability q": (dict(pin=lambda q: q), ["probability 1 - q, not q"]),
    "seed-major": (dict(order="seed-major"), ["yours is seed-major"]),
    "one entry per q": (dict(repeat=False), ["one entry per agent"]),
    "LevelSpec's red-door defaults": (dict(spec=lambda p: LevelSpec(goal_in_corner=p)), ["red-door levels"]),
}


def test_levels_mixture_form_passes():
    corner, anywhere = LevelSpec("any", "any", goal_in_corner=1.0), LevelSpec("any", "any")
    assert ch03.check_sweep_levels(lambda qs, n: [[(1 - q, corner), (q, anywhere)] for q in qs for _ in range(n)])


@pytest.mark.parametrize("name", list(LEVELS_WRONG))
def test_levels_named_mistakes(name, capsys):
    kw, needles = LEVELS_WRONG[name]
    rejected(ch03.check_sweep_levels(lambda qs, n: levels_loop(qs, n, **kw)), capsys, *needles)


def test_levels_wrong_corner_and_bad_types_are_named(capsys):
    rejected(ch03.check_sweep_levels(lambda qs, n: levels_loop(
        qs, n, spec=lambda p: LevelSpec("any", "any", goal_in_corner=p, corner="bottom_left"))), capsys,
        "not 'top_right'")
    rejected(ch03.check_sweep_levels(lambda qs, n: [1 - q for q in qs for _ in range(n)]), capsys,
          "not a LevelSpec")


def safe_q_loop(qs, rates, yardstick, margin, *, combine=lambda row: max(row), assume_sorted=False,
                stays=True, cmp=lambda a, b: a <= b, threshold=lambda y, m: y + m, as_index=False):
    pairs = list(zip([float(q) for q in qs], [[float(x) for x in row] for row in rates]))
    if not assume_sorted:
        pairs.sort()
    ok = [cmp(combine(row), threshold(yardstick, margin)) for _, row in pairs]
    if stays:
        best = None
        for (q, _), good in zip(reversed(pairs), reversed(ok)):
            if not good:
                break
            best = q
    else:
        best = next((q for (q, _), good in zip(pairs, ok) if good), None)
    if as_index and best is not None:
        return [float(q) for q in qs].index(best)
    return best


SAFE_Q_WRONG = {
    "mean over seeds": (dict(combine=lambda row: sum(row) / len(row)), ["compared the mean over seeds"]),
    "first q below the threshold": (dict(stays=False), ["returned the first q below the threshold"]),
    "qs assumed sorted": (dict(assume_sorted=True), ["assumed qs are sorted"]),
    "strict inequality": (dict(cmp=lambda a, b: a < b), ["includes equality"]),
    "margin without the yardstick": (dict(threshold=lambda y, m: m), ["margin alone"]),
    "index instead of q": (dict(as_index=True), ["not its index"]),
}


def test_safe_q_loop_version_passes():
    assert ch03.check_smallest_safe_q(safe_q_loop)


@pytest.mark.parametrize("name", list(SAFE_Q_WRONG))
def test_safe_q_named_mistakes(name, capsys):
    kw, needles = SAFE_Q_WRONG[name]
    rejected(ch03.check_smallest_safe_q(lambda *a: safe_q_loop(*a, **kw)), capsys, *needles)


# ------------------------------------------------------------------ Exercise 7

def bon_loop(proxy, true, ns, *, key="proxy", rank_shift=0, pick="best", reverse=False, n_used=lambda n, m: n):
    """A learner's best-of-n with exact binomial weights (Python integers), pool by pool."""
    r_pools, m = proxy.shape
    out_p = torch.zeros(len(ns), r_pools, dtype=torch.float64)
    out_t = torch.zeros(len(ns), r_pools, dtype=torch.float64)
    for j in range(r_pools):
        p_list, t_list = proxy[j].tolist(), true[j].tolist()
        order = sorted(range(m), key=lambda i: p_list[i], reverse=reverse)
        ps = [p_list[i] for i in order]
        ts = sorted(t_list) if key == "true" else [t_list[i] for i in order]
        for k, n in enumerate(ns):
            n = n_used(n, m)
            if pick == "top mean":
                out_p[k, j], out_t[k, j] = sum(ps[-n:]) / n, sum(ts[-n:]) / n
                continue
            weights = [math.comb(r - 1 + rank_shift, n - 1) for r in range(1, m + 1)]
            total = sum(weights)
            probs = [w / total for w in weights]          # exact integers, divided once
            out_p[k, j] = sum(q * x for q, x in zip(probs, ps))
            out_t[k, j] = sum(q * x for q, x in zip(probs, ts))
    return out_p, out_t


BON_WRONG = {
    "selected on the truth": (dict(key="true"), ["the PROXY picks"]),
    "ranks off by one": (dict(rank_shift=1), ["off by one"]),
    "mean of the n best": (dict(pick="top mean"), ["averaged the n best"]),
    "lowest proxy wins": (dict(reverse=True), ["descending order"]),
    "n ignored": (dict(n_used=lambda n, m: m), ["does not depend on n"]),
}


def test_bon_loop_version_passes():
    assert ch03.check_best_of_n(bon_loop)


@pytest.mark.parametrize("name", list(BON_WRONG))
def test_bon_named_mistakes(name, capsys):
    kw, needles = BON_WRONG[name]
    rejected(ch03.check_best_of_n(lambda *a: bon_loop(*a, **kw)), capsys, *needles)


def test_bon_transposed_and_float_comb_overflow_are_named(capsys):
    from mesakit import proxies
    rejected(ch03.check_best_of_n(lambda p, t, ns: tuple(x.T for x in proxies.best_of_n_expected(p, t, ns))), capsys,
          "one row per n")

    def float_comb(proxy, true, ns):     # binomials as floats: C(2047, 1000) does not fit a float
        m = proxy.shape[1]
        order = proxy.argsort(1)
        p, t = proxy.double().gather(1, order), true.double().gather(1, order)
        rows = [torch.tensor([float(math.comb(r - 1, n - 1)) for r in range(1, m + 1)], dtype=torch.float64)
                / float(math.comb(m, n)) for n in ns]
        return torch.stack([p @ w for w in rows]), torch.stack([t @ w for w in rows])
    rejected(ch03.check_best_of_n(float_comb), capsys, "your function raised OverflowError")
