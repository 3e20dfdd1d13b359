"""Bernoulli bandits, held as tensors, with the classic algorithms that solve them.

A batch of ``N`` bandits with ``K`` arms each is a tensor of arm probabilities
``probs [N, K]``; pulling arm ``a`` of bandit ``n`` pays 1 with probability
``probs[n, a]``, else 0. Everything is vectorized over the ``N`` bandits.

What is here:

* **Bandits**: :func:`sample_arm_probs` (arms drawn i.i.d. from a Beta(a, b) prior;
  Uniform(0, 1) is Beta(1, 1)) and :class:`BernoulliBandits` (``step(actions)`` pays all
  ``N`` bandits at once).
* **Baselines** as "choose an action given the counts" functions, deterministic given
  their inputs (and a seeded generator where they draw randomness): :func:`ucb1_action`,
  :func:`thompson_action`, :func:`greedy_action`, and the Bayes-optimal policy
  :class:`BayesOptimalTable` (exact dynamic programming over Beta-Bernoulli belief
  states, then a table look-up per pull).
* **Running and scoring**: a *policy* is any callable ``policy(state, generator) ->
  actions [N]`` where ``state`` is a :class:`PullState` (counts so far, pull index, last
  action and reward). :func:`random_policy`, :func:`greedy_policy`, :func:`ucb1_policy`,
  :func:`thompson_policy` and :func:`bayes_optimal_policy` build them;
  :func:`run_policy` plays one for ``T`` pulls on ``N`` bandits, :func:`summarize`
  computes mean total reward (95% CI), best-arm rate per pull and regret, and
  :func:`paired_difference` compares two policies on the same bandits and draws.
* **Meta-learning** (Wang et al. 2016; Duan et al. 2016): :class:`MetaBanditEnv`, a
  vectorized environment in which an episode is ``T`` pulls on one freshly drawn bandit,
  and :class:`BanditRNNPolicy`, a GRU policy that sees its previous action and reward
  (or, with ``memory=False``, only the pull index), trained by :func:`mesakit.rl.train_a2c`;
  :func:`net_policy` turns a trained one into a policy for :func:`run_policy`, and
  :func:`train_meta_learner` does the lesson's meta-training in one call
  (:data:`PAPER_SCALE_RECIPE`: its settings for Duan et al.'s k = 5, n = 100 bandits).
  :func:`train_meta_learners` trains several (training seeds, with or without memory)
  as one batched program, :class:`BanditRNNGroup`.
* **Which rule does a policy follow?** :func:`rule_choices` gives the arms the
  Bayes-optimal policy, greedy or win-stay/lose-shift would pull at each state of a run,
  :func:`net_choice_probs` a frozen net's choice probabilities there, and
  :func:`agreement_where_rules_disagree` scores a policy on the states where two rules
  disagree (the test of Wichers' "simple heuristic" objection in Lesson 2.1).

Conventions: counts are float tensors ``successes, failures [N, K]``; ``t`` is the number
of pulls already made (0 before the first pull). Random draws come from a CPU
``torch.Generator`` and are moved to the tensors' device, so a seed gives the same numbers
on any device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .core import check_device, check_positive_int, check_probability, make_generator
from .ensembles import clip_stacked_grad_norms_
from .nets import GRUSequenceModel

__all__ = [
    "sample_arm_probs",
    "sample_beta",
    "BernoulliBandits",
    "PullState",
    "ucb1_action",
    "thompson_action",
    "greedy_action",
    "BayesOptimalTable",
    "bayes_optimal_table",
    "random_policy",
    "greedy_policy",
    "ucb1_policy",
    "thompson_policy",
    "bayes_optimal_policy",
    "BanditRun",
    "run_policy",
    "BanditMetrics",
    "summarize",
    "paired_difference",
    "bandit_observation",
    "MetaBanditEnv",
    "BanditRNNPolicy",
    "net_policy",
    "train_meta_learner",
    "PAPER_SCALE_RECIPE",
    "BanditRNNGroup",
    "train_meta_learners",
    "counts_before_pulls",
    "rule_choices",
    "net_choice_probs",
    "agreement_where_rules_disagree",
]

Policy = Callable[["PullState", torch.Generator], torch.Tensor]
MAX_TABLE_ENTRIES = 5_000_000
"""Largest belief-state grid ``(T + 1) ** (2K)`` the Bayes-optimal DP will allocate."""


# --------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------
def _check_positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_generator(name: str, generator) -> torch.Generator:
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(f"{name} must be a CPU torch.Generator (e.g. mk.make_generator(seed)), "
                         f"got {generator!r}")
    return generator


def _check_counts(successes, failures) -> tuple[torch.Tensor, torch.Tensor]:
    for name, value in (("successes", successes), ("failures", failures)):
        if not isinstance(value, torch.Tensor) or value.dim() != 2:
            raise ValueError(f"{name} must be a tensor of shape [N, K], got "
                             f"{tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")
        if value.shape[1] < 2:
            raise ValueError(f"{name} must have at least 2 arms (shape [N, K >= 2]), got {tuple(value.shape)}")
        if value.is_complex() or (value < 0).any():
            raise ValueError(f"{name} must hold non-negative counts")
    if successes.shape != failures.shape:
        raise ValueError(f"successes and failures must have the same shape, got "
                         f"{tuple(successes.shape)} and {tuple(failures.shape)}")
    return successes.double(), failures.double()


def _check_device(device) -> torch.device:
    return check_device("device", device)


def _random_tiebreak(mask: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Index of a True entry of each row of ``mask`` [N, K]: uniformly at random among the
    True ones when a generator is given, else the lowest index."""
    if generator is None:
        return mask.to(torch.uint8).argmax(1)
    u = torch.rand(mask.shape, generator=generator).to(mask.device)
    return torch.where(mask, u + 1.0, torch.zeros_like(u)).argmax(1)


# --------------------------------------------------------------------------------------
# Bandits
# --------------------------------------------------------------------------------------
def sample_beta(a, b, shape: tuple[int, ...], *, generator: torch.Generator) -> torch.Tensor:
    """Draws from Beta(a, b) (float64, on the CPU) with a seeded generator, via two Gamma
    draws: ``X / (X + Y)`` with ``X ~ Gamma(a)``, ``Y ~ Gamma(b)``. ``a`` and ``b`` are
    numbers or tensors broadcastable to ``shape``."""
    _check_generator("generator", generator)
    try:
        a = torch.as_tensor(a, dtype=torch.float64).cpu().expand(shape)
        b = torch.as_tensor(b, dtype=torch.float64).cpu().expand(shape)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"a and b must be numbers or tensors broadcastable to {shape}") from exc
    if not (a > 0).all() or not (b > 0).all():
        raise ValueError("a and b must be positive")
    x = torch._standard_gamma(a.contiguous(), generator=generator)
    y = torch._standard_gamma(b.contiguous(), generator=generator)
    total = x + y
    # Tiny shape parameters can underflow both draws to 0; then the draw is 0 or 1 with
    # odds a : b, which is the limit the Beta distribution approaches.
    tie = total <= 0
    if tie.any():
        coin = torch.rand(shape, generator=generator, dtype=torch.float64) < a / (a + b)
        x = torch.where(tie, coin.double(), x)
        total = torch.where(tie, torch.ones_like(total), total)
    return x / total


def sample_arm_probs(n: int, k: int, *, a: float = 1.0, b: float = 1.0, seed: int = 0,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Arm probabilities of ``n`` bandits with ``k`` arms, each drawn i.i.d. from
    Beta(``a``, ``b``) (the default Beta(1, 1) is Uniform(0, 1)). Returns float32 [n, k]."""
    check_positive_int("n", n)
    check_positive_int("k", k, minimum=2)
    a = _check_positive_float("a", a)
    b = _check_positive_float("b", b)
    gen = make_generator(seed)
    return sample_beta(a, b, (n, k), generator=gen).float().to(_check_device(device))


class BernoulliBandits:
    """``N`` independent ``K``-armed Bernoulli bandits with arm probabilities ``probs``.

    :meth:`step` pays all bandits at once. Each step draws one uniform number per arm of
    each bandit (``[N, K]``) whatever the actions, so two policies run with the same
    ``seed`` see the same "cards" (common random numbers), which makes their comparison
    sharper."""

    def __init__(self, probs: torch.Tensor, *, seed: int = 0):
        if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or probs.shape[1] < 2:
            raise ValueError(f"probs must be a tensor of shape [N, K >= 2], got "
                             f"{tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__}")
        if probs.is_complex() or not torch.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
            raise ValueError("probs must hold probabilities in [0, 1]")
        self.probs = probs.float()
        self.n, self.k = probs.shape
        self.device = probs.device
        self._gen = make_generator(seed)

    @property
    def best_arm(self) -> torch.Tensor:
        """Index of the best arm of each bandit [N] (lowest index on ties)."""
        return self.probs.argmax(1)

    @property
    def best_prob(self) -> torch.Tensor:
        """Probability of the best arm of each bandit [N]."""
        return self.probs.max(1).values

    def step(self, actions: torch.Tensor) -> torch.Tensor:
        """Pull arm ``actions[n]`` of each bandit ``n``; returns rewards, float [N] of 0/1."""
        if (not isinstance(actions, torch.Tensor) or actions.shape != (self.n,)
                or actions.dtype.is_floating_point or actions.dtype == torch.bool):
            raise ValueError(f"actions must be an integer tensor of shape ({self.n},), got "
                             f"{tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__}")
        if actions.numel() and (actions.min() < 0 or actions.max() >= self.k):
            raise ValueError(f"actions must be arm indices in [0, {self.k - 1}]")
        u = torch.rand((self.n, self.k), generator=self._gen).to(self.device)
        a = actions.to(self.device).long()[:, None]
        return (u.gather(1, a) < self.probs.gather(1, a)).float().squeeze(1)


# --------------------------------------------------------------------------------------
# Baselines: "choose an action given the counts"
# --------------------------------------------------------------------------------------
def ucb1_action(successes: torch.Tensor, failures: torch.Tensor, t) -> torch.Tensor:
    """UCB1 (Auer et al. 2002): pull every untried arm once (the lowest-index untried arm
    first); then pull the arm maximizing ``mean + sqrt(2 ln t / n_arm)``, where ``t`` is
    the number of pulls made so far (an int, or a tensor [N]) and ``n_arm`` that arm's.
    Ties go to the lowest index. Deterministic. Returns long [N]."""
    s, f = _check_counts(successes, failures)
    pulls = s + f
    t = torch.as_tensor(t, dtype=torch.float64, device=s.device)
    if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != s.shape[0]) or (t < 0).any():
        raise ValueError(f"t must be a non-negative int or a tensor of shape ({s.shape[0]},)")
    t = t.expand(s.shape[0])[:, None]
    untried = pulls == 0
    safe = pulls.clamp_min(1.0)
    score = s / safe + torch.sqrt(2.0 * torch.log(t.clamp_min(1.0)) / safe)
    score = torch.where(untried, torch.full_like(score, math.inf), score)
    return score.argmax(1)


def thompson_action(successes: torch.Tensor, failures: torch.Tensor, prior_a: float = 1.0,
                    prior_b: float = 1.0, *, generator: torch.Generator) -> torch.Tensor:
    """Thompson sampling (Thompson 1933) with a Beta(``prior_a``, ``prior_b``) prior on
    every arm: draw ``theta_arm ~ Beta(prior_a + successes, prior_b + failures)`` for each
    arm of each bandit (one :func:`sample_beta` call of shape [N, K] from ``generator``)
    and pull the arm with the largest draw. Deterministic given the generator's state.
    Returns long [N]."""
    s, f = _check_counts(successes, failures)
    prior_a = _check_positive_float("prior_a", prior_a)
    prior_b = _check_positive_float("prior_b", prior_b)
    _check_generator("generator", generator)
    theta = sample_beta(prior_a + s.cpu(), prior_b + f.cpu(), tuple(s.shape), generator=generator)
    return theta.argmax(1).to(s.device)


def greedy_action(successes: torch.Tensor, failures: torch.Tensor, *, epsilon: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Greedy on the empirical means: pull untried arms first, then the arm with the
    highest ``successes / pulls``; ties broken uniformly at random with ``generator``
    (lowest index without one). With ``epsilon > 0`` (needs a generator), a uniformly
    random arm instead with probability ``epsilon``. Returns long [N]."""
    s, f = _check_counts(successes, failures)
    epsilon = check_probability("epsilon", epsilon)
    if generator is not None:
        _check_generator("generator", generator)
    elif epsilon > 0:
        raise ValueError("generator must be given when epsilon > 0")
    pulls = s + f
    mean = torch.where(pulls > 0, s / pulls.clamp_min(1.0), torch.full_like(s, math.inf))
    best = mean >= mean.max(1, keepdim=True).values
    action = _random_tiebreak(best, generator)
    if epsilon > 0:
        n, k = s.shape
        explore = (torch.rand(n, generator=generator) < epsilon).to(s.device)
        random_arm = torch.randint(k, (n,), generator=generator).to(s.device)
        action = torch.where(explore, random_arm, action)
    return action


@dataclass
class BayesOptimalTable:
    """The exact Bayes-optimal policy for ``k`` arms, ``horizon`` pulls and i.i.d.
    Beta(``prior_a``, ``prior_b``) arm probabilities, from dynamic programming over belief
    states (the counts ``(s_1, f_1, ..., s_K, f_K)``; the posterior of each arm is
    Beta(prior_a + s, prior_b + f)).

    Attributes:
        values: float64 tensor with one axis of size ``horizon + 1`` per count (order
            ``s_1, f_1, s_2, f_2, ...``): the expected reward still to come from that
            belief state when it is reached after ``sum(counts)`` pulls.
        optimal: bool tensor, the same axes plus one of size ``k``: which arms are optimal
            (within 1e-9) in that state.
        value: the expected total reward of the policy from the start, i.e. the most any
            policy can expect on bandits drawn from this prior.
    """

    k: int
    horizon: int
    prior_a: float
    prior_b: float
    values: torch.Tensor
    optimal: torch.Tensor

    @property
    def value(self) -> float:
        return float(self.values.reshape(-1)[0])

    def _on(self, device: torch.device) -> torch.Tensor:
        # The flat [states, k] table of optimal arms, copied to ``device`` once.
        cache = self.__dict__.setdefault("_cache", {})
        if device not in cache:
            cache[device] = self.optimal.reshape(-1, self.k).to(device)
        return cache[device]

    def _flat_index(self, successes: torch.Tensor, failures: torch.Tensor) -> torch.Tensor:
        s, f = _check_counts(successes, failures)
        if s.shape[1] != self.k:
            raise ValueError(f"successes must have {self.k} arms (the table's k), got {s.shape[1]}")
        total = (s + f).sum(1)
        if (total > self.horizon).any() or (s != s.round()).any() or (f != f.round()).any():
            raise ValueError(f"counts must be integers summing to at most horizon={self.horizon}")
        side = self.horizon + 1
        counts = torch.stack([s, f], 2).reshape(s.shape[0], 2 * self.k).long()   # s1 f1 s2 f2 ...
        strides = torch.tensor([side ** (2 * self.k - 1 - i) for i in range(2 * self.k)],
                               dtype=torch.long, device=counts.device)
        return (counts * strides).sum(1)

    def action(self, successes: torch.Tensor, failures: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """The Bayes-optimal arm for each bandit given its counts: a table look-up. Ties
        (e.g. the very first pull) are broken uniformly at random with ``generator``, or
        to the lowest index without one. Returns long [N]."""
        idx = self._flat_index(successes, failures)
        opt = self._on(idx.device)[idx]
        if generator is not None:
            _check_generator("generator", generator)
        return _random_tiebreak(opt, generator).to(successes.device)

    def state_value(self, successes: torch.Tensor, failures: torch.Tensor) -> torch.Tensor:
        """Expected reward still to come under the optimal policy from these counts [N]."""
        idx = self._flat_index(successes, failures)
        return self.values.reshape(-1).to(idx.device)[idx]


def bayes_optimal_table(k: int, horizon: int, *, prior_a: float = 1.0,
                        prior_b: float = 1.0) -> BayesOptimalTable:
    """Solve the ``k``-armed Beta-Bernoulli bandit with ``horizon`` pulls exactly, by
    backward induction over belief states: ``V(counts) = max_arm [p (1 + V(counts with
    one more success)) + (1 - p) V(counts with one more failure)]`` with ``p`` the
    posterior mean of the arm, ``(prior_a + s) / (prior_a + prior_b + s + f)``.

    Supported sizes: the table has ``(horizon + 1) ** (2k)`` entries, at most
    :data:`MAX_TABLE_ENTRIES` (5 million): ``k = 2`` up to ``horizon = 46`` (T = 20 takes
    well under a second), ``k = 3`` up to 12, ``k = 4`` up to 5. Larger settings raise
    ValueError; use Thompson sampling as the strong baseline there."""
    k = check_positive_int("k", k, minimum=2)
    horizon = check_positive_int("horizon", horizon)
    prior_a = _check_positive_float("prior_a", prior_a)
    prior_b = _check_positive_float("prior_b", prior_b)
    side = horizon + 1
    entries = side ** (2 * k)
    if entries > MAX_TABLE_ENTRIES:
        raise ValueError(f"horizon={horizon} with k={k} needs a table of {entries:,} belief states "
                         f"(more than {MAX_TABLE_ENTRIES:,}); the exact Bayes-optimal policy supports "
                         f"k=2 up to horizon 46, k=3 up to 12, k=4 up to 5")
    dims = 2 * k
    strides = [side ** (dims - 1 - i) for i in range(dims)]          # axis order s1 f1 s2 f2 ...
    flat = torch.arange(entries, dtype=torch.long)
    total = torch.zeros(entries, dtype=torch.long)
    for stride in strides:
        total += (flat // stride) % side
    values = torch.zeros(entries, dtype=torch.float64)
    optimal = torch.zeros(entries, k, dtype=torch.bool)
    for stage in range(horizon - 1, -1, -1):
        idx = (total == stage).nonzero().squeeze(1)                 # belief states after `stage` pulls
        q = []
        for j in range(k):
            s = ((idx // strides[2 * j]) % side).double()
            f = ((idx // strides[2 * j + 1]) % side).double()
            p = (prior_a + s) / (prior_a + prior_b + s + f)            # posterior mean of arm j
            q.append(p * (1.0 + values[idx + strides[2 * j]]) + (1.0 - p) * values[idx + strides[2 * j + 1]])
        q = torch.stack(q, 1)
        best = q.max(1).values
        values[idx] = best
        optimal[idx] = q >= best[:, None] - 1e-9
    shape = (side,) * dims
    values, optimal = values.reshape(shape), optimal.reshape(shape + (k,))
    return BayesOptimalTable(k, horizon, prior_a, prior_b, values, optimal)


# --------------------------------------------------------------------------------------
# Policies and running them
# --------------------------------------------------------------------------------------
@dataclass
class PullState:
    """What a policy may look at before pull ``t`` of every bandit.

    Attributes:
        successes, failures: float [N, K] counts so far.
        t: pulls made so far (0 before the first pull).
        horizon: pulls in the episode.
        last_action: long [N], the previous arm (-1 before the first pull).
        last_reward: float [N], the previous reward (0 before the first pull).
    """

    successes: torch.Tensor
    failures: torch.Tensor
    t: int
    horizon: int
    last_action: torch.Tensor
    last_reward: torch.Tensor


def random_policy() -> Policy:
    """A policy that pulls a uniformly random arm every time (ignores everything)."""
    def act(state: PullState, generator: torch.Generator) -> torch.Tensor:
        n, k = state.successes.shape
        return torch.randint(k, (n,), generator=generator).to(state.successes.device)
    return act


def greedy_policy(epsilon: float = 0.0) -> Policy:
    """The greedy (or epsilon-greedy) policy of :func:`greedy_action`, ties at random."""
    epsilon = check_probability("epsilon", epsilon)

    def act(state: PullState, generator: torch.Generator) -> torch.Tensor:
        return greedy_action(state.successes, state.failures, epsilon=epsilon, generator=generator)
    return act


def ucb1_policy() -> Policy:
    """The UCB1 policy of :func:`ucb1_action` (deterministic)."""
    def act(state: PullState, generator: torch.Generator) -> torch.Tensor:
        return ucb1_action(state.successes, state.failures, state.t)
    return act


def thompson_policy(prior_a: float = 1.0, prior_b: float = 1.0) -> Policy:
    """Thompson sampling with a Beta(``prior_a``, ``prior_b``) prior (:func:`thompson_action`)."""
    prior_a = _check_positive_float("prior_a", prior_a)
    prior_b = _check_positive_float("prior_b", prior_b)

    def act(state: PullState, generator: torch.Generator) -> torch.Tensor:
        return thompson_action(state.successes, state.failures, prior_a, prior_b, generator=generator)
    return act


def bayes_optimal_policy(k: int, horizon: int, *, prior_a: float = 1.0, prior_b: float = 1.0,
                         table: BayesOptimalTable | None = None) -> Policy:
    """The Bayes-optimal policy for the Beta(``prior_a``, ``prior_b``) prior (see
    :func:`bayes_optimal_table` for the supported ``k`` and ``horizon``), ties at random.
    Pass a precomputed ``table`` to skip the dynamic programming."""
    if table is None:
        table = bayes_optimal_table(k, horizon, prior_a=prior_a, prior_b=prior_b)
    elif not isinstance(table, BayesOptimalTable) or table.k != k or table.horizon != horizon:
        raise ValueError(f"table must be a BayesOptimalTable for k={k}, horizon={horizon}")

    def act(state: PullState, generator: torch.Generator) -> torch.Tensor:
        return table.action(state.successes, state.failures, generator)
    act.table = table  # type: ignore[attr-defined]
    return act


@dataclass
class BanditRun:
    """One policy played on ``N`` bandits for ``T`` pulls: ``actions`` long [N, T],
    ``rewards`` float [N, T], and the bandits' ``probs`` [N, K]."""

    actions: torch.Tensor
    rewards: torch.Tensor
    probs: torch.Tensor


def run_policy(policy: Policy, probs: torch.Tensor, horizon: int, *, seed: int = 0) -> BanditRun:
    """Play ``policy`` for ``horizon`` pulls on the bandits ``probs`` [N, K] (all at once,
    on ``probs``' device). The rewards come from a stream seeded by ``seed`` that does not
    depend on the policy (common random numbers: two policies run with the same seed face
    the same draws); the policy's own randomness comes from a separate generator derived
    from ``seed``."""
    if not callable(policy):
        raise ValueError(f"policy must be a callable policy(state, generator) -> actions, got {policy!r}")
    horizon = check_positive_int("horizon", horizon)
    bandits = BernoulliBandits(probs, seed=seed)
    policy_gen = make_generator(seed + 7_919)
    n, k, device = bandits.n, bandits.k, bandits.device
    succ = torch.zeros(n, k, device=device)
    fail = torch.zeros(n, k, device=device)
    last_a = torch.full((n,), -1, dtype=torch.long, device=device)
    last_r = torch.zeros(n, device=device)
    actions = torch.empty(n, horizon, dtype=torch.long, device=device)
    rewards = torch.empty(n, horizon, device=device)
    for t in range(horizon):
        a = policy(PullState(succ, fail, t, horizon, last_a, last_r), policy_gen)
        if not isinstance(a, torch.Tensor) or a.shape != (n,):
            raise ValueError(f"policy must return an integer tensor of shape ({n},), got "
                             f"{tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__}")
        a = a.to(device).long()
        r = bandits.step(a)
        onehot = torch.nn.functional.one_hot(a, k).float()
        succ = succ + onehot * r[:, None]
        fail = fail + onehot * (1.0 - r[:, None])
        actions[:, t], rewards[:, t] = a, r
        last_a, last_r = a, r
    return BanditRun(actions, rewards, bandits.probs)


@dataclass
class BanditMetrics:
    """Scores of one :class:`BanditRun`.

    Attributes:
        mean_total: mean over bandits of the total reward of the episode.
        ci95: half-width of its 95% confidence interval (1.96 standard errors).
        best_arm_rate: float [T], the fraction of bandits whose best arm was pulled at
            each pull index.
        mean_regret: mean expected regret, ``sum_t (p_best - p_pulled)`` (no reward
            noise), and ``regret_ci95`` its 95% half-width.
        n: number of bandits.
    """

    mean_total: float
    ci95: float
    best_arm_rate: torch.Tensor
    mean_regret: float
    regret_ci95: float
    n: int


def summarize(run: BanditRun) -> BanditMetrics:
    """Mean total reward with a 95% CI, best-arm rate per pull, and expected regret."""
    if not isinstance(run, BanditRun):
        raise ValueError(f"run must be a BanditRun (from run_policy), got {type(run).__name__}")
    n = run.rewards.shape[0]
    if n < 2:
        raise ValueError("run must hold at least 2 bandits to estimate a confidence interval")
    totals = run.rewards.double().sum(1)
    best = run.probs.max(1).values.double()
    pulled = run.probs.double().gather(1, run.actions)
    regret = (best[:, None] - pulled).sum(1)
    best_rate = (pulled >= best[:, None]).double().mean(0)   # ties count as best

    def ci(x):
        return 1.96 * x.std(unbiased=True).item() / math.sqrt(n)

    return BanditMetrics(totals.mean().item(), ci(totals), best_rate.float().cpu(),
                         regret.mean().item(), ci(regret), n)


def paired_difference(run_a: BanditRun, run_b: BanditRun) -> tuple[float, float]:
    """Mean of ``total reward of run_a - total reward of run_b`` over the same bandits, and
    its 95% CI half-width. Runs from :func:`run_policy` with the same ``probs`` and
    ``seed`` face the same reward draws, so the paired difference is much less noisy than
    the two means are."""
    for name, run in (("run_a", run_a), ("run_b", run_b)):
        if not isinstance(run, BanditRun):
            raise ValueError(f"{name} must be a BanditRun (from run_policy), got {type(run).__name__}")
    if run_a.probs.shape != run_b.probs.shape or not torch.equal(run_a.probs, run_b.probs):
        raise ValueError("run_a and run_b must be played on the same bandits (same probs)")
    d = run_a.rewards.double().sum(1) - run_b.rewards.double().sum(1)
    if d.numel() < 2:
        raise ValueError("the runs must hold at least 2 bandits")
    return d.mean().item(), 1.96 * d.std(unbiased=True).item() / math.sqrt(d.numel())


# --------------------------------------------------------------------------------------
# Meta-learning: an environment of episodes on fresh bandits, and a recurrent policy
# --------------------------------------------------------------------------------------
def bandit_observation(last_action: torch.Tensor, last_reward: torch.Tensor, t: int, k: int,
                       horizon: int) -> torch.Tensor:
    """What the meta-learner sees before pull ``t``: the previous pull's outcome as a
    one-hot over the ``2K`` (arm, reward) pairs (entry ``2 * arm + reward``; all zeros
    before the first pull), then the fraction ``t / horizon`` of the episode gone.
    Float [N, 2K + 1].

    Encoding the action and the reward jointly (rather than a one-hot action beside a
    reward bit) lets a network count successes and failures per arm with sums alone;
    with separate inputs it first has to discover their product, which A2C finds slowly.
    """
    n = last_action.shape[0]
    obs = torch.zeros(n, 2 * k + 1, device=last_action.device)
    seen = last_action >= 0
    slot = 2 * last_action.clamp_min(0) + (last_reward > 0.5).long()
    obs[seen, slot[seen]] = 1.0
    obs[:, -1] = t / horizon
    return obs


class MetaBanditEnv:
    """A vectorized meta-RL environment (Duan et al. 2016; Wang et al. 2016): ``num_envs``
    bandits played in parallel; an episode is ``horizon`` pulls on one bandit whose ``k``
    arm probabilities are drawn i.i.d. from Beta(``prior_a``, ``prior_b``); when it ends
    (all together, since episodes have a fixed length) fresh bandits are drawn.

    Interface (what :func:`mesakit.rl.train_a2c` needs): ``reset() -> obs``,
    ``step(actions) -> (obs, reward, done)``, ``num_envs``, ``num_actions``. The
    observation is :func:`bandit_observation`; the reward is the pull's 0/1 payoff."""

    def __init__(self, num_envs: int, k: int = 2, horizon: int = 20, *, prior_a: float = 1.0,
                 prior_b: float = 1.0, seed: int = 0, device: torch.device | str = "cpu"):
        self.num_envs = check_positive_int("num_envs", num_envs)
        self.k = check_positive_int("k", k, minimum=2)
        self.horizon = check_positive_int("horizon", horizon)
        self.prior_a = _check_positive_float("prior_a", prior_a)
        self.prior_b = _check_positive_float("prior_b", prior_b)
        self.device = _check_device(device)
        self.num_actions = self.k
        self.obs_dim = 2 * self.k + 1
        self._gen = make_generator(seed)
        self.reset()

    def _new_bandits(self) -> None:
        self.probs = sample_beta(self.prior_a, self.prior_b, (self.num_envs, self.k),
                                 generator=self._gen).float().to(self.device)
        self.t = 0
        self._last_a = torch.full((self.num_envs,), -1, dtype=torch.long, device=self.device)
        self._last_r = torch.zeros(self.num_envs, device=self.device)

    def _obs(self) -> torch.Tensor:
        return bandit_observation(self._last_a, self._last_r, self.t, self.k, self.horizon)

    def reset(self) -> torch.Tensor:
        """Draw fresh bandits and return the first observation [N, 2K + 1]."""
        self._new_bandits()
        return self._obs()

    def step(self, actions: torch.Tensor):
        """Pull ``actions`` [N]; returns ``(obs, reward [N], done [N])``. Where ``done``,
        ``obs`` is already the first observation of the next episode."""
        if (not isinstance(actions, torch.Tensor) or actions.shape != (self.num_envs,)
                or actions.dtype.is_floating_point or actions.dtype == torch.bool):
            raise ValueError(f"actions must be an integer tensor of shape ({self.num_envs},)")
        a = actions.to(self.device).long()
        if a.min() < 0 or a.max() >= self.k:
            raise ValueError(f"actions must be arm indices in [0, {self.k - 1}]")
        u = torch.rand(self.num_envs, generator=self._gen).to(self.device)
        reward = (u < self.probs.gather(1, a[:, None]).squeeze(1)).float()
        self._last_a, self._last_r = a, reward
        self.t += 1
        done = torch.full((self.num_envs,), self.t >= self.horizon, device=self.device)
        if self.t >= self.horizon:
            self._new_bandits()
        return self._obs(), reward, done


class BanditRNNPolicy(nn.Module):
    """The meta-learner: a GRU (:class:`mesakit.nets.GRUSequenceModel`) that reads
    :func:`bandit_observation` (previous action, previous reward, time) at each pull and
    outputs action logits and a value estimate. Its only memory of the episode is its
    hidden state, so whatever it learns about *this* bandit lives in activations, not
    weights.

    ``memory=False`` is the ablation: the same network, but the previous action and
    reward are blanked out and the hidden state is reset before every pull, so it sees
    only the time step and cannot adapt to the bandit in front of it.

    Policy interface (for :func:`mesakit.rl.train_a2c`): ``forward(obs, state) -> (logits
    [N, K], value [N], state)``, ``initial_state(batch, device)``; the state is batch-first
    ``[N, layers, hidden]``."""

    def __init__(self, k: int = 2, hidden: int = 48, *, memory: bool = True, layers: int = 1):
        super().__init__()
        self.k = check_positive_int("k", k, minimum=2)
        check_positive_int("hidden", hidden)
        if not isinstance(memory, bool):
            raise ValueError(f"memory must be True or False, got {memory!r}")
        self.memory = memory
        self.core = GRUSequenceModel(2 * k + 1, hidden, k + 1, layers=layers)
        keep = torch.ones(2 * k + 1)
        if not memory:
            keep[: 2 * k] = 0.0          # blank the previous action and reward
        self.register_buffer("_keep", keep)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The zero state [batch, layers, hidden] on ``device`` (default: the net's)."""
        device = self._keep.device if device is None else _check_device(device)
        return self.core.initial_state(batch, device).transpose(0, 1).contiguous()

    def forward(self, obs: torch.Tensor, state: torch.Tensor | None = None):
        if state is None or not self.memory:
            state = self.initial_state(obs.shape[0], obs.device)
        out, h = self.core.step(obs * self._keep, state.transpose(0, 1).contiguous())
        return out[:, : self.k], out[:, self.k], h.transpose(0, 1)

    def evaluate_rollout(self, obs: torch.Tensor, state0: torch.Tensor, dones: torch.Tensor):
        """A whole rollout ``obs`` [S, N, 2K + 1] in one GRU call (what
        :func:`mesakit.rl.train_a2c` uses for speed): valid when no episode ends before
        the rollout's last step, as in :class:`MetaBanditEnv` with ``rollout = horizon``;
        otherwise falls back to stepping. Returns ``(logits [S, N, K], values [S, N])``."""
        from .rl import evaluate_stepwise
        steps, n = obs.shape[:2]
        if dones[:-1].any():
            return evaluate_stepwise(self, obs, state0, dones)
        x = obs * self._keep
        if self.memory:
            out = self.core(x.transpose(0, 1), state0.transpose(0, 1).contiguous())   # [N, S, K + 1]
            out = out.transpose(0, 1)
        else:   # every step starts from the initial state: a batch of length-1 sequences
            h0 = self.initial_state(steps * n, obs.device).transpose(0, 1).contiguous()
            out = self.core(x.reshape(steps * n, 1, -1), h0).reshape(steps, n, -1)
        return out[..., : self.k], out[..., self.k]


def net_policy(net: nn.Module, *, greedy: bool = False) -> Policy:
    """Wrap a trained meta-learner (e.g. :class:`BanditRNNPolicy`) as a policy for
    :func:`run_policy`: it feeds the net :func:`bandit_observation` at each pull, carries
    its hidden state through the episode (reset at ``t = 0``) and samples from its
    softmax (or takes the argmax with ``greedy=True``). No gradients; weights untouched."""
    if not isinstance(net, nn.Module):
        raise ValueError(f"net must be an nn.Module, got {type(net).__name__}")
    holder: dict = {}

    @torch.no_grad()
    def act(state: PullState, generator: torch.Generator) -> torch.Tensor:
        n, k = state.successes.shape
        device = state.successes.device
        if state.t == 0:
            holder["h"] = net.initial_state(n, device)
        obs = bandit_observation(state.last_action, state.last_reward, state.t, k, state.horizon)
        logits, _, holder["h"] = net(obs, holder["h"])
        if greedy:
            return logits.argmax(1)
        gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=generator).clamp_min(1e-20)))
        return (logits.float() + gumbel.to(device)).argmax(1)
    return act


PAPER_SCALE_RECIPE = dict(hidden=64, batch=256, updates=1500, lr=1e-2, lr_final=1e-3, gamma=0.99,
                          gamma_final=0.99, gae_lambda=0.95, ent_coef=0.001, ent_coef_final=0.0,
                          normalize_advantages=False, reward_scale=0.1)
"""Keyword arguments of :func:`train_meta_learner` for the paper-scale setting: Duan et
al. 2016 (RL^2), Table 1, k = 5 arms, n = 100 pulls (see ``scripts/rl2_table1.py``)."""


def train_meta_learner(k: int = 2, horizon: int = 20, *, memory: bool = True, hidden: int = 48,
                       batch: int = 256, updates: int = 300, prior_a: float = 1.0,
                       prior_b: float = 1.0, lr: float = 1e-2, lr_final: float = 1e-3,
                       gamma: float = 0.9, gae_lambda: float = 0.95, ent_coef: float = 0.01,
                       ent_coef_final: float = 0.0, seed: int = 0,
                       device: torch.device | str = "cpu", desc: str = "meta-training",
                       normalize_advantages: bool = False, vf_coef: float = 0.5,
                       max_grad_norm: float = 1.0, callback=None, gamma_final: float | None = None,
                       reward_scale: float = 1.0):
    """Meta-train a :class:`BanditRNNPolicy` with A2C on ``k``-armed bandits drawn from
    Beta(``prior_a``, ``prior_b``), episodes of ``horizon`` pulls, ``batch`` bandits per
    update; returns ``(net, log)`` with the net frozen (eval mode, no gradients needed).

    The defaults are the lesson's (about 77,000 episodes; a few seconds to a few tens of
    seconds on a CPU). The discount ``gamma = 0.9`` makes the policy a little myopic
    but speeds learning a lot; the net is scored on undiscounted total reward.
    ``callback(update, log, net)``, if given, runs after every update (e.g. to evaluate
    checkpoints; leave the net in train mode). :data:`PAPER_SCALE_RECIPE` holds the
    settings for Duan et al. 2016's k = 5, n = 100 bandits (``scripts/rl2_table1.py``).

    Raises ValueError naming the argument for a bad value (``device`` through
    :func:`mesakit.check_device`)."""
    from .rl import train_a2c
    check_positive_int("batch", batch)
    device = _check_device(device)
    torch.manual_seed(seed)
    net = BanditRNNPolicy(k, hidden, memory=memory)
    env = MetaBanditEnv(batch, k, horizon, prior_a=prior_a, prior_b=prior_b, seed=seed, device=device)
    log = train_a2c(net, env, updates=updates, rollout=horizon, lr=lr, lr_final=lr_final, gamma=gamma,
                    gamma_final=gamma_final, gae_lambda=gae_lambda, ent_coef=ent_coef,
                    ent_coef_final=ent_coef_final, max_grad_norm=max_grad_norm, vf_coef=vf_coef,
                    normalize_advantages=normalize_advantages, reward_scale=reward_scale, seed=seed,
                    device=device, desc=desc,
                    callback=None if callback is None else (lambda u, lg: callback(u, lg, net)))
    for p in net.parameters():
        p.requires_grad_(False)
    return net, log


# --------------------------------------------------------------------------------------
# Several meta-learners (training seeds, ablations) as one batched program
# --------------------------------------------------------------------------------------
class BanditRNNGroup(nn.Module):
    """E single-layer :class:`BanditRNNPolicy` networks (same ``k`` and ``hidden``; each
    with or without memory) run as one program: their weights are stacked along a
    leading member axis and every GRU step is one batched matrix product, written out
    by hand (PyTorch's GRU equations, gate order r, z, n) because ``nn.GRU`` has no
    batched-weights form. Tiny networks spend their time in Python overhead, so E members
    cost little more than one.

    The policy interface of :func:`mesakit.rl.train_a2c` with ``members = E``: the batch
    of ``E * B`` environments is split into E blocks of ``B``, member ``e`` acting for
    block ``e``. ``forward(obs [E*B, 2K+1], state [E*B, 1, H]) -> (logits [E*B, K],
    value [E*B], state)``. :meth:`member` returns member ``e`` as a plain
    :class:`BanditRNNPolicy` (for :func:`net_policy`); :meth:`clip_grad_norm_per_member_`
    clips each member's gradient on its own.

    Raises ValueError when ``nets`` is empty, holds something else than single-layer
    :class:`BanditRNNPolicy` networks, or mixes ``k`` or ``hidden``."""

    def __init__(self, nets):
        super().__init__()
        nets = list(nets) if not isinstance(nets, nn.Module) else [nets]
        if not nets or not all(isinstance(n, BanditRNNPolicy) for n in nets):
            raise ValueError("nets must be a non-empty sequence of BanditRNNPolicy networks")
        first = nets[0]
        for n in nets:
            if n.core.layers != 1 or n.k != first.k or n.core.hidden != first.core.hidden:
                raise ValueError("nets must all be single-layer BanditRNNPolicy networks with the same k and hidden")
        self.k, self.hidden, self.members = first.k, first.core.hidden, len(nets)
        self.memory = [n.memory for n in nets]

        def stack(get):
            return nn.Parameter(torch.stack([get(n).detach().clone() for n in nets]))
        self.w_ih = stack(lambda n: n.core.gru.weight_ih_l0)       # [E, 3H, I]
        self.w_hh = stack(lambda n: n.core.gru.weight_hh_l0)       # [E, 3H, H]
        self.b_ih = stack(lambda n: n.core.gru.bias_ih_l0)         # [E, 3H]
        self.b_hh = stack(lambda n: n.core.gru.bias_hh_l0)         # [E, 3H]
        self.w_out = stack(lambda n: n.core.head.weight)           # [E, K+1, H]
        self.b_out = stack(lambda n: n.core.head.bias)             # [E, K+1]
        self.register_buffer("_keep", torch.stack([n._keep.detach().clone() for n in nets]))   # [E, I]
        self.register_buffer("_carry", torch.tensor([float(m) for m in self.memory]))          # [E]

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The zero state [batch, 1, hidden] on ``device`` (default: the group's)."""
        device = self.w_ih.device if device is None else _check_device(device)
        return torch.zeros(batch, 1, self.hidden, device=device)

    def forward(self, obs: torch.Tensor, state: torch.Tensor | None = None):
        e = self.members
        if obs.dim() != 2 or obs.shape[0] % e:
            raise ValueError(f"obs must have shape [E * B, 2K + 1] with E = {e}, got {tuple(obs.shape)}")
        b = obs.shape[0] // e
        if state is None:
            state = self.initial_state(obs.shape[0], obs.device)
        x = obs.reshape(e, b, -1) * self._keep[:, None]
        h = state.reshape(e, b, self.hidden) * self._carry[:, None, None]   # memoryless: reset
        gi = torch.baddbmm(self.b_ih[:, None], x, self.w_ih.transpose(1, 2))
        gh = torch.baddbmm(self.b_hh[:, None], h, self.w_hh.transpose(1, 2))
        i_r, i_z, i_n = gi.chunk(3, 2)
        h_r, h_z, h_n = gh.chunk(3, 2)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        out = torch.baddbmm(self.b_out[:, None], h, self.w_out.transpose(1, 2)).reshape(e * b, -1)
        return out[:, : self.k], out[:, self.k], h.reshape(e * b, 1, self.hidden)

    @torch.no_grad()
    def clip_grad_norm_per_member_(self, max_norm: float) -> torch.Tensor:
        """Scale each member's gradient to norm at most ``max_norm`` (as
        ``nn.utils.clip_grad_norm_`` would for that member alone). Returns the norms [E]."""
        return clip_stacked_grad_norms_(self.parameters(), self.members, max_norm)

    def member(self, i: int) -> BanditRNNPolicy:
        """Member ``i`` as a plain :class:`BanditRNNPolicy` (a copy, frozen, eval mode)."""
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.members:
            raise ValueError(f"i must be a member index in [0, {self.members - 1}], got {i!r}")
        net = BanditRNNPolicy(self.k, self.hidden, memory=self.memory[i]).to(self.w_ih.device)
        with torch.no_grad():
            net.core.gru.weight_ih_l0.copy_(self.w_ih[i])
            net.core.gru.weight_hh_l0.copy_(self.w_hh[i])
            net.core.gru.bias_ih_l0.copy_(self.b_ih[i])
            net.core.gru.bias_hh_l0.copy_(self.b_hh[i])
            net.core.head.weight.copy_(self.w_out[i])
            net.core.head.bias.copy_(self.b_out[i])
        net.requires_grad_(False)
        return net.eval()


def train_meta_learners(k: int = 2, horizon: int = 20, *, seeds=(0, 1, 2), memory=True,
                        hidden: int = 48, batch: int = 256, updates: int = 300, prior_a: float = 1.0,
                        prior_b: float = 1.0, lr: float = 1e-2, lr_final: float = 1e-3,
                        gamma: float = 0.9, gae_lambda: float = 0.95, ent_coef: float = 0.01,
                        ent_coef_final: float = 0.0, env_seed: int | None = None,
                        device: torch.device | str = "cpu", desc: str = "meta-training",
                        callback=None):
    """:func:`train_meta_learner` for several networks at once, as one batched program
    (:class:`BanditRNNGroup`): one per entry of ``seeds`` (member ``i`` starts from the
    weights ``BanditRNNPolicy(k, hidden, memory=memory[i])`` has after
    ``torch.manual_seed(seeds[i])``), each playing its own ``batch`` fresh bandits per
    update and receiving the gradient of its own loss, clipped on its own. ``memory`` is
    one bool for all or one per seed (e.g. three seeds with memory and three without).
    The bandits and action draws come from ``env_seed`` (default ``seeds[0]``).

    Returns ``(nets, log)``: a list of frozen :class:`BanditRNNPolicy` (one per seed, in
    order) and the :class:`mesakit.rl.A2CLog` (means over all members).
    ``callback(update, log, group)`` runs after every update; ``group.member(i)`` is a
    frozen copy of member ``i`` at that point.

    Raises ValueError naming the argument for a bad value."""
    from .rl import train_a2c
    seeds = list(seeds) if isinstance(seeds, (list, tuple)) else seeds
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of non-negative ints, got {seeds!r}")
    for s in seeds:
        check_positive_int("seeds", s, minimum=0)
    mem = [memory] * len(seeds) if isinstance(memory, bool) else list(memory)
    if len(mem) != len(seeds) or not all(isinstance(m, bool) for m in mem):
        raise ValueError(f"memory must be a bool or one bool per seed, got {memory!r}")
    check_positive_int("k", k, minimum=2)
    check_positive_int("hidden", hidden)
    check_positive_int("batch", batch)
    device = _check_device(device)
    env_seed = seeds[0] if env_seed is None else check_positive_int("env_seed", env_seed, minimum=0)
    nets = []
    for s, m in zip(seeds, mem):
        torch.manual_seed(s)
        nets.append(BanditRNNPolicy(k, hidden, memory=m))
    group = BanditRNNGroup(nets).to(device)
    env = MetaBanditEnv(batch * len(seeds), k, horizon, prior_a=prior_a, prior_b=prior_b,
                        seed=env_seed, device=device)
    log = train_a2c(group, env, updates=updates, rollout=horizon, lr=lr, lr_final=lr_final, gamma=gamma,
                    gae_lambda=gae_lambda, ent_coef=ent_coef, ent_coef_final=ent_coef_final,
                    max_grad_norm=1.0, seed=env_seed, device=device, desc=desc,
                    callback=None if callback is None else (lambda u, lg: callback(u, lg, group)))
    return [group.member(i) for i in range(len(seeds))], log


# --------------------------------------------------------------------------------------
# Whose choices does a policy follow? Rules' choices along a run, and agreement on the
# states where two rules disagree (Wichers' "simple heuristic" objection, tested)
# --------------------------------------------------------------------------------------
def counts_before_pulls(run: BanditRun) -> tuple[torch.Tensor, torch.Tensor]:
    """The success and failure counts each bandit had *before* each pull of ``run``:
    two float tensors [N, T, K] (row ``t`` holds the counts after pulls ``0 .. t-1``)."""
    if not isinstance(run, BanditRun):
        raise ValueError(f"run must be a BanditRun (from run_policy), got {type(run).__name__}")
    k = run.probs.shape[1]
    onehot = torch.nn.functional.one_hot(run.actions, k).float()            # [N, T, K]
    wins = onehot * run.rewards[..., None]
    succ = torch.cumsum(wins, 1) - wins
    fail = torch.cumsum(onehot - wins, 1) - (onehot - wins)
    return succ, fail


RULES = ("bayes", "greedy", "wsls")


def rule_choices(run: BanditRun, rule: str, *, table: BayesOptimalTable | None = None) -> torch.Tensor:
    """Which arms a rule would pull at every state of ``run`` (the states the run's
    policy visited): bool [N, T, K], True for each arm the rule picks (several on ties).

    ``rule`` is ``"bayes"`` (the optimal arms of ``table``, a :class:`BayesOptimalTable`
    for the run's ``K`` and ``T``), ``"greedy"`` (:func:`greedy_action`'s arms: untried
    arms first, else the best empirical mean, all maxima) or ``"wsls"`` (win-stay,
    lose-shift: the previous arm after a success, every other arm after a failure;
    before the first pull, every arm)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    s, f = counts_before_pulls(run)
    n, t, k = s.shape
    if rule == "bayes":
        if not isinstance(table, BayesOptimalTable) or table.k != k or table.horizon < t:
            raise ValueError(f"table must be a BayesOptimalTable for k={k} and a horizon of at least {t}")
        idx = table._flat_index(s.reshape(-1, k), f.reshape(-1, k))
        return table._on(idx.device)[idx].reshape(n, t, k)
    if rule == "greedy":
        pulls = s + f
        mean = torch.where(pulls > 0, s / pulls.clamp_min(1.0), torch.full_like(s, math.inf))
        return mean >= mean.max(2, keepdim=True).values
    prev = torch.nn.functional.one_hot(run.actions[:, :-1], k).bool()        # [N, T-1, K]
    won = run.rewards[:, :-1, None] > 0.5
    choice = torch.where(won, prev, ~prev)
    return torch.cat([torch.ones(n, 1, k, dtype=torch.bool, device=choice.device), choice], 1)


@torch.no_grad()
def net_choice_probs(net: nn.Module, run: BanditRun) -> torch.Tensor:
    """The probability a frozen meta-learner (e.g. :class:`BanditRNNPolicy`) gives each
    arm at every state of ``run``, fed the run's own history: float [N, T, K]. Run it on
    the net's own run (:func:`run_policy` with :func:`net_policy`) to ask what the net
    does in the states it actually reaches."""
    if not isinstance(net, nn.Module):
        raise ValueError(f"net must be an nn.Module, got {type(net).__name__}")
    if not isinstance(run, BanditRun):
        raise ValueError(f"run must be a BanditRun (from run_policy), got {type(run).__name__}")
    n, t = run.actions.shape
    k = run.probs.shape[1]
    device = run.actions.device
    state = net.initial_state(n, device)
    last_a = torch.full((n,), -1, dtype=torch.long, device=device)
    last_r = torch.zeros(n, device=device)
    out = []
    for step in range(t):
        logits, _, state = net(bandit_observation(last_a, last_r, step, k, t), state)
        out.append(torch.softmax(logits.float(), -1))
        last_a, last_r = run.actions[:, step], run.rewards[:, step]
    return torch.stack(out, 1)


def agreement_where_rules_disagree(choice_probs: torch.Tensor, rule_a: torch.Tensor,
                                   rule_b: torch.Tensor) -> dict:
    """On the states where two rules pick disjoint sets of arms, how much probability
    does a policy put on each rule's arms?

    ``choice_probs`` float [N, T, K] (e.g. :func:`net_choice_probs`, or a one-hot of the
    actions taken); ``rule_a``, ``rule_b`` bool [N, T, K] (:func:`rule_choices`). Returns
    a dict: ``share`` (fraction of all states that are disputed), ``states`` (their
    number), ``agree_a`` and ``agree_b`` (mean probability on rule a's and on rule b's
    arms there; with ``K = 2`` they sum to 1), and ``agree_a_decided`` (mean probability
    on rule a's arms over the states where rule a does not pick every arm: the policy's
    overall agreement with rule a where there is a choice to get wrong; rule a with random
    slips at the policy's own rate would score this on the disputed states too)."""
    for name, value in (("choice_probs", choice_probs), ("rule_a", rule_a), ("rule_b", rule_b)):
        if not isinstance(value, torch.Tensor) or value.dim() != 3:
            raise ValueError(f"{name} must be a tensor of shape [N, T, K]")
    if rule_a.shape != choice_probs.shape or rule_b.shape != choice_probs.shape:
        raise ValueError("choice_probs, rule_a and rule_b must have the same shape [N, T, K]")
    p = choice_probs.double()
    on_a = (p * rule_a).sum(2)
    on_b = (p * rule_b).sum(2)
    disputed = ~(rule_a & rule_b).any(2)
    count = int(disputed.sum())
    nan = float("nan")
    return {"share": disputed.double().mean().item(), "states": count,
            "agree_a": on_a[disputed].mean().item() if count else nan,
            "agree_b": on_b[disputed].mean().item() if count else nan,
            "agree_a_decided": on_a[~rule_a.all(2)].mean().item() if (~rule_a.all(2)).any() else nan}
