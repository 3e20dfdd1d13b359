"""Maximum-entropy inverse reinforcement learning on one gridworld level (Chapter 3).

Inverse RL asks the question of "Risks from Learned Optimization" §1.1 in numbers: which
reward would make an agent's behaviour optimal? Its answer, the agent's *behavioral
objective*, is what "perfect inverse reinforcement learning" would recover (Ng & Russell
2000). The maximum-entropy version (Ziebart et al. 2008, "Maximum Entropy Inverse
Reinforcement Learning", AAAI) models the demonstrator as choosing whole paths with
probability proportional to ``exp(sum of rewards along the path)``, and fits the reward by
matching the states the demonstrations visit with the states that model visits.

Everything here is tabular and exact, on a finite horizon ``T``:

* :func:`grid_mdp` turns one level of a :class:`mesakit.gridworld.GridWorld` into a
  transition tensor ``[S, A, S]`` over its ``S = H * W`` cells (objects absorbing: an
  episode ends there, so the path stays);
* :func:`soft_visitation` runs the soft (log-sum-exp) Bellman backup backward in time,
  then pushes the start distribution forward through the resulting time-dependent
  policy: the expected number of visits to every state in ``T`` steps;
* :func:`empirical_visitation` counts the same in demonstrations;
* :func:`maxent_irl` does gradient ascent on a per-state reward, whose gradient is the
  difference of the two visitation counts (Ziebart et al. 2008, Algorithm 1);
* :func:`play_level` records an agent's paths on copies of one level, from given starts.

States are flat cell indices ``row * W + column``; actions are those of the gridworld
(0 up, 1 down, 2 left, 3 right).
"""
from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn

from .core import check_positive_int
from .gridworld import GridWorld
from .ppo import hash_uniform

__all__ = ["grid_mdp", "level_mdp", "soft_visitation", "empirical_visitation", "maxent_irl", "play_level"]

_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))          # up, down, left, right


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_horizon(horizon: Any) -> int:
    return check_positive_int("horizon", horizon)


def grid_mdp(walls: torch.Tensor, absorbing: torch.Tensor) -> torch.Tensor:
    """The deterministic MDP of a grid: float64 transitions ``P [S, A, S]``, ``S = H * W``
    cells, ``A = 4`` moves (up, down, left, right).

    A move into a wall leaves the agent where it is; from an ``absorbing`` cell (an object:
    the episode ends there) every action stays; wall cells also loop on themselves (they
    are never entered). ``P[s, a, s']`` is the probability of landing in ``s'``.

    Args:
        walls: bool [H, W], True on walls (the border included).
        absorbing: bool [H, W], True on cells where a path ends and stays.

    Raises ValueError naming a bad argument.
    """
    if not isinstance(walls, torch.Tensor) or walls.dim() != 2 or walls.dtype != torch.bool:
        raise ValueError("walls must be a bool tensor of shape [H, W]")
    if not isinstance(absorbing, torch.Tensor) or absorbing.shape != walls.shape or absorbing.dtype != torch.bool:
        raise ValueError(f"absorbing must be a bool tensor of shape {tuple(walls.shape)}")
    h, w = walls.shape
    walls_c, absorbing_c = walls.cpu(), absorbing.cpu()
    rows = torch.arange(h).view(h, 1).expand(h, w)
    cols = torch.arange(w).view(1, w).expand(h, w)
    here = (rows * w + cols).reshape(-1)
    stuck = (walls_c | absorbing_c).reshape(-1)
    target = torch.empty(h * w, 4, dtype=torch.long)
    for a, (dr, dc) in enumerate(_MOVES):
        r2, c2 = (rows + dr).clamp(0, h - 1), (cols + dc).clamp(0, w - 1)
        blocked = walls_c[r2, c2]
        target[:, a] = torch.where(blocked, rows * w + cols, r2 * w + c2).reshape(-1)
    target = torch.where(stuck[:, None], here[:, None], target)
    p = torch.zeros(h * w, 4, h * w, dtype=torch.float64)
    p.scatter_(2, target[..., None], 1.0)
    return p.to(walls.device)


def level_mdp(env: GridWorld, index: int = 0) -> torch.Tensor:
    """:func:`grid_mdp` of level ``index`` of ``env`` as it is now, every object absorbing
    (the gridworld ends an episode on any object)."""
    if not isinstance(env, GridWorld):
        raise ValueError(f"env must be a mesakit.gridworld.GridWorld, got {type(env).__name__}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < env.num_envs:
        raise ValueError(f"index must be an integer in range({env.num_envs}), got {index!r}")
    walls = env.walls[index]
    absorbing = torch.zeros_like(walls)
    pos = env.object_pos[index]
    absorbing[pos[:, 0], pos[:, 1]] = True
    return grid_mdp(walls, absorbing)


def _check_mdp(reward: Any, transitions: Any, start: Any) -> None:
    if not isinstance(transitions, torch.Tensor) or transitions.dim() != 3 or not transitions.is_floating_point() \
            or transitions.shape[0] != transitions.shape[2]:
        raise ValueError("transitions must be a float tensor of shape [S, A, S]")
    s = transitions.shape[0]
    for name, x in (("reward", reward), ("start", start)):
        if not isinstance(x, torch.Tensor) or x.shape != (s,) or not x.is_floating_point():
            raise ValueError(f"{name} must be a float tensor of shape [{s}] (one number per state)")
        if x.device != transitions.device:
            raise ValueError(f"{name} must be on the same device as transitions ({transitions.device})")
    if not bool(torch.allclose(transitions.sum(2).double(), torch.ones((), dtype=torch.float64,
                                                                      device=transitions.device), atol=1e-6)):
        raise ValueError("transitions must be probabilities: transitions[s, a].sum() == 1")
    if bool((start < 0).any()) or abs(float(start.sum()) - 1.0) > 1e-6:
        raise ValueError("start must be a probability distribution over the states")


def soft_visitation(reward: torch.Tensor, transitions: torch.Tensor, start: torch.Tensor,
                    horizon: int) -> torch.Tensor:
    """Expected state visitation counts of the maximum-entropy policy of ``reward`` over
    ``horizon`` steps (Ziebart et al. 2008, Algorithm 1: backward pass, then forward pass).

    Backward, with ``V_T = 0``, for ``t = T-1, ..., 0``::

        Q_t(s, a) = reward[s] + sum_s' P[s, a, s'] V_{t+1}(s')
        V_t(s)    = logsumexp_a Q_t(s, a)
        pi_t(a|s) = exp(Q_t(s, a) - V_t(s))

    Forward: ``D_0 = start``, ``D_{t+1}(s') = sum_{s, a} D_t(s) pi_t(a|s) P[s, a, s']``.
    Returns ``sum_{t=0}^{T-1} D_t``, float64 ``[S]``: the expected number of the ``T``
    states ``s_0, ..., s_{T-1}`` of a path that are ``s`` (it sums to ``T``).

    Args:
        reward: float [S], the reward of being in each state (nats).
        transitions: float [S, A, S], rows summing to 1 (:func:`grid_mdp`).
        start: float [S], the distribution of the first state.
        horizon: T >= 1, states per path.

    Raises ValueError naming a bad argument.
    """
    _check_mdp(reward, transitions, start)
    horizon = _check_horizon(horizon)
    p, r = transitions.double(), reward.double()
    value = torch.zeros_like(r)
    policies = []
    for _ in range(horizon):
        q = r[:, None] + p @ value                      # [S, A]
        value = torch.logsumexp(q, 1)
        policies.append(torch.softmax(q, 1))
    policies.reverse()                                  # policies[t] = pi_t
    d = start.double()
    visits = torch.zeros_like(d)
    for t in range(horizon):
        visits = visits + d
        d = torch.einsum("s,sa,sat->t", d, policies[t], p)
    return visits


def empirical_visitation(states: torch.Tensor, num_states: int) -> torch.Tensor:
    """float64 [S]: the mean over demonstrations of how many of their ``T`` states are
    each state. ``states`` is long [N, T] (flat state indices); the result sums to T."""
    num_states = check_positive_int("num_states", num_states)
    if not isinstance(states, torch.Tensor) or states.dim() != 2 or states.is_floating_point() \
            or states.dtype == torch.bool or states.shape[0] == 0:
        raise ValueError("states must be an integer tensor of shape [N, T] with N >= 1")
    if bool(((states < 0) | (states >= num_states)).any()):
        raise ValueError(f"states must hold indices in range({num_states})")
    counts = torch.zeros(num_states, dtype=torch.float64, device=states.device)
    counts.index_add_(0, states.reshape(-1), torch.ones(states.numel(), dtype=torch.float64, device=states.device))
    return counts / states.shape[0]


def maxent_irl(transitions: torch.Tensor, start: torch.Tensor, empirical: torch.Tensor, horizon: int, *,
               steps: int = 100, lr: float = 0.1) -> torch.Tensor:
    """Maximum-entropy IRL with one reward per state (Ziebart et al. 2008): start from
    ``reward = 0`` and take ``steps`` steps of gradient ascent on the demonstrations'
    mean log-likelihood, whose gradient is ``empirical - soft_visitation(reward, ...)``::

        reward <- reward + lr * (empirical - soft_visitation(reward, transitions, start, horizon))

    Args:
        transitions: float [S, A, S]; start: float [S], the demonstrations' start
            distribution; empirical: float [S], :func:`empirical_visitation` of the
            demonstrations (paths of ``horizon`` states); horizon: T.
        steps: gradient steps (>= 1); lr: step size (> 0).

    Returns the reward, float64 [S] (determined only up to a constant on states the
    demonstrations and the model never reach: those stay at 0). Raises ValueError naming
    a bad argument.
    """
    _check_mdp(torch.zeros_like(start) if isinstance(start, torch.Tensor) else start, transitions, start)
    s = transitions.shape[0]
    if not isinstance(empirical, torch.Tensor) or empirical.shape != (s,) or not empirical.is_floating_point():
        raise ValueError(f"empirical must be a float tensor of shape [{s}]")
    horizon = _check_horizon(horizon)
    steps = check_positive_int("steps", steps)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    reward = torch.zeros(s, dtype=torch.float64, device=transitions.device)
    target = empirical.double()
    for _ in range(steps):
        reward = reward + lr * (target - soft_visitation(reward, transitions, start, horizon))
    return reward


@torch.no_grad()
def play_level(policy: nn.Module, env: GridWorld, starts: torch.Tensor, horizon: int, *,
               level: GridWorld | None = None, index: int = 0, seed: int = 0, greedy: bool = False) -> torch.Tensor:
    """Record paths of ``policy`` on copies of one level: every environment of ``env`` is
    set to level ``index`` of ``level`` (default: ``env`` itself) as it is now, with the
    agent at ``starts[i]``, and plays ``horizon - 1`` moves. Once the agent reaches an object the path stays on that
    object's cell (the episode is over: an absorbing state of :func:`grid_mdp`).

    Args:
        policy: ``forward(obs) -> (logits [N, A], ...)``; a batched policy of E agents acts
            in E consecutive blocks of ``env``'s N environments.
        env: a GridWorld (its current levels are replaced; ``env.reset`` restores them).
        level: the GridWorld holding the level to copy (same grid size and number of
            objects as ``env``), or None for ``env``.
        starts: long [N, 2], the (row, column) where each path starts: free cells, not
            on an object.
        horizon: T, states per path (1 <= T <= env.max_steps).
        index: which of ``env``'s levels to copy.
        seed: seeds the action sampling (as :func:`mesakit.alignment.run_episodes`).
        greedy: take the most probable action instead of sampling.

    Returns long [N, T], flat cell indices ``row * W + column``. Raises ValueError naming
    a bad argument.
    """
    if not isinstance(env, GridWorld):
        raise ValueError(f"env must be a mesakit.gridworld.GridWorld, got {type(env).__name__}")
    if not isinstance(policy, nn.Module):
        raise ValueError(f"policy must be an nn.Module, got {type(policy).__name__}")
    n, w = env.num_envs, env.width
    level = env if level is None else level
    if not isinstance(level, GridWorld):
        raise ValueError(f"level must be a mesakit.gridworld.GridWorld or None, got {type(level).__name__}")
    if (level.height, level.width, level.num_objects) != (env.height, env.width, env.num_objects):
        raise ValueError("level must have env's grid size and number of objects")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < level.num_envs:
        raise ValueError(f"index must be an integer in range({level.num_envs}), got {index!r}")
    horizon = _check_horizon(horizon)
    if horizon > env.max_steps:
        raise ValueError(f"horizon must be at most env.max_steps = {env.max_steps}, got {horizon}")
    seed = _check_seed(seed)
    if greedy not in (True, False):
        raise ValueError(f"greedy must be True or False, got {greedy!r}")
    if not isinstance(starts, torch.Tensor) or starts.shape != (n, 2) or starts.is_floating_point():
        raise ValueError(f"starts must be an integer tensor of shape ({n}, 2)")
    device = env.device
    obj = level.object_pos[index].to(device)
    obs = env.set_state(walls=level.walls[index].to(device).expand(n, -1, -1).clone(),
                        agent_pos=starts.to(device).long(), object_pos=obj.expand(n, -1, -1).clone(),
                        object_colour=level.object_colour[index].to(device).expand(n, -1).clone(),
                        object_kind=level.object_kind[index].to(device).expand(n, -1).clone())
    obj_cells = obj[:, 0] * w + obj[:, 1]                                       # [K]
    cell = starts[:, 0].to(device).long() * w + starts[:, 1].to(device).long()
    path = [cell]
    active = torch.ones(n, dtype=torch.bool, device=device)
    rows = torch.arange(n, device=device)
    actions = torch.arange(env.num_actions, device=device)
    for t in range(horizon - 1):
        logits = policy(obs)[0]
        if greedy:
            action = logits.argmax(1)
        else:
            u = hash_uniform(seed, t, rows[:, None] * 64 + actions).clamp_(1e-12, 1 - 1e-7)
            action = (logits + -torch.log(-torch.log(u))).argmax(1)
        obs, _, done, info = env.step(action)      # no time limit inside the horizon: done = an object
        here = env.agent_pos
        moved = torch.where(info["reached"] >= 0, obj_cells[info["reached"].clamp(min=0)],
                            here[:, 0] * w + here[:, 1])
        cell = torch.where(active, moved, cell)
        active &= ~done
        path.append(cell)
    return torch.stack(path, 1)

