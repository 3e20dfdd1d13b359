"""A small on-policy actor-critic trainer (A2C) for vectorized environments.

The interface is deliberately small so bandits (Chapter 2) and gridworlds (Chapter 3)
share it:

* **Environment**: an object with ``num_envs`` (int), ``num_actions`` (int),
  ``reset() -> obs`` and ``step(actions) -> (obs, reward, done)`` or
  ``(obs, reward, done, info)``. ``obs`` is a tensor ``[N, ...]``, ``actions`` a long
  tensor ``[N]``, ``reward`` float ``[N]``, ``done`` bool ``[N]``; environments reset
  themselves where ``done`` (the returned ``obs`` is then the first of the next episode).
  ``done`` is treated as the end of the episode: no bootstrapping past it.
* **Policy**: an ``nn.Module`` with ``forward(obs, state) -> (logits [N, A], value [N],
  state)`` and ``initial_state(batch, device)``. The state is ``None`` for feed-forward
  policies or a tensor with the batch first (``[N, ...]``); where an episode ends, the
  trainer replaces that row with the initial state. Optionally, for speed, a policy may
  define ``evaluate_rollout(obs [S, N, ...], state0, dones [S, N]) -> (logits [S, N, A],
  values [S, N])``, which recomputes a whole rollout in one differentiable pass (e.g. one
  fused GRU call); it must give what stepping ``forward`` would, resetting the state
  after each ``done``. :func:`evaluate_stepwise` is that reference. Without it, the
  trainer keeps the graph of every step.
* **Several networks in one policy** (training seeds as one batched program): a policy
  may hold ``members = E`` networks, member ``e`` acting for environments
  ``e * N/E ... (e + 1) * N/E - 1``. The trainer then gives every member the gradient of
  its own mean loss (the mean loss times E), normalizes advantages per member, and clips
  gradients per member with the policy's ``clip_grad_norm_per_member_(max_norm)`` when
  it has one, so each member trains as it would alone (Adam is per element).

:func:`train_a2c` collects ``rollout`` steps from all environments, computes advantages
with GAE(lambda) (``gae_lambda=1`` gives Monte-Carlo/n-step returns), and takes one
Adam step on ``policy loss + vf_coef * value loss - ent_coef * entropy`` with gradient
clipping. Recurrent states are carried across rollouts (truncated backpropagation
through time). Actions are sampled with the Gumbel-max trick from a seeded CPU
generator, so a run is repeatable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .core import check_device, check_in_range, check_positive_int, progress

__all__ = ["A2CLog", "sample_actions", "gae_advantages", "reset_state", "evaluate_stepwise", "train_a2c"]


def sample_actions(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One action per row of ``logits`` [N, A], drawn from its softmax with the Gumbel-max
    trick using uniforms from the CPU ``generator`` (the same numbers on any device).
    Returns long [N] on ``logits``' device."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError("logits must be a tensor of shape [N, A]")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {generator!r}")
    u = torch.rand(logits.shape, generator=generator).clamp_(1e-20, 1.0)
    gumbel = -torch.log(-torch.log(u))
    return (logits.detach().float() + gumbel.to(logits.device)).argmax(1)


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
                   last_value: torch.Tensor, *, gamma: float, gae_lambda: float):
    """Generalized advantage estimation (Schulman et al. 2016) over a rollout.

    ``rewards``, ``values``, ``dones``: [S, N] (``dones[t]``: the episode ended at step
    ``t``); ``last_value`` [N]: the value of the observation after the rollout. Returns
    ``(advantages, returns)``, both [S, N], with ``returns = advantages + values``."""
    steps = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(steps - 1, -1, -1):
        alive = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * next_value * alive - values[t]
        running = delta + gamma * gae_lambda * alive * running
        adv[t] = running
        next_value = values[t]
    return adv, adv + values


def reset_state(policy: nn.Module, state, done: torch.Tensor):
    """Replace the rows of a batch-first recurrent ``state`` where ``done`` with the
    policy's initial state (``None`` stays ``None``)."""
    if state is None:
        return None
    init = policy.initial_state(state.shape[0], state.device)
    mask = done.view(-1, *([1] * (state.dim() - 1)))
    return torch.where(mask, init, state)


def evaluate_stepwise(policy: nn.Module, obs: torch.Tensor, state0, dones: torch.Tensor):
    """Run ``policy`` over a stored rollout step by step, resetting the state after each
    ``done``: the reference for a policy's ``evaluate_rollout``. ``obs`` [S, N, ...],
    ``dones`` [S, N]; returns ``(logits [S, N, A], values [S, N])``."""
    state, logits, values = state0, [], []
    for t in range(obs.shape[0]):
        lg, v, state = policy(obs[t], state)
        logits.append(lg)
        values.append(v)
        state = reset_state(policy, state, dones[t])
    return torch.stack(logits), torch.stack(values)


@dataclass
class A2CLog:
    """What :func:`train_a2c` records, one entry per update.

    ``mean_reward``: mean reward per environment step in the rollout;
    ``episode_return``: mean return of the episodes that ended in the rollout (NaN if
    none); ``entropy``, ``policy_loss``, ``value_loss``: the loss terms."""

    mean_reward: list[float] = field(default_factory=list)
    episode_return: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    policy_loss: list[float] = field(default_factory=list)
    value_loss: list[float] = field(default_factory=list)


def _linear(start: float, end: float, frac: float) -> float:
    return start + (end - start) * frac


def train_a2c(
    policy: nn.Module,
    env: Any,
    *,
    updates: int,
    rollout: int,
    lr: float = 1e-3,
    lr_final: float | None = None,
    gamma: float = 0.99,
    gamma_final: float | None = None,
    gae_lambda: float = 0.95,
    ent_coef: float = 0.01,
    ent_coef_final: float | None = None,
    vf_coef: float = 0.5,
    max_grad_norm: float = 0.5,
    normalize_advantages: bool = False,
    reward_scale: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    desc: str = "A2C",
    callback: Callable[[int, A2CLog], None] | None = None,
) -> A2CLog:
    """Train ``policy`` on the vectorized ``env`` with advantage actor-critic.

    Each of the ``updates`` iterations plays ``rollout`` steps in all ``env.num_envs``
    environments, then takes one Adam step. ``lr``, ``ent_coef`` and ``gamma`` move
    linearly to ``lr_final``, ``ent_coef_final`` and ``gamma_final`` over the run
    (unchanged when those are None): a large entropy bonus early keeps the policy
    exploring while it is still bad, and a discount that starts short-sighted and grows
    lets long episodes learn the easy part first (low-variance returns), then the
    far-sighted part. ``reward_scale`` multiplies the rewards the learner sees (not the
    logged ones): with a discount close to 1 over long episodes, returns are large and a
    scale such as ``1 - gamma`` keeps the value targets near 1. ``env`` must already
    live on ``device``; the policy is moved there. Same ``seed`` and machine, same run
    (the policy's initial weights are the caller's: seed before constructing it).
    ``callback(update, log)`` runs after every update. Returns an :class:`A2CLog` (its
    numbers are means over all environments, members included); the policy is left in
    eval mode.

    Raises ValueError naming the argument for a bad value, including a ``device`` that is
    not a CPU or an available CUDA device (:func:`mesakit.check_device`)."""
    updates = check_positive_int("updates", updates)
    rollout = check_positive_int("rollout", rollout)
    if not isinstance(policy, nn.Module):
        raise ValueError(f"policy must be an nn.Module, got {type(policy).__name__}")
    for name in ("reset", "step"):
        if not callable(getattr(env, name, None)):
            raise ValueError(f"env must have a {name}() method")
    for name in ("num_envs", "num_actions"):
        if not isinstance(getattr(env, name, None), int):
            raise ValueError(f"env must have an integer attribute {name}")
    for name, value in (("lr", lr), ("lr_final", lr_final)):
        if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    check_in_range("gamma", gamma, 0.0, 1.0)
    if gamma_final is not None:
        check_in_range("gamma_final", gamma_final, 0.0, 1.0)
    check_in_range("gae_lambda", gae_lambda, 0.0, 1.0)
    check_in_range("ent_coef", ent_coef, 0.0, 1e3)
    if ent_coef_final is not None:
        check_in_range("ent_coef_final", ent_coef_final, 0.0, 1e3)
    check_in_range("vf_coef", vf_coef, 0.0, 1e3)
    if isinstance(reward_scale, bool) or not isinstance(reward_scale, (int, float)) or not reward_scale > 0:
        raise ValueError(f"reward_scale must be a positive number, got {reward_scale!r}")
    check_in_range("max_grad_norm", max_grad_norm, 0.0, 1e6)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if callback is not None and not callable(callback):
        raise ValueError("callback must be callable or None")
    lr_final = lr if lr_final is None else lr_final
    ent_final = ent_coef if ent_coef_final is None else ent_coef_final
    gamma_end = gamma if gamma_final is None else gamma_final

    device = check_device("device", device)
    members = getattr(policy, "members", 1)
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"policy.members must be a positive int (the number of networks the "
                         f"policy holds), got {members!r}")
    if members > 1 and env.num_envs % members:
        raise ValueError(f"env.num_envs ({env.num_envs}) must be a multiple of policy.members ({members})")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    policy.to(device).train()
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    n = env.num_envs
    obs = env.reset()
    state = policy.initial_state(n, device)
    running_return = torch.zeros(n, device=device)
    seq_eval = getattr(policy, "evaluate_rollout", None)
    log = A2CLog()

    bar = progress(range(updates), desc=desc)
    for update in bar:
        frac = update / max(updates - 1, 1)
        for group in opt.param_groups:
            group["lr"] = _linear(lr, lr_final, frac)
        beta = _linear(ent_coef, ent_final, frac)
        discount = _linear(gamma, gamma_end, frac)
        if state is not None:
            state = state.detach()

        state0 = state
        obs_seq, actions, rewards, dones = [], [], [], []
        logps, values, entropies = [], [], []
        finished_sum, finished_count = 0.0, 0
        for _ in range(rollout):
            with torch.set_grad_enabled(seq_eval is None):
                logits, value, state = policy(obs, state)
            action = sample_actions(logits, gen)
            if seq_eval is None:
                logp_all = torch.log_softmax(logits, -1)
                logps.append(logp_all.gather(1, action[:, None]).squeeze(1))
                entropies.append(-(logp_all.exp() * logp_all).sum(-1))
                values.append(value)
            else:
                obs_seq.append(obs)
            obs, reward, done, *_ = env.step(action)
            reward = reward.to(device).float()
            done = done.to(device).bool()
            actions.append(action)
            rewards.append(reward)
            dones.append(done)
            running_return += reward
            if done.any():
                finished_sum += running_return[done].sum().item()
                finished_count += int(done.sum())
                running_return = torch.where(done, torch.zeros_like(running_return), running_return)
                state = reset_state(policy, state, done)
        if seq_eval is not None:
            # Recompute the rollout in one differentiable pass (e.g. one fused GRU call).
            logits_seq, values_t = seq_eval(torch.stack(obs_seq), state0, torch.stack(dones))
            logp_all = torch.log_softmax(logits_seq, -1)
            logps_t = logp_all.gather(2, torch.stack(actions)[..., None]).squeeze(2)
            ent_t = -(logp_all.exp() * logp_all).sum(-1)
        else:
            values_t, logps_t, ent_t = torch.stack(values), torch.stack(logps), torch.stack(entropies)

        with torch.no_grad():
            _, last_value, _ = policy(obs, state)
        rewards_t, dones_t = torch.stack(rewards), torch.stack(dones)
        adv, returns = gae_advantages(rewards_t * reward_scale, values_t.detach(), dones_t, last_value.detach(),
                                      gamma=discount, gae_lambda=gae_lambda)
        if normalize_advantages:   # per member, so members stay independent
            a = adv.reshape(adv.shape[0], members, -1)
            a = (a - a.mean((0, 2), keepdim=True)) / (a.std((0, 2), keepdim=True) + 1e-8)
            adv = a.reshape(adv.shape)
        policy_loss = -(adv * logps_t).mean()
        value_loss = 0.5 * (returns - values_t).pow(2).mean()
        entropy = ent_t.mean()
        loss = policy_loss + vf_coef * value_loss - beta * entropy
        opt.zero_grad(set_to_none=True)
        # A policy of several networks (``members``; each owns an equal block of the
        # environments) gets each member the gradient of its own mean loss, as if alone.
        (loss * members).backward()
        if max_grad_norm > 0:
            if members > 1 and hasattr(policy, "clip_grad_norm_per_member_"):
                policy.clip_grad_norm_per_member_(max_grad_norm)
            else:
                nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
        opt.step()

        log.mean_reward.append(rewards_t.mean().item())
        log.episode_return.append(finished_sum / finished_count if finished_count else float("nan"))
        log.entropy.append(entropy.item())
        log.policy_loss.append(policy_loss.item())
        log.value_loss.append(value_loss.item())
        if finished_count:
            bar.set_postfix(ret=f"{log.episode_return[-1]:.2f}", ent=f"{log.entropy[-1]:.2f}", refresh=False)
        if callback is not None:
            callback(update, log)
    policy.eval()
    return log
