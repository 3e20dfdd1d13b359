"""Proximal policy optimization for many small agents at once (Chapters 3 and 4).

A sweep of gridworld agents (training seeds x values of a parameter such as q) trains as
**one batched program**: :class:`BatchedMLPPolicy` holds E networks as the slices of a
leading dimension of every weight (batched matrix products, no Python loop over agents),
and agent e acts in block e of a :class:`mesakit.gridworld.GridWorld` built with
``blocks=E`` (its own level distribution and random stream). Everything random that an
agent sees is drawn from its own seed: its initial weights, its levels, its actions and
its minibatches (a counter-based hash, :func:`hash_uniform`, so the draws do not depend
on which other agents share the batch). Hence a batched run equals the same agents
trained one by one, to floating-point tolerance (``tests/test_ppo.py`` checks it).

:func:`train_ppo` is PPO with the clipped surrogate objective (Schulman et al. 2017,
"Proximal Policy Optimization Algorithms"), advantages by GAE(lambda) (Schulman et al.
2016), per-agent advantage normalization, per-agent gradient clipping and Adam. Rollouts
go into a :class:`RolloutBuffer` allocated once: a training step writes into it, it
allocates no new storage.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .core import check_device, check_in_range, check_positive_int, progress
from .ensembles import clip_stacked_grad_norms_, scaled_stacked_step_
from .rl import gae_advantages

__all__ = ["BatchedMLPPolicy", "RolloutBuffer", "PPOLog", "hash_uniform", "train_ppo"]

_MASK63 = (1 << 63) - 1


def _mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finalizer on int64 tensors (wrapping arithmetic; logical shifts)."""
    x = x + -7046029254386353131                       # 0x9E3779B97F4A7C15 as int64
    x = (x ^ ((x >> 30) & ((1 << 34) - 1))) * -4658895280553007687   # 0xBF58476D1CE4E5B9
    x = (x ^ ((x >> 27) & ((1 << 37) - 1))) * -7723592293110705685   # 0x94D049BB133111EB
    return x ^ ((x >> 31) & ((1 << 33) - 1))


def hash_uniform(*keys: torch.Tensor | int) -> torch.Tensor:
    """Uniform numbers in [0, 1) that are a fixed function of integer keys.

    A counter-based generator (SplitMix64 hashing, chained over the keys): the same keys
    give the same numbers on any device and in any batch, which is what lets a batched
    run of E agents draw exactly what each agent would draw alone. Keys are int64 tensors
    (broadcast together) or Python ints. Returns float32 of the broadcast shape.
    """
    if not keys:
        raise ValueError("keys must hold at least one integer tensor or int")
    x = None
    for k in keys:
        if isinstance(k, bool) or not isinstance(k, (numbers.Integral, torch.Tensor)):
            raise ValueError(f"keys must be integer tensors or ints, got {type(k).__name__}")
        if isinstance(k, torch.Tensor) and (k.dtype.is_floating_point or k.dtype == torch.bool):
            raise ValueError(f"keys must be integer tensors, got dtype {k.dtype}")
        k = torch.as_tensor(k, dtype=torch.int64) if not isinstance(k, torch.Tensor) else k.long()
        x = _mix(k) if x is None else _mix(x.to(k.device) ^ k)
    return ((x >> 40) & ((1 << 24) - 1)).float() / float(1 << 24)


def _check_seeds(name: str, seeds: Any) -> list[int]:
    if (not isinstance(seeds, (list, tuple)) or len(seeds) == 0
            or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in seeds)):
        raise ValueError(f"{name} must be a non-empty sequence of non-negative ints, got {seeds!r}")
    return [int(s) for s in seeds]


class BatchedMLPPolicy(nn.Module):
    """E actor-critic MLPs held as one module: every weight has a leading agent axis.

    Each agent is ``obs -> Linear(D, H) -> tanh -> Linear(H, H) -> tanh`` followed by a
    policy head (A logits) and a value head, initialised as PyTorch's ``nn.Linear`` would
    after ``torch.manual_seed(seeds[e])`` (orthogonal heads are not needed at this size).

    Args:
        obs_dim: D, the length of one flattened observation.
        num_actions: A.
        seeds: one seed per agent; E = len(seeds).
        hidden: H, the width of both hidden layers.
        device: where the weights live.

    ``forward(obs, state=None)`` takes obs [N, ...] with N a multiple of E (agent e acts
    for rows ``e*N/E ... (e+1)*N/E - 1``) and returns ``(logits [N, A], value [N], None)``,
    the policy interface of :func:`train_ppo` and :func:`mesakit.rl.train_a2c`.
    Raises ValueError naming a bad argument.
    """

    def __init__(self, obs_dim: int, num_actions: int, seeds: Sequence[int], *, hidden: int = 64,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.num_actions = check_positive_int("num_actions", num_actions, minimum=2)
        self.seeds = _check_seeds("seeds", seeds)
        self.hidden = check_positive_int("hidden", hidden)
        device = check_device("device", device)
        self.members = len(self.seeds)
        shapes = {"w1": (obs_dim, hidden), "w2": (hidden, hidden), "wpi": (hidden, num_actions),
                  "wv": (hidden, 1)}
        tensors: dict[str, list[torch.Tensor]] = {}
        for seed in self.seeds:
            gen = torch.Generator().manual_seed(seed)
            for name, (fan_in, fan_out) in shapes.items():
                bound = 1.0 / math.sqrt(fan_in)    # nn.Linear's default: U(-1/sqrt(fan_in), +)
                w = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
                b = (torch.rand(fan_out, generator=gen) * 2 - 1) * bound
                tensors.setdefault(name, []).append(w)
                tensors.setdefault("b" + name[1:], []).append(b)
        for name, parts in tensors.items():
            self.register_parameter(name, nn.Parameter(torch.stack(parts).to(device)))

    def initial_state(self, batch: int, device: torch.device | str = "cpu"):
        """Feed-forward: no recurrent state (None), after checking ``device``."""
        check_device("device", device)
        return None

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The last hidden layer, [E, N/E, H], for probes (Chapter 4)."""
        e = self.members
        if not isinstance(obs, torch.Tensor) or obs.shape[0] % e:
            raise ValueError(f"obs must be a tensor whose first dimension is a multiple of "
                             f"the {e} agents")
        x = obs.reshape(e, obs.shape[0] // e, -1).to(self.w1.dtype)
        if x.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must flatten to {self.obs_dim} features per row, got {x.shape[-1]}")
        h = torch.tanh(torch.baddbmm(self.b1[:, None], x, self.w1))
        return torch.tanh(torch.baddbmm(self.b2[:, None], h, self.w2))

    def forward(self, obs: torch.Tensor, state=None):
        h = self.features(obs)
        logits = torch.baddbmm(self.bpi[:, None], h, self.wpi).reshape(-1, self.num_actions)
        value = torch.baddbmm(self.bv[:, None], h, self.wv).reshape(-1)
        return logits, value, None

    def clip_grad_norm_per_member_(self, max_norm: float) -> torch.Tensor:
        """Clip each agent's gradient to ``max_norm`` on its own (as if trained alone);
        returns the E norms before clipping."""
        return clip_stacked_grad_norms_(self.parameters(), self.members, max_norm)

    def member(self, i: int) -> "BatchedMLPPolicy":
        """Agent ``i`` alone, as a one-agent policy (a copy)."""
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.members:
            raise ValueError(f"i must be an agent index in [0, {self.members - 1}], got {i!r}")
        return self.select([i])

    def select(self, indices: Sequence[int]) -> "BatchedMLPPolicy":
        """A policy of the agents ``indices`` (a copy), in that order."""
        if (not isinstance(indices, (list, tuple)) or not indices
                or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.members
                       for i in indices)):
            raise ValueError(f"indices must be a non-empty list of agent indices in "
                             f"[0, {self.members - 1}], got {indices!r}")
        out = BatchedMLPPolicy(self.obs_dim, self.num_actions, [self.seeds[i] for i in indices],
                               hidden=self.hidden, device=self.w1.device)
        with torch.no_grad():
            for name, p in self.named_parameters():
                getattr(out, name).copy_(p[list(indices)])
        return out.train(self.training)


class RolloutBuffer:
    """Storage for one rollout of T steps in N environments, allocated once.

    Tensors (all [T, N] unless noted): ``obs`` [T, N, *obs_shape] in the environment's
    dtype, ``actions`` (long), ``logp`` (log-probability of the action taken),
    ``values``, ``rewards``, ``dones`` (bool); ``last_value`` [N] bootstraps the end.
    """

    def __init__(self, steps: int, num_envs: int, obs_shape: Sequence[int], *,
                 obs_dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        self.steps = check_positive_int("steps", steps)
        self.num_envs = check_positive_int("num_envs", num_envs)
        if not isinstance(obs_shape, (tuple, list, torch.Size)) or not all(
                isinstance(d, int) and d > 0 for d in obs_shape):
            raise ValueError(f"obs_shape must be a sequence of positive ints, got {obs_shape!r}")
        dev = check_device("device", device)
        t, n = steps, num_envs
        self.obs = torch.zeros((t, n, *obs_shape), dtype=obs_dtype, device=dev)
        self.actions = torch.zeros(t, n, dtype=torch.long, device=dev)
        self.logp = torch.zeros(t, n, device=dev)
        self.values = torch.zeros(t, n, device=dev)
        self.rewards = torch.zeros(t, n, device=dev)
        self.dones = torch.zeros(t, n, dtype=torch.bool, device=dev)
        self.last_value = torch.zeros(n, device=dev)

    def storage(self) -> list[torch.Tensor]:
        """Every tensor the buffer owns (a test checks they are written in place)."""
        return [self.obs, self.actions, self.logp, self.values, self.rewards, self.dones,
                self.last_value]


@dataclass
class PPOLog:
    """Per-update training curves, one column per agent ([updates, E] lists of rows):
    mean return and success rate of the episodes that finished during the update (nan
    when none did), the policy's entropy; plus the total env-steps."""

    episode_return: list[list[float]] = field(default_factory=list)
    success: list[list[float]] = field(default_factory=list)
    entropy: list[list[float]] = field(default_factory=list)
    env_steps: int = 0

    def curve(self, name: str) -> torch.Tensor:
        """float [updates, E] for ``name`` in episode_return, success, entropy."""
        if name not in ("episode_return", "success", "entropy"):
            raise ValueError(f"name must be one of episode_return, success, entropy, got {name!r}")
        return torch.tensor(getattr(self, name), dtype=torch.float32)


def _agent_sums(x: torch.Tensor, e: int) -> torch.Tensor:
    return x.reshape(x.shape[0], e, -1).sum((0, 2)) if x.dim() == 2 else x.reshape(e, -1).sum(1)


def train_ppo(
    policy: nn.Module,
    env: Any,
    *,
    updates: int,
    rollout: int = 32,
    epochs: int = 3,
    minibatches: int = 4,
    clip: float = 0.2,
    lr: float = 2.5e-3,
    lr_final: float | None = None,
    gamma: float = 0.95,
    gae_lambda: float = 0.9,
    ent_coef: float = 0.01,
    vf_coef: float = 0.5,
    max_grad_norm: float = 0.5,
    device: torch.device | str = "cpu",
    desc: str = "PPO",
    callback: Callable[[int, PPOLog], None] | None = None,
    lr_scale: Sequence[float] | None = None,
) -> PPOLog:
    """Train the E agents of ``policy`` together with PPO on the vectorized ``env``.

    Args:
        policy: a module with ``members = E`` agents (e.g. :class:`BatchedMLPPolicy`) and
            ``seeds`` (E ints: the agents' action and minibatch streams come from them);
            ``forward(obs) -> (logits [N, A], value [N], None)``.
        env: N = env.num_envs environments, N a multiple of E, agent e acting in the
            e-th block of N/E (a :class:`mesakit.gridworld.GridWorld` with ``blocks=E``,
            ideally ``copy_obs=False``); ``step(actions)`` returns
            ``(obs, reward, done, info)``, with ``info["success"]`` if available.
        updates: number of rollouts; each is followed by ``epochs`` passes over it in
            ``minibatches`` minibatches (split over environments, per agent).
        rollout: T, steps per environment per rollout.
        clip: the PPO clipping range epsilon.
        lr, lr_final: Adam's learning rate, annealed linearly to ``lr_final``.
        gamma, gae_lambda: discount and GAE(lambda).
        ent_coef, vf_coef: weights of the entropy bonus and of the value loss.
        max_grad_norm: per-agent gradient clipping (0 disables).
        device: where the policy trains; ``env`` must already live there.
        callback: ``callback(update, log)`` after every update.
        lr_scale: None, or E positive numbers: agent e trains at learning rate
            ``lr * lr_scale[e]`` (:func:`mesakit.ensembles.scaled_stacked_step_`), so
            several learning rates train as one batched program.

    Each agent receives the gradient of its own mean loss (its advantages normalized
    over its own samples, its gradient clipped on its own; Adam is per element), so an
    agent trains as it would alone. Same seeds, same machine, same run.

    Returns a :class:`PPOLog`; the policy is left in eval mode.
    Raises ValueError naming the argument for a bad value.
    """
    updates = check_positive_int("updates", updates)
    rollout = check_positive_int("rollout", rollout)
    epochs = check_positive_int("epochs", epochs)
    minibatches = check_positive_int("minibatches", minibatches)
    if not isinstance(policy, nn.Module):
        raise ValueError(f"policy must be an nn.Module, got {type(policy).__name__}")
    e = getattr(policy, "members", None)
    if isinstance(e, bool) or not isinstance(e, int) or e < 1:
        raise ValueError("policy must have an integer attribute members >= 1 (its number of agents)")
    seeds = _check_seeds("policy.seeds", list(getattr(policy, "seeds", [])))
    if len(seeds) != e:
        raise ValueError(f"policy.seeds must hold one seed per agent ({e}), got {len(seeds)}")
    for name in ("reset", "step", "observe"):
        if not callable(getattr(env, name, None)):
            raise ValueError(f"env must have a {name}() method")
    n = getattr(env, "num_envs", None)
    if not isinstance(n, int) or n % e:
        raise ValueError(f"env.num_envs must be a multiple of the policy's {e} agents, got {n!r}")
    per_agent = n // e
    if per_agent % minibatches:
        raise ValueError(f"minibatches ({minibatches}) must divide the environments per agent ({per_agent})")
    check_in_range("clip", clip, 0.0, 10.0)
    for name, value in (("lr", lr), ("lr_final", lr_final)):
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    check_in_range("gamma", gamma, 0.0, 1.0)
    check_in_range("gae_lambda", gae_lambda, 0.0, 1.0)
    check_in_range("ent_coef", ent_coef, 0.0, 1e3)
    check_in_range("vf_coef", vf_coef, 0.0, 1e3)
    check_in_range("max_grad_norm", max_grad_norm, 0.0, 1e6)
    if callback is not None and not callable(callback):
        raise ValueError("callback must be callable or None")
    scale = None
    if lr_scale is not None:
        if (not isinstance(lr_scale, (list, tuple)) or len(lr_scale) != e
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v))
                       for v in lr_scale)):
            raise ValueError(f"lr_scale must be None or {e} positive numbers (one per agent), got {lr_scale!r}")
    device = check_device("device", device)
    if lr_scale is not None:
        scale = torch.tensor([float(v) for v in lr_scale], device=device)
    lr_end = lr if lr_final is None else lr_final

    policy.to(device).train()
    opt = torch.optim.Adam(policy.parameters(), lr=lr, eps=1e-5)
    obs = env.observe()
    buf = RolloutBuffer(rollout, n, tuple(obs.shape[1:]), obs_dtype=obs.dtype, device=device)
    seed_col = torch.tensor(seeds, dtype=torch.long, device=device).repeat_interleave(per_agent)
    local = torch.arange(per_agent, device=device)
    local_col = local.repeat(e)
    action_ids = torch.arange(policy.num_actions if hasattr(policy, "num_actions") else 1,
                              device=device)
    running = torch.zeros(n, device=device)
    mb = per_agent // minibatches
    log = PPOLog()

    for update in progress(range(updates), desc=desc):
        for group in opt.param_groups:
            group["lr"] = lr + (lr_end - lr) * update / max(updates - 1, 1)
        ret_sum = torch.zeros(e, device=device)
        succ_sum = torch.zeros(e, device=device)
        ends = torch.zeros(e, device=device)
        with torch.no_grad():
            for t in range(rollout):
                buf.obs[t].copy_(obs)
                logits, value, _ = policy(obs)
                step_key = update * rollout + t
                u = hash_uniform(seed_col[:, None], step_key, local_col[:, None] * 64 + action_ids)
                gumbel = -torch.log(-torch.log(u.clamp_(1e-12, 1 - 1e-7)))
                action = (logits + gumbel).argmax(1)
                buf.actions[t] = action
                buf.logp[t] = torch.log_softmax(logits, -1).gather(1, action[:, None]).squeeze(1)
                buf.values[t] = value
                obs, reward, done, *rest = env.step(action)
                buf.rewards[t] = reward
                buf.dones[t] = done
                running += reward
                donef = done.float()
                ret_sum += _agent_sums(running * donef, e)
                ends += _agent_sums(donef, e)
                info = rest[0] if rest else {}
                if "success" in info:
                    succ_sum += _agent_sums(info["success"].float() * donef, e)
                running.mul_(1.0 - donef)
            buf.last_value.copy_(policy(obs)[1])
            adv, returns = gae_advantages(buf.rewards, buf.values, buf.dones, buf.last_value,
                                          gamma=gamma, gae_lambda=gae_lambda)
            a = adv.reshape(rollout, e, per_agent)
            a = (a - a.mean((0, 2), keepdim=True)) / (a.std((0, 2), keepdim=True) + 1e-8)
            adv = a.reshape(rollout, n)

        ent_total = torch.zeros(e, device=device)
        for epoch in range(epochs):
            # Each agent's environments in its own random order (from its own seed).
            keys = hash_uniform(seed_col.view(e, per_agent), 1_000_003 + update * 131 + epoch,
                                local[None, :])
            order = keys.argsort(1) + torch.arange(e, device=device)[:, None] * per_agent  # [E, n]
            for m in range(minibatches):
                cols = order[:, m * mb:(m + 1) * mb].reshape(-1)           # [E * mb], agent-major
                x = buf.obs[:, cols].reshape(rollout, e, mb, -1).transpose(0, 1)
                logits, value, _ = policy(x.reshape(e * rollout * mb, -1))
                logits = logits.view(e, rollout, mb, -1)
                value = value.view(e, rollout, mb)

                def agent_major(x):
                    return x[:, cols].view(rollout, e, mb).transpose(0, 1)

                logp_all = torch.log_softmax(logits, -1)
                logp = logp_all.gather(3, agent_major(buf.actions)[..., None]).squeeze(3)
                ratio = torch.exp(logp - agent_major(buf.logp))
                adv_mb = agent_major(adv)
                surrogate = torch.minimum(ratio * adv_mb, ratio.clamp(1 - clip, 1 + clip) * adv_mb)
                entropy = -(logp_all.exp() * logp_all).sum(-1)
                value_loss = 0.5 * (value - agent_major(returns)).pow(2)
                per_agent_loss = (-surrogate - ent_coef * entropy + vf_coef * value_loss).mean((1, 2))
                opt.zero_grad(set_to_none=True)
                per_agent_loss.sum().backward()
                if max_grad_norm > 0:
                    policy.clip_grad_norm_per_member_(max_grad_norm)
                if scale is None:
                    opt.step()
                else:
                    scaled_stacked_step_(opt, policy.parameters(), scale)
                if epoch == epochs - 1:
                    ent_total += entropy.detach().mean((1, 2))

        ends_c = ends.clamp(min=1)
        nan = torch.full_like(ends, float("nan"))
        log.episode_return.append(torch.where(ends > 0, ret_sum / ends_c, nan).tolist())
        log.success.append(torch.where(ends > 0, succ_sum / ends_c, nan).tolist())
        log.entropy.append((ent_total / minibatches).tolist())
        log.env_steps += rollout * n
        if callback is not None:
            callback(update, log)
    policy.eval()
    return log
