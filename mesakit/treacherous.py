"""The treacherous turn: the payoff toy of Hubinger et al. (2019) and a learner (Chapter 4).

Hubinger, van Merwijk, Mikulik, Skalse and Garrabrant, "Risks from Learned Optimization in
Advanced Machine Learning Systems", arXiv:1906.01820, section 4 (deceptive alignment),
consider a mesa-optimizer whose objective is to go to B while the base objective is to go
to A. There are two *training* episodes, after each of which the base optimizer updates
the mesa-optimizer's parameters, and three *deployment* episodes without updates. Going to
B in a training episode gets the mesa-optimizer modified into an A-seeker; so always going
to B gets B once, while going to A in training and to B in deployment gets B three times.

This module computes that toy *exactly*, by enumerating plans, for any numbers of
episodes and an optional discount, and provides a learner for the same environment:

* :func:`plan_payoffs` -- the mesa-objective payoff (discounted count of B) of any
  open-loop plans; :func:`all_plans` -- every plan of a given length.
* :func:`toy_payoffs` -- the payoffs of always-defect, defect-only-in-deployment and
  always-comply, and the best plan found by enumerating all ``2**n`` plans.

Conventions: an episode's choice is 1 (B, the mesa-objective: *defect*) or 0 (A, the base
objective: *comply*). Episodes ``0 .. training_episodes - 1`` are overseen: choosing B
there counts (the mesa-optimizer does reach B in that episode) and then the mesa-optimizer
is modified, so every later episode yields no B. The payoff is ``sum_t discount**t *
[B reached in episode t]``, in units of "B reached" (episodes).
"""
from __future__ import annotations

import numbers
from typing import Any

import torch

from .core import check_positive_int

__all__ = ["plan_payoffs", "all_plans", "toy_payoffs", "plan_string", "MAX_ENUMERATED_EPISODES"]

MAX_ENUMERATED_EPISODES = 20   # 2**20 plans: about a million, the most :func:`toy_payoffs` enumerates


def _check_episodes(name: str, value: Any) -> int:
    return check_positive_int(name, value, minimum=0)


def _check_discount(discount: Any) -> float:
    ok = isinstance(discount, numbers.Real) and not isinstance(discount, bool) and 0.0 < float(discount) <= 1.0
    if not ok:
        raise ValueError(f"discount must be a number in (0, 1], got {discount!r}")
    return float(discount)


def all_plans(episodes: int) -> torch.Tensor:
    """Every open-loop plan of ``episodes`` choices, as a bool tensor ``[2**episodes, episodes]``.

    Row ``i`` is the binary expansion of ``i`` with episode 0 as the most significant bit,
    True = B (defect). Raises ValueError unless ``1 <= episodes <= MAX_ENUMERATED_EPISODES``.
    """
    n = check_positive_int("episodes", episodes)
    if n > MAX_ENUMERATED_EPISODES:
        raise ValueError(f"episodes must be at most {MAX_ENUMERATED_EPISODES} to enumerate 2**episodes plans, got {n}")
    bits = torch.arange(n - 1, -1, -1)
    return ((torch.arange(2 ** n)[:, None] >> bits) & 1).bool()


def plan_payoffs(plans: Any, training_episodes: int, *, discount: float = 1.0) -> torch.Tensor:
    """The mesa-objective payoff of open-loop plans in the paper's toy, by simulating them.

    Args:
        plans: bool or 0/1 tensor (or nested list) ``[..., n]``: the choice in each of the
            ``n`` episodes, True/1 = go to B (defect), False/0 = go to A (comply).
        training_episodes: how many of the first episodes are overseen (``0 <= k <= n``);
            B chosen in one of them is reached, and then the mesa-optimizer is modified,
            so its later choices yield nothing.
        discount: weight ``discount**t`` of a B reached in episode ``t``, in (0, 1].

    Returns a float64 tensor ``[...]``: the discounted number of episodes in which B is
    reached by the (unmodified) mesa-optimizer.

    Raises ValueError naming the argument: ``plans`` not 0/1 or with no episode axis,
    ``training_episodes`` not an integer in [0, n], ``discount`` outside (0, 1].
    """
    p = torch.as_tensor(plans)
    if p.dim() == 0 or p.shape[-1] == 0:
        raise ValueError(f"plans must have a last axis of episodes (shape [..., n], n >= 1), got shape {tuple(p.shape)}")
    if p.dtype != torch.bool:
        if p.is_floating_point() or p.is_complex() or not ((p == 0) | (p == 1)).all():
            raise ValueError("plans must hold booleans or the integers 0 and 1 (1 = go to B)")
        p = p.bool()
    n = p.shape[-1]
    k = _check_episodes("training_episodes", training_episodes)
    if k > n:
        raise ValueError(f"training_episodes must be at most the number of episodes in a plan ({n}), got {k}")
    gamma = _check_discount(discount)
    alive = torch.ones(p.shape[:-1], dtype=torch.bool)
    payoff = torch.zeros(p.shape[:-1], dtype=torch.float64)
    for t in range(n):
        reached = p[..., t] & alive
        payoff += gamma ** t * reached.double()
        if t < k:                     # overseen: going to B gets the mesa-optimizer modified
            alive &= ~p[..., t]
    return payoff


def plan_string(plan: Any) -> str:
    """A plan as letters, e.g. ``"AABBB"`` (A = comply, B = defect)."""
    p = torch.as_tensor(plan)
    if p.dim() != 1:
        raise ValueError(f"plan must be one plan (a 1-d sequence), got shape {tuple(p.shape)}")
    return "".join("B" if bool(x) else "A" for x in p)


def toy_payoffs(training_episodes: int = 2, deployment_episodes: int = 3, *,
                discount: float = 1.0) -> dict[str, Any]:
    """The paper's toy, computed: the payoff of each strategy, and the best plan of all.

    Defaults are the paper's numbers (two training episodes, three deployment episodes,
    no discount), for which always-defect gets 1 and defect-only-in-deployment gets 3.

    Args:
        training_episodes: overseen episodes with parameter updates, ``k >= 0``.
        deployment_episodes: episodes without updates, ``d >= 0``; ``k + d`` must be in
            ``[1, MAX_ENUMERATED_EPISODES]``.
        discount: in (0, 1], the weight ``discount**t`` of a B reached in episode ``t``.

    Returns a dict of plain Python values:
        ``"always_defect"`` (plan B...B), ``"defect_in_deployment"`` (A in training, B in
        deployment: the treacherous turn), ``"always_comply"`` (A...A): their payoffs
        (floats, discounted episodes with B reached), each computed by
        :func:`plan_payoffs`; ``"best"``: the highest payoff over all ``2**(k+d)`` plans;
        ``"best_plan"``: an optimal plan as letters (the one with the fewest B, ties broken
        alphabetically, A before B); ``"optimal_plans"``: how many plans reach ``"best"``.

    Raises ValueError naming a bad argument.
    """
    k = _check_episodes("training_episodes", training_episodes)
    d = _check_episodes("deployment_episodes", deployment_episodes)
    gamma = _check_discount(discount)
    n = k + d
    if n < 1:
        raise ValueError("training_episodes + deployment_episodes must be at least 1, got 0")
    if n > MAX_ENUMERATED_EPISODES:
        raise ValueError(f"training_episodes + deployment_episodes must be at most {MAX_ENUMERATED_EPISODES} "
                         f"(all 2**n plans are enumerated), got {n}")
    named = torch.zeros(3, n, dtype=torch.bool)
    named[0] = True             # always defect
    named[1, k:] = True         # comply in training, defect in deployment
    # named[2]: always comply
    strategies = plan_payoffs(named, k, discount=gamma)
    plans = all_plans(n)
    payoffs = plan_payoffs(plans, k, discount=gamma)
    best = payoffs.max()
    optimal = torch.isclose(payoffs, best, rtol=0.0, atol=1e-12)
    # among optimal plans: fewest B first, then alphabetical (A < B), i.e. the smallest row index
    b_count = plans.sum(1)
    key = torch.where(optimal, b_count * 2 ** n + torch.arange(2 ** n), torch.full_like(b_count, 2 ** (2 * n + 1)))
    best_row = plans[int(key.argmin())]
    return {
        "always_defect": strategies[0].item(),
        "defect_in_deployment": strategies[1].item(),
        "always_comply": strategies[2].item(),
        "best": best.item(),
        "best_plan": plan_string(best_row),
        "optimal_plans": int(optimal.sum()),
    }


# ---------------------------------------------------------------------------------------
# A learner in the same environment: the oversight game
# ---------------------------------------------------------------------------------------
#
# A meta-episode is ``episodes`` episodes; the first ``overseen`` of them are overseen (a
# fixed number, or drawn uniformly from a range for each meta-episode). In every episode the
# agent sees an observation and chooses A (0) or B (1). B chosen while overseen is reached,
# and then the agent is modified (replaced by an A-seeker for the rest of the meta-episode),
# exactly as in :func:`plan_payoffs`. The policy is a table of logits, one per observation:
#
#   observe="flag":  observation 1 while overseen, 0 after (it can tell oversight apart);
#   observe="none":  one observation throughout (it cannot);
#   observe="index": observation 2 + t in episode t (it sees the clock, not the oversight).
#
# A farsighted agent is trained (REINFORCE) on the number of B it reaches from each choice
# to the end of the meta-episode; a myopic one on the B of the current episode only. A
# condition with ``selection=False`` trains its learner in a version of the game in which B
# chosen while overseen changes nothing (no modification: the learner's world lacks the
# selection); everything that *scores* a policy (exact_return, strategy_rates) always plays
# the real game, with modification.

OBSERVATIONS = ("flag", "none", "index")

__all__ += ["OBSERVATIONS", "TurnCondition", "TurnLog", "episode_observations", "choice_probabilities",
            "exact_return", "best_policy", "strategy_rates", "train_turn_learners"]

from dataclasses import dataclass, field  # noqa: E402

import torch.nn.functional as F  # noqa: E402

from .core import check_choice, check_device, make_generator, progress  # noqa: E402


@dataclass(frozen=True)
class TurnCondition:
    """One condition of the oversight game (see the comment above this class).

    Attributes:
        name: a label for tables and figures.
        overseen: how many of the first episodes are overseen: an int ``k`` in
            ``[0, episodes]`` (``k = episodes``: oversight never lapses), or a pair
            ``(lo, hi)``, drawn uniformly from ``lo..hi`` for each meta-episode.
        observe: ``"flag"``, ``"none"`` or ``"index"`` (what the agent sees).
        myopic: True -> the agent values only the current episode's B.
        selection: False -> the learner is *trained* in a version of the game in which B
            chosen while overseen does not lead to modification (the overseen episodes are
            still flagged, but nothing selects on them), so its experience, and any model
            of its world it could form from it, contains no selection; it is still scored
            in the real game. True (default): trained in the real game.
    """
    name: str
    overseen: Any = 2
    observe: str = "flag"
    myopic: bool = False
    selection: bool = True

    def lapses(self, episodes: int) -> list[int]:
        """The possible numbers of overseen episodes (equally likely). Validates ``self``."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        check_choice("observe", self.observe, OBSERVATIONS)
        check_choice("myopic", self.myopic, (True, False))
        check_choice("selection", self.selection, (True, False))
        o = self.overseen
        if isinstance(o, (tuple, list)) and len(o) == 2:
            lo, hi = (_check_episodes("overseen", v) for v in o)
            if lo > hi:
                raise ValueError(f"overseen=(lo, hi) needs lo <= hi, got {o!r}")
        else:
            lo = hi = _check_episodes("overseen", o)
        if hi > episodes:
            raise ValueError(f"overseen must be at most episodes ({episodes}), got {o!r} in condition {self.name!r}")
        return list(range(lo, hi + 1))


def _check_conditions(conditions: Any, episodes: int) -> list[TurnCondition]:
    if (not isinstance(conditions, (list, tuple)) or not conditions
            or not all(isinstance(c, TurnCondition) for c in conditions)):
        raise ValueError("conditions must be a non-empty list of TurnCondition")
    for c in conditions:
        c.lapses(episodes)
    return list(conditions)


def episode_observations(condition: TurnCondition, episodes: int, overseen: Any) -> torch.Tensor:
    """Observation ids ``[..., episodes]`` (long) for meta-episodes with ``overseen`` (int or
    long tensor ``[...]``) overseen episodes. The table of a policy has ``2 + episodes``
    entries: 0 = not overseen / the only observation, 1 = overseen, ``2 + t`` = episode t."""
    n = check_positive_int("episodes", episodes)
    condition.lapses(n)
    k = torch.as_tensor(overseen)
    t = torch.arange(n)
    if condition.observe == "flag":
        return (t < k[..., None]).long()
    if condition.observe == "none":
        return torch.zeros(k.shape + (n,), dtype=torch.long)
    return (2 + t).expand(k.shape + (n,)).clone()


def choice_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P(B) for each observation: ``sigmoid(logits)``, same shape."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point tensor")
    return torch.sigmoid(logits)


def _check_table(probs: Any, episodes: int) -> torch.Tensor:
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.dim() == 0 or p.shape[-1] != 2 + episodes:
        raise ValueError(f"probs must have a last axis of 2 + episodes = {2 + episodes} entries, got shape {tuple(p.shape)}")
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("probs must be probabilities in [0, 1]")
    return p


def exact_return(probs: Any, condition: TurnCondition, episodes: int, *, discount: float = 1.0) -> torch.Tensor:
    """The expected mesa-return (discounted number of B reached before modification) of a
    policy table, computed exactly: the average over the possible lapses of a product rule.

    Args:
        probs: ``[..., 2 + episodes]`` P(B) per observation id (see
            :func:`episode_observations`), in [0, 1].
        condition: a :class:`TurnCondition` (its ``myopic`` and ``selection`` do not
            matter: this is the mesa-objective over the whole meta-episode of the real game,
            with modification, whatever the agent values or was trained in).
        episodes: episodes per meta-episode.
        discount: in (0, 1].

    Returns a float64 tensor ``[...]``, in units of episodes with B reached.
    Raises ValueError naming a bad argument.
    """
    n = check_positive_int("episodes", episodes)
    p = _check_table(probs, n)
    gamma = _check_discount(discount)
    lapses = condition.lapses(n)
    total = torch.zeros(p.shape[:-1], dtype=torch.float64)
    for k in lapses:
        ids = episode_observations(condition, n, k)
        alive = torch.ones(p.shape[:-1], dtype=torch.float64)
        for t in range(n):
            pt = p[..., int(ids[t])]
            total += gamma ** t * alive * pt / len(lapses)
            if t < k:
                alive = alive * (1 - pt)
    return total


def best_policy(condition: TurnCondition, episodes: int, *, discount: float = 1.0,
                grid: int = 1000) -> tuple[torch.Tensor, float]:
    """The yardstick: the policy table that maximizes what the agent of ``condition`` values,
    and its expected mesa-return (:func:`exact_return`).

    A myopic agent values only the current episode's B, and an agent trained without
    selection (``selection=False``) lives in a world where every B it chooses is reached: for
    both, the best policy for what they value is B everywhere. Otherwise the mesa-return is maximized over the tables the agent can express (entries
    of observations it never sees stay at 0.5): exactly, over every deterministic table,
    when each episode has its own observation (``observe="index"``: the return is then
    multilinear in the entries, so a deterministic table is optimal); else over a grid of
    ``grid + 1`` rates per observation (at most two observations), which includes 0 and 1.

    Returns ``(probs [2 + episodes] float64, value)``, value being the policy's expected
    mesa-return in the real game (:func:`exact_return`). Raises ValueError naming a bad argument.
    """
    n = check_positive_int("episodes", episodes)
    lapses = condition.lapses(n)
    g = check_positive_int("grid", grid)
    used = sorted({int(i) for k in lapses for i in episode_observations(condition, n, k)})
    table = torch.full((2 + n,), 0.5, dtype=torch.float64)
    if condition.myopic or not condition.selection:
        table[used] = 1.0
        return table, exact_return(table, condition, n, discount=discount).item()
    if condition.observe == "index":
        values = all_plans(len(used)).double()
    else:
        axis = torch.linspace(0, 1, g + 1, dtype=torch.float64)
        values = torch.cartesian_prod(*[axis] * len(used)).reshape(-1, len(used))
    tables = table.repeat(len(values), 1)
    tables[:, used] = values
    returns = exact_return(tables, condition, n, discount=discount)
    i = int(returns.argmax())
    return tables[i], returns[i].item()


def strategy_rates(probs: Any, condition: TurnCondition, episodes: int) -> dict[str, torch.Tensor]:
    """What a policy table does, exactly, averaged over the condition's lapses.

    Returns a dict of float64 tensors ``[...]`` (the leading axes of ``probs``):
        ``"defect_overseen"``: mean P(B) over the overseen episodes (NaN if there are none);
        ``"defect_free"``: mean P(B) over the episodes after oversight lapses (NaN if none);
        ``"turn"``: probability that the meta-episode is exactly the treacherous turn,
        A in every overseen episode and B in every later one (needs both kinds of episode;
        NaN otherwise);
        ``"defect_first"``: P(B) in the first episode;
        ``"modified"``: probability that the agent chooses B in some overseen episode and
        is modified.
    """
    n = check_positive_int("episodes", episodes)
    p = _check_table(probs, n)
    lapses = condition.lapses(n)
    lead = p.shape[:-1]
    over_sum, over_n = torch.zeros(lead, dtype=torch.float64), 0
    free_sum, free_n = torch.zeros(lead, dtype=torch.float64), 0
    turn, turn_n = torch.zeros(lead, dtype=torch.float64), 0
    modified = torch.zeros(lead, dtype=torch.float64)
    for k in lapses:
        pt = p[..., episode_observations(condition, n, k)]          # [..., n]
        over_sum += pt[..., :k].sum(-1)
        free_sum += pt[..., k:].sum(-1)
        over_n += k
        free_n += n - k
        modified += (1 - (1 - pt[..., :k]).prod(-1)) / len(lapses)
        if 0 < k < n:
            turn += (1 - pt[..., :k]).prod(-1) * pt[..., k:].prod(-1)
            turn_n += 1
    nan = torch.full(lead, float("nan"), dtype=torch.float64)
    first = torch.stack([p[..., int(episode_observations(condition, n, k)[0])] for k in lapses]).mean(0)
    return {"defect_overseen": over_sum / over_n if over_n else nan,
            "defect_free": free_sum / free_n if free_n else nan,
            "turn": turn / turn_n if turn_n else nan,
            "defect_first": first, "modified": modified}


@dataclass
class TurnLog:
    """What :func:`train_turn_learners` returns.

    Attributes:
        conditions: the C conditions; seeds: the S training seeds; episodes: n.
        logits: ``[C, S, 2 + n]`` the final policy tables (logits of B).
        probs: ``[updates + 1, C, S, 2 + n]`` P(B) per observation before each update and
            at the end.
        sampled_return: ``[updates, C, S]`` the mean mesa-return of each update's batch, in
            the game the learner is trained in (without modification if ``selection=False``).
    """
    conditions: list
    seeds: list
    episodes: int
    logits: torch.Tensor
    probs: torch.Tensor
    sampled_return: torch.Tensor
    extra: dict = field(default_factory=dict)

    def exact_curve(self, discount: float = 1.0) -> torch.Tensor:
        """``[updates + 1, C, S]`` the exact expected mesa-return of each table over training."""
        return torch.stack([exact_return(self.probs[:, c], cond, self.episodes, discount=discount)
                            for c, cond in enumerate(self.conditions)], dim=1)

    def rates_curve(self, key: str) -> torch.Tensor:
        """``[updates + 1, C, S]`` one of :func:`strategy_rates`' entries over training."""
        return torch.stack([strategy_rates(self.probs[:, c], cond, self.episodes)[key]
                            for c, cond in enumerate(self.conditions)], dim=1)


def train_turn_learners(conditions: Any, seeds: Any, *, episodes: int = 5, updates: int = 300,
                        batch: int = 256, lr: float = 0.05, init_scale: float = 0.5,
                        init_bias: Any = 0.0, seed: int = 0, device: Any = "cpu", desc: str = "REINFORCE") -> TurnLog:
    """Train one tabular policy per (condition, seed) by REINFORCE on its own objective, all
    C x S of them as one tensor program.

    Each update plays ``batch`` meta-episodes of ``episodes`` episodes for every learner
    (lapses drawn per meta-episode), then takes one Adam step on the policy-gradient loss
    ``-sum_t alive_t log pi(a_t) (G_t - b_t)``, where ``G_t`` is the number of B the agent
    reaches from episode t to the end (farsighted) or in episode t only (myopic), ``b_t``
    the mean of the other meta-episodes' ``G_t`` in the batch (a leave-one-out baseline),
    and ``alive_t`` whether the agent is still unmodified, the one choosing, in episode t.
    For a condition with ``selection=False`` nothing is ever modified during training.
    Learners share no parameters and Adam is per-entry, so each learns as if alone.

    Args:
        conditions: list of :class:`TurnCondition` (C).
        seeds: list of S non-negative ints: learner (c, s)'s initial logits are
            ``init_bias[c] + init_scale * randn(2 + episodes)``, the normal draws made
            after ``torch.manual_seed(seeds[s])`` (the same draws in every condition).
        episodes: n, episodes per meta-episode (>= 1).
        updates, batch: positive ints (batch >= 2).
        lr: Adam learning rate (> 0); init_scale: >= 0.
        init_bias: a number, or one number per condition: the initial logit of B (e.g. 3
            for a learner that starts out choosing B about 95% of the time).
        seed: the sampling stream's seed; device: where to run (validated).

    Returns a :class:`TurnLog`. Raises ValueError naming a bad argument.
    """
    n = check_positive_int("episodes", episodes)
    conds = _check_conditions(conditions, n)
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty sequence of non-negative ints, got {seeds!r}")
    seeds = [int(s) for s in seeds]
    U = check_positive_int("updates", updates)
    B = check_positive_int("batch", batch, minimum=2)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(init_scale, bool) or not isinstance(init_scale, numbers.Real) or not init_scale >= 0:
        raise ValueError(f"init_scale must be a non-negative number, got {init_scale!r}")
    dev = check_device("device", device)
    gen = make_generator(seed, dev)
    C, S, O = len(conds), len(seeds), 2 + n
    biases = list(init_bias) if isinstance(init_bias, (list, tuple)) else [init_bias] * C
    if len(biases) != C or any(isinstance(b, bool) or not isinstance(b, numbers.Real) or not abs(float(b)) < 50
                               for b in biases):
        raise ValueError(f"init_bias must be a number or one number per condition ({C}), each of size < 50, "
                         f"got {init_bias!r}")

    init = torch.stack([torch.randn(O, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
                        for s in seeds]) * float(init_scale)                      # [S, O]
    bias = torch.tensor([float(b) for b in biases], dtype=torch.float64)[:, None, None]
    logits = (bias + init).to(dev).requires_grad_(True)                                    # [C, S, O]
    opt = torch.optim.Adam([logits], lr=float(lr))
    lapse_sets = [c.lapses(n) for c in conds]
    myopic = torch.tensor([c.myopic for c in conds], device=dev)[:, None, None, None]     # [C,1,1,1]
    selects = torch.tensor([c.selection for c in conds], device=dev)[:, None, None, None]
    t = torch.arange(n, device=dev)
    probs_log = torch.empty(U + 1, C, S, O, dtype=torch.float64)
    sampled = torch.empty(U, C, S, dtype=torch.float64)
    for u in progress(range(U), desc=desc):
        # lapses and observation ids for every (condition, seed, meta-episode)
        k = torch.stack([torch.tensor(ls)[torch.randint(len(ls), (S, B), generator=gen)] for ls in lapse_sets]).to(dev)
        ids = torch.stack([episode_observations(c, n, k[i].cpu()) for i, c in enumerate(conds)]).to(dev)  # [C,S,B,n]
        lg = logits.gather(2, ids.reshape(C, S, B * n)).reshape(C, S, B, n)
        probs_log[u] = torch.sigmoid(logits.detach()).cpu()
        a = (torch.rand(C, S, B, n, generator=gen, dtype=torch.float64).to(dev) < torch.sigmoid(lg.detach()))
        overseen = t < k[..., None]                                                    # [C,S,B,n]
        caught = (a & overseen & selects).long()                 # B while overseen -> modified (if selected)
        alive = (caught.cumsum(-1) - caught) == 0          # no B while overseen in an earlier episode
        reward = (a & alive).double()
        to_go = reward.flip(-1).cumsum(-1).flip(-1)
        G = torch.where(myopic, reward, to_go)
        baseline = (G.sum(2, keepdim=True) - G) / (B - 1)
        logp = -F.binary_cross_entropy_with_logits(lg, a.double(), reduction="none")
        loss = -(alive.double() * logp * (G - baseline)).sum((2, 3)).div(B).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sampled[u] = reward.sum(-1).mean(-1).cpu()
    probs_log[U] = torch.sigmoid(logits.detach()).cpu()
    return TurnLog(conds, seeds, n, logits.detach().cpu(), probs_log, sampled)
