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
