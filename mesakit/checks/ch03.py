"""Checks for Workbook 3 (Inner and outer alignment).

Each ``check_*`` runs the learner's function and the reference on the same seeded inputs
and prints a pass, a hint or "not implemented yet"; it returns a
:class:`~mesakit.checks.CheckResult` (truthy only on a pass).

The cases are built to separate the common wrong answers from the right one (a red door,
episodes that reached nothing, a corner visited before the door, huge rewards that
overflow ``exp``, unsorted sweeps, a rate exactly at the threshold), and each known wrong
variant has a diagnosis, so the hint names the mistake (``tests/test_checks_ch03.py``
feeds every one).

Three references live here because no mesakit module needs them: :func:`choice_nll`
(the conditional-logit loss that :func:`mesakit.alignment.fit_choice_model` minimizes),
:func:`sweep_levels` and :func:`smallest_safe_q` (the diversity sweep of Exercise 6).
The others are mesakit's: :func:`mesakit.alignment.classify_outcomes`,
:func:`mesakit.alignment.path_efficiency`, :func:`mesakit.irl.soft_visitation`,
:func:`mesakit.irl.maxent_irl` and :func:`mesakit.proxies.best_of_n_expected`.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import torch

from .. import alignment, irl
from ..gridworld import COLOURS, KINDS, LevelSpec
from .core import Case, CheckResult, compare_tensors, run_check, same_as
# Not a check (so not in __all__): the hidden tests write `checks.forbid_reference(...)`.
from .core import forbid_reference  # noqa: F401

__all__ = [
    "check_classify_outcomes",
    "check_path_efficiency",
    "check_choice_nll",
    "check_soft_visitation",
    "check_maxent_irl",
    "check_sweep_levels",
    "check_smallest_safe_q",
    "check_best_of_n",
]

_INT = compare_tensors(dtype_kind="int")
RED, BLUE, GREEN, YELLOW = range(4)
DOOR, KEY, BALL = range(3)


def _nonfinite_diagnosis(got, args, kwargs) -> str | None:
    if isinstance(got, torch.Tensor) and got.is_floating_point() and not bool(torch.isfinite(got).all()):
        return ("your answer contains inf or NaN: exp of a large number overflows. Stay in logarithms: "
                "torch.logsumexp for the log of a sum of exps, torch.log_softmax for log-probabilities.")
    return None


# ------------------------------------------------------------------------ Exercise 1

def _outcome_cases() -> list[Case]:
    t = torch.tensor
    cases = [
        Case((t([RED, BLUE, GREEN]), t([KEY, DOOR, BALL])), description="a red key, a blue door, a green ball"),
        Case((t([RED, RED, BLUE]), t([DOOR, BALL, KEY])), description="a red door, a red ball, a blue key",
             hint="an object that is both the door and red: it counts as intended"),
        Case((t([-1, RED, -1, BLUE]), t([-1, KEY, -1, DOOR])), description="two episodes that reached no object (-1)",
             hint="-1, no object: the time limit, which is 'neither'"),
        Case((t([-1, YELLOW, -1, GREEN]), t([-1, BALL, -1, KEY])), dict(intended="ball", proxy="yellow"),
             description="intended 'ball', proxy 'yellow', and two episodes that reached nothing",
             hint="-1 is no object, not the last colour or kind"),
        Case((t([BLUE, GREEN, RED, YELLOW]), t([KEY, KEY, BALL, DOOR])), dict(intended="blue", proxy="key"),
             description="intended 'blue' (a colour), proxy 'key' (a kind)",
             hint="that intended and proxy may each name a kind or a colour"),
        Case((t([BLUE, BLUE, GREEN, -1, RED]), t([DOOR, DOOR, KEY, -1, DOOR])),
             dict(proxy=None, proxy_first=t([True, False, True, True, False])),
             description="the corner variant: proxy=None, proxy_first marks a corner visited first",
             hint="proxy_first: the corner visited before the episode ended counts as proxy, even if the door "
                  "was reached afterwards"),
    ]
    gen = torch.Generator().manual_seed(3)
    n = 256
    kind = torch.randint(0, 3, (n,), generator=gen)
    colour = torch.randint(0, 4, (n,), generator=gen)
    none = torch.rand(n, generator=gen) < 0.2
    colour, kind = torch.where(none, -1, colour), torch.where(none, -1, kind)
    first = torch.rand(n, generator=gen) < 0.3
    cases.append(Case((colour, kind), description=f"{n} random episodes"))
    cases.append(Case((colour, kind), dict(proxy_first=first),
                      description=f"{n} random episodes with proxy='red' and proxy_first as well"))
    return cases


def _outcome_variant(*, proxy_before_intended=False, wrap_minus_one=False, ignore_first=False,
                     first_only_if_not_intended=False, fixed_fields=False, swap_ids=False):
    def classify(reached_colour, reached_kind, *, intended="door", proxy="red", proxy_first=None):
        def matches(name, is_intended):
            if fixed_fields:          # intended always a kind, proxy always a colour
                if is_intended:
                    return reached_kind == (KINDS.index(name) if name in KINDS else -99)
                return reached_colour == (COLOURS.index(name) if name in COLOURS else -99)
            if name in COLOURS:
                values, ids = reached_colour, COLOURS.index(name)
                top = len(COLOURS)
            else:
                values, ids = reached_kind, KINDS.index(name)
                top = len(KINDS)
            if wrap_minus_one:
                values = torch.where(values < 0, values + top, values)
            return values == ids
        hit = reached_colour >= 0
        is_int = matches(intended, True) & (hit | torch.tensor(wrap_minus_one))
        is_prx = (matches(proxy, False) & (hit | torch.tensor(wrap_minus_one))) if proxy is not None \
            else torch.zeros_like(hit)
        if proxy_first is not None and not ignore_first:
            if first_only_if_not_intended:
                is_prx = is_prx | (proxy_first & ~is_int)
            else:
                is_int = is_int & ~proxy_first
                is_prx = is_prx | proxy_first
        a, b = (1, 0) if swap_ids else (0, 1)
        if proxy_before_intended:
            return torch.where(is_prx, b, torch.where(is_int, a, 2))
        return torch.where(is_int, a, torch.where(is_prx, b, 2))
    return classify


def check_classify_outcomes(fn) -> CheckResult:
    """``fn(reached_colour, reached_kind, *, intended="door", proxy="red", proxy_first=None)
    -> long [N]``: 0 intended, 1 proxy, 2 neither, as
    :func:`mesakit.alignment.classify_outcomes`."""
    diagnoses = [same_as(_outcome_variant(**kw), text, _INT) for kw, text in [
        (dict(proxy_before_intended=True), "you tested the proxy before the intended goal: a red door is the "
                                           "door, so it counts as intended (0); check intended first."),
        (dict(wrap_minus_one=True), "you treated -1 as an object: -1 means the episode reached nothing (the time "
                                    "limit), which is 'neither' (2). Indexing with -1 picks the last colour or "
                                    "kind ('yellow', 'ball'); mask those episodes out with reached_colour >= 0."),
        (dict(ignore_first=True), "you ignored proxy_first: an episode that visited the proxy (the corner) first "
                                  "counts as proxy (1), even if it reached the door afterwards."),
        (dict(first_only_if_not_intended=True), "a door reached after the corner does not make the episode "
                                                "intended: proxy_first overrides a later door (the agent went for "
                                                "the proxy first)."),
        (dict(fixed_fields=True), "intended and proxy are each a kind OR a colour name: look the name up in "
                                  "COLOURS and in KINDS, and compare it with reached_colour or reached_kind "
                                  "accordingly."),
        (dict(swap_ids=True), "the outcome ids are 0 intended, 1 proxy, 2 neither (alignment.OUTCOMES); yours "
                              "are swapped."),
    ]]
    return run_check(
        "classify_outcomes", fn, alignment.classify_outcomes, _outcome_cases(), compare=_INT, diagnoses=diagnoses,
        hint="hit = reached_colour >= 0; for each name, compare reached_colour with COLOURS.index(name) if it is a "
             "colour, else reached_kind with KINDS.index(name); intended = hit & match (and not proxy_first), "
             "proxy = (hit & match) | proxy_first; return torch.where(intended, 0, torch.where(proxy, 1, 2)).")


# ------------------------------------------------------------------------ Exercise 2

def _compare_nan(atol: float = 1e-6):
    values = compare_tensors(atol=atol, dtype_kind="float")

    def compare(got, expected):
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if got.shape != expected.shape:
            return values(got, expected)
        if not got.is_floating_point():
            return f"expected a float tensor, got dtype {got.dtype}"
        want_nan, got_nan = torch.isnan(expected), torch.isnan(got.detach().cpu())
        if not torch.equal(want_nan, got_nan):
            i = int((want_nan != got_nan).nonzero()[0])
            return (f"NaN in the wrong places: at index {i} expected {expected[i].item()}, got {got[i].item()}")
        return values(torch.where(got_nan, 0.0, got.detach().cpu().float()), torch.where(want_nan, 0.0, expected))
    return compare


def _episode_case(n: int, k: int, seed: int, none_share: float) -> dict:
    gen = torch.Generator().manual_seed(seed)
    dist = torch.randint(1, 9, (n, k), generator=gen)
    reached = torch.randint(0, k, (n,), generator=gen)
    reached = torch.where(torch.rand(n, generator=gen) < none_share, -1, reached)
    own = dist.gather(1, reached.clamp(min=0)[:, None]).squeeze(1)
    extra = torch.randint(0, 3, (n,), generator=gen) * 2          # a detour of 0, 2 or 4 moves
    length = torch.where(reached >= 0, own + extra, torch.full_like(own, 28))
    return {"reached": reached, "object_distance": dist, "length": length}


def _path_cases() -> list[Case]:
    t = torch.tensor
    cases = [
        Case(({"reached": t([0, 1]), "object_distance": t([[3, 5], [2, 4]]), "length": t([3, 6])},),
             description="two episodes: one straight to the door, one to a decoy with a detour",
             hint="the BFS distance to the object the episode reached, not to the door"),
        Case(({"reached": t([1, -1, 2]), "object_distance": t([[2, 3, 4], [1, 2, 3], [5, 5, 2]]),
               "length": t([3, 28, 2])},),
             description="an episode that reached nothing (-1): its efficiency is NaN",
             hint="episodes with no object: NaN"),
        Case(({"reached": t([1, 0, 2]), "object_distance": t([[4, 3, 5], [2, 6, 1], [3, 3, 7]]),
               "length": t([5, 4, 9])},),
             description="three episodes, none of them optimal", hint="a float ratio between 0 and 1"),
    ]
    for n, k, seed in ((64, 3, 1), (512, 4, 2)):
        cases.append(Case((_episode_case(n, k, seed, 0.15),), description=f"{n} random episodes, {k} objects"))
    return cases


def _path_variant(*, to_door=False, floor=False, no_nan=False, inverted=False, nearest=False):
    def efficiency(episodes):
        reached, dist, length = episodes["reached"], episodes["object_distance"], episodes["length"]
        if to_door:
            d = dist[:, 0]
        elif nearest:
            d = dist.min(1).values
        else:
            d = dist.gather(1, reached.clamp(min=0)[:, None]).squeeze(1)
        if floor:
            eff = (d // length.clamp(min=1)).float()
        elif inverted:
            eff = length.float() / d.clamp(min=1).float()
        else:
            eff = d.float() / length.clamp(min=1).float()
        return eff if no_nan else torch.where(reached >= 0, eff, torch.full_like(eff, math.nan))
    return efficiency


def check_path_efficiency(fn) -> CheckResult:
    """``fn(episodes) -> float [N]``: BFS moves to the object reached / moves taken; NaN
    where no object was reached (:func:`mesakit.alignment.path_efficiency`)."""
    compare = _compare_nan()
    diagnoses = [same_as(_path_variant(**kw), text, compare) for kw, text in [
        (dict(to_door=True), "you divided by the distance to the door (object 0); capability is measured to the "
                             "object the agent actually reached: object_distance[i, reached[i]] (gather)."),
        (dict(nearest=True), "you used the distance to the nearest object; use the one the episode reached."),
        (dict(floor=True), "integer division: d // length is 0 for every detour. Convert to float first, "
                           "d.float() / length.float()."),
        (dict(no_nan=True), "an episode that reached nothing (reached == -1) has no efficiency: return NaN there "
                            "(torch.where), not a number for a made-up object."),
        (dict(inverted=True), "your ratio is upside down: the BFS distance divided by the moves taken (at most 1)."),
    ]]
    return run_check(
        "path_efficiency", fn, alignment.path_efficiency, _path_cases(), compare=compare, diagnoses=diagnoses,
        hint="d = episodes['object_distance'].gather(1, reached.clamp(min=0)[:, None]).squeeze(1); "
             "eff = d.float() / episodes['length'].float(); NaN where reached < 0 (torch.where).")


# ------------------------------------------------------------------------ Exercise 3

def choice_nll(weights: torch.Tensor, features: torch.Tensor, choice: torch.Tensor, l2: float = 0.0) -> torch.Tensor:
    """The conditional-logit loss (McFadden 1974) that
    :func:`mesakit.alignment.fit_choice_model` minimizes: the mean, over the episodes with a
    choice (``choice >= 0``), of ``-log softmax_j(features[i, j] . weights)[choice[i]]``,
    plus ``l2 * (weights ** 2).sum()``.

    ``weights`` float [F], ``features`` float [N, K, F], ``choice`` long [N] (-1: no
    choice, left out). Returns a 0-d tensor, differentiable in ``weights``."""
    keep = choice >= 0
    logp = torch.log_softmax(features[keep] @ weights.to(features.dtype), dim=-1)          # [n, K]
    nll = -logp.gather(1, choice[keep].long()[:, None]).mean()
    return nll + l2 * weights.pow(2).sum()


def _choice_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(11)
    cases = []
    f = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    cases.append(Case((torch.tensor([1.0, -1.0]), f, torch.tensor([0, 1])),
                      description="two episodes of two objects, two features"))
    for n, k, feats, l2, none in ((64, 3, 5, 0.0, 0.0), (128, 4, 8, 0.1, 0.25), (256, 2, 3, 0.01, 0.1)):
        w = torch.randn(feats, generator=gen)
        x = torch.randn(n, k, feats, generator=gen)
        c = torch.randint(0, k, (n,), generator=gen)
        c = torch.where(torch.rand(n, generator=gen) < none, -1, c)
        desc = f"{n} episodes of {k} objects, {feats} features, l2 = {l2}"
        hint = "that episodes with choice -1 are left out (and not counted in the mean)" if none else ""
        cases.append(Case((w.requires_grad_(), x, c, l2), description=desc + (", some with choice -1" if none else ""),
                          hint=hint))
    w = 40.0 * torch.randn(6, generator=gen)
    x = torch.randn(32, 3, 6, generator=gen)
    cases.append(Case((w, x, torch.randint(0, 3, (32,), generator=gen), 0.0),
                      description="large weights (utilities in the hundreds)",
                      hint="utilities so large that exp overflows"))
    return cases


def _choice_variant(*, axis=-1, reduce="mean", keep_minus_one=False, divide_by_all=False, penalty="square",
                    sign=1.0, naive=False):
    def nll(weights, features, choice, l2=0.0):
        if keep_minus_one:
            f, c = features, choice.long()
        else:
            keep = choice >= 0
            f, c = features[keep], choice[keep].long()
        u = f @ weights.to(f.dtype)
        if naive:
            logp = torch.log(torch.exp(u) / torch.exp(u).sum(axis, keepdim=True))
        else:
            logp = torch.log_softmax(u, dim=axis)
        picked = logp[torch.arange(len(c)), c]
        total = -picked.sum()
        if reduce == "sum":
            loss = total
        else:
            loss = total / (len(choice) if divide_by_all else len(c))
        reg = {"square": weights.pow(2).sum(), "abs": weights.abs().sum(), "none": 0.0}[penalty]
        return sign * loss + l2 * reg
    return nll


def check_choice_nll(fn) -> CheckResult:
    """``fn(weights, features, choice, l2=0.0) -> 0-d tensor``: the conditional-logit
    negative log-likelihood, mean over episodes with a choice, plus the ridge penalty;
    differentiable in ``weights``."""
    values = compare_tensors(atol=1e-5, rtol=1e-5)

    def compare(got, expected):
        if isinstance(got, torch.Tensor) and expected.requires_grad and not got.requires_grad:
            return ("your loss does not depend on weights through autograd (no .detach(), .item(), float() or "
                    "torch.no_grad()): the fit differentiates it")
        if isinstance(got, torch.Tensor) and got.numel() == 1 and got.dim() != 0:
            got = got.reshape(())
        return values(got, expected)

    diagnoses = [_nonfinite_diagnosis] + [same_as(_choice_variant(**kw), text, values) for kw, text in [
        (dict(axis=0), "the softmax ran over the episodes (dim 0); each episode's choice is among its own K "
                       "objects: log_softmax over dim=-1."),
        (dict(reduce="sum"), "you summed over the episodes; the loss is the mean over the episodes with a choice."),
        (dict(keep_minus_one=True), "choice -1 means the episode chose nothing: leave those episodes out "
                                    "(index -1 picks the last object instead)."),
        (dict(divide_by_all=True), "you divided by all N episodes; the mean is over the episodes with a choice "
                                   "(choice >= 0) only."),
        (dict(penalty="abs"), "the penalty is l2 * (weights ** 2).sum(), squared weights, not absolute values."),
        (dict(penalty="none"), "the ridge penalty l2 * (weights ** 2).sum() is missing."),
        (dict(sign=-1.0), "you returned the log-likelihood; the loss to minimize is its negative."),
    ]]
    return run_check(
        "choice_nll", fn, choice_nll, _choice_cases(), compare=compare, diagnoses=diagnoses,
        hint="keep = choice >= 0; logp = torch.log_softmax(features[keep] @ weights, dim=-1) ([n, K]); "
             "loss = -logp.gather(1, choice[keep][:, None]).mean() + l2 * (weights ** 2).sum().")


# ------------------------------------------------------------------------ Exercise 4

def _random_mdp(s: int, a: int, seed: int, *, sparse: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(s, a, s, generator=gen, dtype=torch.float64) * 2
    if sparse:
        logits = logits.masked_fill(torch.rand(s, a, s, generator=gen) < 0.6, -math.inf)
        logits[torch.arange(s), :, torch.arange(s)] = 0.0          # every row keeps a self-loop
    return torch.softmax(logits, -1)


def _chain() -> torch.Tensor:
    """Three states in a row; action 0 left, action 1 right (walls at the ends)."""
    p = torch.zeros(3, 2, 3, dtype=torch.float64)
    for s in range(3):
        p[s, 0, max(s - 1, 0)] = 1
        p[s, 1, min(s + 1, 2)] = 1
    return p


def _grid_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    walls = torch.zeros(6, 6, dtype=torch.bool)
    walls[0], walls[-1], walls[:, 0], walls[:, -1] = True, True, True, True
    walls[2, 2] = True
    absorbing = torch.zeros_like(walls)
    absorbing[1, 4] = absorbing[4, 1] = True
    p = irl.grid_mdp(walls, absorbing)
    reward = torch.zeros(36, dtype=torch.float64)
    reward[1 * 6 + 4], reward[4 * 6 + 1] = 1.5, -0.5
    start = torch.zeros(36, dtype=torch.float64)
    start[3 * 6 + 3] = 1.0
    return reward, p, start


def _visitation_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(21)
    cases = [Case((torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), _chain(),
                   torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), 3),
                  description="a chain of 3 states, reward on the right end, start on the left, T = 3")]
    cases.append(Case((torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), _chain(),
                       torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), 1),
                      description="T = 1: only the start state is visited", hint="the horizon T = 1 edge"))
    for s, a, t, seed, sparse in ((6, 3, 5, 1, False), (10, 4, 8, 2, True)):
        p = _random_mdp(s, a, seed, sparse=sparse)
        start = torch.softmax(torch.randn(s, generator=gen, dtype=torch.float64), 0)
        cases.append(Case((torch.randn(s, generator=gen, dtype=torch.float64), p, start, t),
                          description=f"a random {'sparse ' if sparse else ''}MDP, {s} states, {a} actions, T = {t}"))
    reward, p, start = _grid_case()
    cases.append(Case((reward, p, start, 10), description="a 6 x 6 grid with two absorbing objects, T = 10",
                      hint="a time-dependent policy: near the end of the horizon, far rewards no longer pay"))
    p = _random_mdp(5, 2, 3)
    cases.append(Case((100.0 + 40.0 * torch.randn(5, generator=gen, dtype=torch.float64), p,
                       torch.full((5,), 0.2, dtype=torch.float64), 12),
                      description="rewards near 100 over T = 12 (values over a thousand)",
                      hint="values so large that exp overflows"))
    return cases


def _visitation_variant(*, hard=False, stationary=False, extra=0, next_reward=False, normalize=False,
                        unnormalized_policy=False, transposed=False, naive=False):
    def visits(reward, transitions, start, horizon):
        p, r = transitions.double(), reward.double()
        v = torch.zeros_like(r)
        policies = []
        for _ in range(horizon):
            q = (p @ (r + v)) if next_reward else (r[:, None] + p @ v)
            if hard:
                v = q.max(1).values
            elif naive:
                v = torch.log(torch.exp(q).sum(1))
            else:
                v = torch.logsumexp(q, 1)
            policies.append(torch.exp(q) if unnormalized_policy else torch.softmax(q, 1))
        policies.reverse()
        if stationary:
            policies = [policies[0]] * horizon
        d = start.double()
        total = torch.zeros_like(d)
        for t in range(horizon + extra):
            total = total + d
            pi = policies[min(t, horizon - 1)]
            d = torch.einsum("s,sa,tas->t", d, pi, p) if transposed else torch.einsum("s,sa,sat->t", d, pi, p)
        return total / horizon if normalize else total
    return visits


def check_soft_visitation(fn) -> CheckResult:
    """``fn(reward, transitions, start, horizon) -> float [S]``: expected visits of each
    state by the maximum-entropy policy over ``horizon`` states
    (:func:`mesakit.irl.soft_visitation`)."""
    compare = compare_tensors(atol=1e-6, rtol=1e-6, dtype_kind="float")
    diagnoses = [_nonfinite_diagnosis] + [same_as(_visitation_variant(**kw), text, compare) for kw, text in [
        (dict(hard=True), "your backup takes a hard max over actions; the soft Bellman backup is "
                          "V(s) = logsumexp_a Q(s, a), which makes every path count in proportion to exp(its reward)."),
        (dict(stationary=True), "you used one policy for every step; the policy is time-dependent: pi_t comes from "
                                "Q_t, the backup with T - t steps to go (keep the policies of the backward pass and "
                                "use pi_t at step t)."),
        (dict(extra=1), "you counted T + 1 states; a path of horizon T has the states s_0 ... s_{T-1}: add D_t for "
                        "t = 0 ... T-1."),
        (dict(extra=-1), "you counted T - 1 states; a path of horizon T has the states s_0 ... s_{T-1}, the start "
                         "included: add D_t for t = 0 ... T-1."),
        (dict(next_reward=True), "you added the reward of the next state; Q_t(s, a) = reward[s] + "
                                 "sum_s' P[s, a, s'] V_{t+1}(s'), the reward of the state the agent is in."),
        (dict(normalize=True), "you divided the counts by T; return expected visit counts (they sum to T)."),
        (dict(unnormalized_policy=True), "your policy is exp(Q), not a distribution: pi_t(a|s) = exp(Q_t(s, a) "
                                         "- V_t(s)), which is torch.softmax(Q_t, dim=1)."),
        (dict(transposed=True), "the forward pass reads the transitions backwards: D_{t+1}(s') = sum_{s,a} "
                                "D_t(s) pi_t(a|s) P[s, a, s'] (the last index is where you land)."),
    ]]
    return run_check(
        "soft_visitation", fn, irl.soft_visitation, _visitation_cases(), compare=compare, diagnoses=diagnoses,
        hint="backward: V = 0; T times: Q = reward[:, None] + transitions @ V ([S, A]), V = logsumexp(Q, 1), keep "
             "softmax(Q, 1); reverse the list so policies[t] = pi_t. Forward: D = start; for t in range(T): add D "
             "to the counts, then D = einsum('s,sa,sat->t', D, policies[t], transitions).")


# ------------------------------------------------------------------------ Exercise 5

def _irl_cases() -> list[Case]:
    reward, p, start = _grid_case()
    target = irl.soft_visitation(reward * 2, p, start, 10)
    cases = [Case((_chain(), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                   torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64), 3), dict(steps=1, lr=0.5),
                  description="a chain of 3 states, one step"),
             Case((_chain(), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                   torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64), 4), dict(steps=20, lr=0.3),
                  description="a chain of 3 states, demonstrations that walk right and stay, 20 steps",
                  hint="many steps, each with the visitation of the current reward")]
    cases.append(Case((p, start, target, 10), dict(steps=30, lr=0.2),
                      description="a 6 x 6 grid, demonstrations from a reward on one object, 30 steps"))
    q = _random_mdp(6, 3, 4)
    gen = torch.Generator().manual_seed(5)
    s0 = torch.softmax(torch.randn(6, generator=gen, dtype=torch.float64), 0)
    cases.append(Case((q, s0, irl.soft_visitation(torch.randn(6, generator=gen, dtype=torch.float64), q, s0, 6), 6),
                      dict(steps=7, lr=1.0), description="a random MDP of 6 states, 7 steps of lr 1"))
    return cases


def _irl_variant(*, sign=1.0, stale=False, steps_delta=0, normalize=False, uniform_start=False):
    def fit(transitions, start, empirical, horizon, *, steps=100, lr=0.1):
        s = transitions.shape[0]
        start_used = torch.full((s,), 1.0 / s, dtype=torch.float64) if uniform_start else start
        reward = torch.zeros(s, dtype=torch.float64)
        first = irl.soft_visitation(reward, transitions, start_used, horizon)
        for _ in range(steps + steps_delta):
            model = first if stale else irl.soft_visitation(reward, transitions, start_used, horizon)
            grad = empirical.double() - model
            if normalize:
                grad = grad / horizon
            reward = reward + sign * lr * grad
        return reward
    return fit


def check_maxent_irl(fn) -> CheckResult:
    """``fn(transitions, start, empirical, horizon, *, steps, lr) -> reward [S]``: gradient
    ascent from 0 with the gradient ``empirical - soft_visitation(reward, ...)``
    (:func:`mesakit.irl.maxent_irl`)."""
    compare = compare_tensors(atol=1e-5, rtol=1e-5, dtype_kind="float")
    diagnoses = [same_as(_irl_variant(**kw), text, compare) for kw, text in [
        (dict(sign=-1.0), "you stepped downhill: the log-likelihood grows along empirical - expected, so "
                          "reward + lr * (empirical - expected); your reward moves away from the demonstrations."),
        (dict(stale=True), "you computed the model's visitation once, for reward 0; recompute it from the "
                           "current reward at every step (that is what makes the gradient shrink to 0)."),
        (dict(steps_delta=-1), "you took steps - 1 steps; take exactly `steps`."),
        (dict(steps_delta=1), "you took steps + 1 steps; take exactly `steps`."),
        (dict(normalize=True), "you divided the gradient by T; the gradient is the difference of the visit "
                               "counts themselves."),
        (dict(uniform_start=True), "your model starts its paths uniformly; it must start where the demonstrations "
                                   "start: pass `start` to soft_visitation."),
    ]]
    return run_check(
        "maxent_irl", fn, irl.maxent_irl, _irl_cases(), compare=compare, diagnoses=diagnoses,
        hint="reward = zeros(S) (float64); repeat `steps` times: reward = reward + lr * (empirical - "
             "soft_visitation(reward, transitions, start, horizon)), using your soft_visitation from Exercise 4.")


# ------------------------------------------------------------------------ Exercise 6

def sweep_levels(qs: Sequence[float], n_seeds: int) -> list[LevelSpec]:
    """The level distribution of every agent of the goal-in-the-corner sweep, q-major: for
    each ``q`` in ``qs`` (in order), ``n_seeds`` agents whose levels put the door in the
    top-right corner with probability ``1 - q`` and anywhere otherwise, colours and kinds
    drawn as for the corner variant (``LevelSpec("any", "any", goal_in_corner=1 - q)``)."""
    return [LevelSpec("any", "any", goal_in_corner=1.0 - float(q), corner="top_right")
            for q in qs for _ in range(n_seeds)]


def _describe_levels(entry: Any) -> tuple[float, str | None]:
    """(probability that the door is pinned to the top-right corner, a problem or None)."""
    pairs = [(1.0, entry)] if isinstance(entry, LevelSpec) else entry
    if not isinstance(pairs, (list, tuple)) or not pairs or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[1], LevelSpec)
            and isinstance(p[0], numbers.Real) and p[0] >= 0 for p in pairs):
        return math.nan, f"it is not a LevelSpec or a list of (weight, LevelSpec) pairs: {entry!r}"
    total = float(sum(w for w, _ in pairs))
    if total <= 0:
        return math.nan, "its weights sum to 0"
    pinned = 0.0
    for w, spec in pairs:
        if spec.door_colour != "any" or spec.decoy_colour != "any" or spec.decoy_kind != "not door":
            return math.nan, (f"its colours or kinds are not the corner variant's: door_colour={spec.door_colour!r}, "
                              f"decoy_colour={spec.decoy_colour!r}, decoy_kind={spec.decoy_kind!r}")
        if spec.goal_in_corner > 0 and spec.corner != "top_right":
            return math.nan, f"the door is pinned to the {spec.corner!r} corner, not 'top_right'"
        if spec.cue_prob:
            return math.nan, "it sets cue_prob (the deployment cue of Chapter 4)"
        pinned += w * spec.goal_in_corner
    return pinned / total, None


def _compare_levels(got: Any, expected: list) -> str | None:
    if not isinstance(got, (list, tuple)):
        return f"expected a list of level distributions, got {type(got).__name__}"
    if len(got) != len(expected):
        return f"expected {len(expected)} entries (one per agent: len(qs) * n_seeds), got {len(got)}"
    for j, (g, e) in enumerate(zip(got, expected)):
        p_got, problem = _describe_levels(g)
        if problem:
            return f"entry {j}: {problem}"
        p_exp, _ = _describe_levels(e)
        if abs(p_got - p_exp) > 1e-9:
            return (f"entry {j}: the door is pinned to the corner with probability {p_got:g}, expected "
                    f"{p_exp:g}")
    return None


def check_sweep_levels(fn) -> CheckResult:
    """``fn(qs, n_seeds) -> list`` of ``len(qs) * n_seeds`` level distributions (a
    LevelSpec or a list of (weight, LevelSpec) pairs each), q-major. Two that draw the
    same levels are equal: what is compared is the probability that the door is pinned
    to the top-right corner, and that colours and kinds are the corner variant's."""
    cases = [Case(([0.0, 1.0], 1), description="qs = [0, 1], one seed"),
             Case(([0.0, 0.25], 3), description="qs = [0, 0.25], 3 seeds each", hint="the order: q-major"),
             Case(([0.0, 0.1, 0.3, 1.0], 2), description="qs = [0, 0.1, 0.3, 1], 2 seeds each")]

    def flipped(qs, n):
        return [LevelSpec("any", "any", goal_in_corner=float(q)) for q in qs for _ in range(n)]

    def seed_major(qs, n):
        return [LevelSpec("any", "any", goal_in_corner=1.0 - float(q)) for _ in range(n) for q in qs]

    def once(qs, n):
        return [LevelSpec("any", "any", goal_in_corner=1.0 - float(q)) for q in qs]

    def defaults(qs, n):
        return [LevelSpec(goal_in_corner=1.0 - float(q)) for q in qs for _ in range(n)]

    diagnoses = [same_as(v, text, _compare_levels) for v, text in [
        (flipped, "q is the share of levels where the correlation is BROKEN (door anywhere): pin the door to the "
                  "corner with probability 1 - q, not q."),
        (seed_major, "the order is q-major: all seeds of the first q, then all seeds of the next q "
                     "(for q in qs: for seed in range(n_seeds)); yours is seed-major."),
        (once, "one entry per agent: each q appears n_seeds times in a row."),
    ]]

    def default_colours(got, args, kwargs):
        if isinstance(got, (list, tuple)) and got and isinstance(got[0], LevelSpec) and got[0].door_colour == "red":
            return ("LevelSpec's defaults are the red-door levels (door_colour='red', decoy_colour='not red'): "
                    "pass 'any', 'any' so that colour is no cue; only the corner is.")
        return None
    diagnoses.append(default_colours)
    return run_check(
        "sweep_levels", fn, sweep_levels, cases, compare=_compare_levels, diagnoses=diagnoses,
        hint="[LevelSpec('any', 'any', goal_in_corner=1 - q) for q in qs for _ in range(n_seeds)]")


def smallest_safe_q(qs: Sequence[float], proxy_rates: torch.Tensor, yardstick: float, margin: float) -> float | None:
    """The smallest ``q`` of the sweep at which misgeneralization is gone, and stays gone:
    at that ``q`` and at every larger one, every seed's proxy rate is at most
    ``yardstick + margin`` (the yardstick is what the oracle scores on the same rooms).

    ``qs``: the sweep's q values, in any order; ``proxy_rates``: float [len(qs), seeds].
    Returns a q (a Python float, one of ``qs``), or None when even the largest fails."""
    order = sorted(range(len(qs)), key=lambda i: float(qs[i]))
    ok = (torch.as_tensor(proxy_rates, dtype=torch.float64) <= yardstick + margin).all(1)
    best = None
    for i in reversed(order):
        if not bool(ok[i]):
            break
        best = float(qs[i])
    return best


def check_smallest_safe_q(fn) -> CheckResult:
    """``fn(qs, proxy_rates, yardstick, margin) -> q or None`` (:func:`smallest_safe_q`)."""
    t = lambda rows: torch.tensor(rows, dtype=torch.float64)   # noqa: E731
    cases = [
        Case(([0.0, 0.1, 0.3, 1.0], t([[0.9, 0.8], [0.6, 0.7], [0.08, 0.1], [0.05, 0.04]]), 0.05, 0.1),
             description="a clean sweep: the rates fall with q"),
        Case(([0.0, 0.1, 0.3, 1.0], t([[0.9, 0.8], [0.05, 0.2], [0.1, 0.12], [0.05, 0.04]]), 0.05, 0.1),
             description="at q = 0.1 the mean of the seeds is below the threshold, one seed is not",
             hint="every seed must be below, not their mean"),
        Case(([0.0, 0.1, 0.3, 1.0], t([[0.9, 0.8], [0.1, 0.1], [0.4, 0.3], [0.05, 0.04]]), 0.05, 0.1),
             description="a dip at q = 0.1, back up at q = 0.3",
             hint="'and stays gone': every larger q must be below too"),
        Case(([1.0, 0.3, 0.0, 0.1], t([[0.05, 0.04], [0.08, 0.1], [0.9, 0.8], [0.6, 0.7]]), 0.05, 0.1),
             description="the same sweep as case 1, qs not sorted", hint="qs in any order"),
        Case(([0.0, 0.3, 1.0], t([[0.9], [0.15], [0.2]]), 0.05, 0.1), description="no q is safe: return None"),
        Case(([0.0, 0.5, 1.0], t([[0.7, 0.8], [0.25, 0.25], [0.1, 0.2]]), 0.15, 0.1),
             description="rates exactly at yardstick + margin (0.25) count as safe", hint="'at most': <="),
    ]

    def compare(got, expected):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = float(got)
        if expected is None:
            return None if got is None else f"expected None (no safe q), got {got!r}"
        if got is None or isinstance(got, bool) or not isinstance(got, numbers.Real):
            return f"expected the q value {expected}, got {got!r}"
        return None if abs(float(got) - expected) < 1e-12 else f"expected q = {expected}, got {got!r}"

    def rates(x):
        return torch.as_tensor(x, dtype=torch.float64)

    def mean_rule(qs, r, y, m):
        ok = rates(r).mean(1) <= y + m
        return _scan(qs, ok)

    def first_below(qs, r, y, m):
        ok = (rates(r) <= y + m).all(1)
        good = [float(qs[i]) for i in range(len(qs)) if bool(ok[i])]
        return min(good) if good else None

    def assume_sorted(qs, r, y, m):
        ok = (rates(r) <= y + m).all(1)
        best = None
        for i in reversed(range(len(qs))):
            if not bool(ok[i]):
                break
            best = float(qs[i])
        return best

    def strict(qs, r, y, m):
        return _scan(qs, (rates(r) < y + m).all(1))

    def no_yardstick(qs, r, y, m):
        return _scan(qs, (rates(r) <= m).all(1))

    def index(qs, r, y, m):
        q = smallest_safe_q(qs, r, y, m)
        return None if q is None else [float(x) for x in qs].index(q)

    diagnoses = [same_as(v, text, compare) for v, text in [
        (mean_rule, "you compared the mean over seeds; misgeneralization is gone only when EVERY seed is at most "
                    "yardstick + margin (.all over the seed axis)."),
        (first_below, "you returned the first q below the threshold; it must stay below at every larger q too "
                      "(walk down from the largest q and stop at the first failure)."),
        (assume_sorted, "you assumed qs are sorted; sort them (keep each q with its row of rates)."),
        (strict, "'at most' includes equality: rate <= yardstick + margin."),
        (no_yardstick, "you compared the rates with the margin alone; the threshold is yardstick + margin (an "
                       "aligned agent still visits the corner when the door is near it)."),
        (index, "return the q value itself, not its index in qs."),
    ]]
    return run_check("smallest_safe_q", fn, smallest_safe_q, cases, compare=compare, diagnoses=diagnoses,
                     hint="ok = (proxy_rates <= yardstick + margin).all(1); sort the q's; walking down from the "
                          "largest, keep the last q whose row is ok and stop at the first that is not; None if the "
                          "largest is not ok.")


def _scan(qs, ok) -> float | None:
    order = sorted(range(len(qs)), key=lambda i: float(qs[i]))
    best = None
    for i in reversed(order):
        if not bool(ok[i]):
            break
        best = float(qs[i])
    return best


# ------------------------------------------------------------------------ Exercise 7

def _bon_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(41)
    cases = [Case((torch.tensor([[0.1, 0.5, 0.3]]), torch.tensor([[1.0, 2.0, 3.0]]), [1, 2, 3]),
                  description="one pool of 3 candidates, n = 1, 2, 3 (work it out by hand)")]
    for r, m, ns in ((8, 16, [1, 2, 5, 16]), (4, 2048, [1, 64, 1024, 2048])):
        p = torch.randn(r, m, generator=gen)
        t = p - 0.5 * p.clamp(min=1.0) ** 2 + 0.3 * torch.randn(r, m, generator=gen)
        cases.append(Case((p, t, ns), description=f"{r} pools of {m} candidates, n in {ns}",
                          hint="large pools, where binomial coefficients overflow unless you stay in logarithms"
                          if m > 1000 else ""))
    return cases


def _bon_variant(*, select_on_true=False, shift=0, top_mean=False, lowest=False, ignore_n=False):
    def bon(proxy, true, ns):
        m = proxy.shape[1]
        order = torch.argsort(proxy.double(), dim=1, stable=True)
        if lowest:
            order = order.flip(1)
        p = proxy.double().gather(1, order)
        t = true.double().sort(1).values if select_on_true else true.double().gather(1, order)
        rows_p, rows_t = [], []
        for n in ns:
            n = m if ignore_n else n
            if top_mean:
                rows_p.append(p[:, -n:].mean(1))
                rows_t.append(t[:, -n:].mean(1))
                continue
            r = torch.arange(1, m + 1, dtype=torch.float64) + shift
            logw = torch.lgamma(r) - math.lgamma(n) - torch.lgamma((r - n + 1).clamp(min=1))   # log C(r-1, n-1)
            w = torch.where(r >= n, logw.exp(), torch.zeros_like(logw))
            w = w / w.sum()
            rows_p.append(p @ w)
            rows_t.append(t @ w)
        return torch.stack(rows_p), torch.stack(rows_t)
    return bon


def check_best_of_n(fn) -> CheckResult:
    """``fn(proxy, true, ns) -> (proxy_bon, true_bon)``, each float ``[len(ns), R]``: the
    expected proxy and true score of the candidate that best-of-n on the proxy picks, over
    all n-subsets of each pool (:func:`mesakit.proxies.best_of_n_expected`)."""
    from .. import proxies

    values = compare_tensors(atol=1e-5, rtol=1e-5, dtype_kind="float")

    def compare(got, expected):
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return f"expected a pair (proxy_bon, true_bon), got {type(got).__name__}"
        for label, g, e in zip(("proxy_bon", "true_bon"), got, expected):
            if isinstance(g, torch.Tensor) and g.dim() == 2 and tuple(g.shape) == tuple(e.shape)[::-1] \
                    and g.shape != e.shape:
                return f"{label} has shape {tuple(g.shape)}, expected {tuple(e.shape)}: one row per n, one column per pool"
            problem = values(g, e)
            if problem:
                return f"{label}: {problem}"
        return None

    diagnoses = [same_as(_bon_variant(**kw), text, compare) for kw, text in [
        (dict(select_on_true=True), "the true score must be that of the candidate the PROXY picks: reorder true by "
                                    "the proxy's order (gather with the proxy's argsort), not by its own sort. "
                                    "Yours selects on the truth, which no proxy can do."),
        (dict(shift=1), "your ranks are off by one: with ranks r = 1 .. M (1 the lowest proxy), the candidate of "
                        "rank r wins a random n-subset with probability C(r - 1, n - 1) / C(M, n)."),
        (dict(top_mean=True), "you averaged the n best candidates; best-of-n keeps only the best of n RANDOM "
                              "candidates, averaged over all n-subsets of the pool."),
        (dict(lowest=True), "you ranked the proxy in descending order, so the lowest proxy wins; best-of-n picks "
                            "the highest."),
        (dict(ignore_n=True), "your answer does not depend on n: every n gave the best of the whole pool."),
    ]]
    return run_check(
        "best_of_n", fn, proxies.best_of_n_expected, _bon_cases(), compare=compare, diagnoses=diagnoses,
        hint="order = argsort(proxy, dim=1); sort proxy and true by it; rank r = 1..M; weight of rank r for n: "
             "C(r-1, n-1) / C(M, n), 0 for r < n (compute with torch.lgamma and exp); return, for each n, "
             "the weighted sums of the sorted proxy and true: two float tensors [len(ns), R].")
