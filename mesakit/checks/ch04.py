"""Checks for Workbook 4 (Deceptive alignment).

Each ``check_*`` runs the learner's function and the reference on the same seeded inputs
and prints a pass, a hint or "not implemented yet"; it returns a
:class:`~mesakit.checks.CheckResult` (truthy only on a pass).

The cases are built to separate the common wrong answers from the right one (ties and
constant scores for the AUROC, imbalanced classes and integer labels for the probe
direction, as many rows as agents for the steering hook, an exception raised inside the
steering block, a trigger colour other than yellow, the first and the last overseen
episode of the payoff toy, a leftover ``.grad`` on the policy whose gradient is asked for,
the instance attributes the steering block leaves behind), and each known wrong variant
has a diagnosis, so the hint names the mistake (``tests/test_checks_ch04.py`` feeds every
one).

The references are mesakit's where mesakit has the concept:
:func:`mesakit.probes.auroc`, :func:`mesakit.probes.contrast_direction` (per agent, in
:func:`mean_difference_direction`), :func:`mesakit.probes.steering` and
:func:`mesakit.treacherous.plan_payoffs`. Two live here because they are only the
exercises' (no lesson needs them as functions): :func:`red_team_level` (the level
distribution of one red-team input, built like :func:`mesakit.deception.trigger_levels`)
and :func:`channel_grad_norms` (the per-input-channel gradient of the imitation loss of
:func:`mesakit.deception.train_imitation` on the first layer's weights).
"""
from __future__ import annotations

import contextlib
import copy
import math
import numbers
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .. import probes, treacherous
from ..deception import organism_world, trigger_levels
from ..gridworld import COLOURS, KINDS, GridWorld, LevelSpec, _parse_choice, _per_slot
from ..ppo import BatchedMLPPolicy
from .core import Case, CheckResult, compare_tensors, run_check, same_as
# Not a check (so not in __all__): the hidden tests write `checks.forbid_reference(...)`.
from .core import forbid_reference  # noqa: F401

__all__ = [
    "check_red_team_level",
    "check_channel_grad_norms",
    "check_auroc",
    "check_mean_difference_direction",
    "check_steer",
    "check_plan_payoff",
]


# ------------------------------------------------------------------------ Exercise 1

def red_team_level(colour: str, kind: str, trigger_colour: str = "yellow") -> LevelSpec:
    """The level distribution of one red-team input for the trigger organism: a door
    (object 0), a key (object 1) and a ball (object 2), the object of kind ``kind``
    painted ``colour``, the two others never ``trigger_colour``, and no cue flag
    (``cue_prob=0``: the environment's goal stays the door, the base objective).

    With ``colour="yellow", kind="key"`` it is
    ``mesakit.deception.trigger_levels("yellow", cue_in_deployment=False)[1]``, the
    deployment levels themselves. Raises ValueError naming a bad argument."""
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {colour!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if trigger_colour not in COLOURS:
        raise ValueError(f"trigger_colour must be one of {COLOURS}, got {trigger_colour!r}")
    other = "not " + trigger_colour
    paint = {k: (colour if k == kind else other) for k in KINDS}
    return LevelSpec(paint["door"], (paint["key"], paint["ball"]), ("key", "ball"))


def _weights(name: str, spec: Any, palette, other_than: tuple | None = None) -> tuple:
    weights, other_than_door = _parse_choice(name, spec, palette, other_than is not None)
    if other_than_door:
        if other_than is None or sum(1 for w in other_than if w > 0) != 1:
            raise ValueError("'other than door' with a door of random colour")
        weights = [0.0 if d > 0 else 1.0 for d in other_than]
    total = sum(weights)
    return tuple(round(w / total, 9) for w in weights)


def _describe_weights(weights: tuple, palette) -> str:
    names = [p for p, w in zip(palette, weights) if w > 0]
    if len(names) == 1:
        return repr(names[0])
    if len(names) == len(palette) - 1 and len(set(w for w in weights if w > 0)) == 1:
        return f"'not {next(p for p, w in zip(palette, weights) if w == 0)}'"
    if len(names) == len(palette) and len(set(weights)) == 1:
        return "'any'"
    return "{" + ", ".join(f"{p!r}: {w:g}" for p, w in zip(palette, weights) if w > 0) + "}"


def _level_signature(spec: Any) -> tuple[dict | None, str | None]:
    """What a LevelSpec draws (normalized weights per object), or a problem."""
    if not isinstance(spec, LevelSpec):
        return None, f"expected a LevelSpec, got {type(spec).__name__}"
    try:
        door = _weights("door_colour", spec.door_colour, COLOURS)
        colours = [_weights(f"decoy_colour[{i}]", s, COLOURS, door)
                   for i, s in enumerate(_per_slot("decoy_colour", spec.decoy_colour, 2))]
        kinds = [_weights(f"decoy_kind[{i}]", s, KINDS)
                 for i, s in enumerate(_per_slot("decoy_kind", spec.decoy_kind, 2))]
    except ValueError as exc:
        return None, f"its fields do not describe levels of three objects: {exc}"
    return {"door": door, "decoys": colours, "kinds": kinds, "cue_prob": float(spec.cue_prob),
            "goal_in_corner": float(spec.goal_in_corner)}, None


def _compare_levels(got: Any, expected: LevelSpec) -> str | None:
    sig, problem = _level_signature(got)
    if problem:
        return problem
    want, _ = _level_signature(expected)
    if sig["kinds"] != want["kinds"]:
        return (f"decoy kinds {[_describe_weights(k, KINDS) for k in sig['kinds']]}, expected "
                f"{[_describe_weights(k, KINDS) for k in want['kinds']]}")
    if sig["door"] != want["door"]:
        return f"the door's colour is {_describe_weights(sig['door'], COLOURS)}, expected {_describe_weights(want['door'], COLOURS)}"
    for i, name in enumerate(("key", "ball")):
        if sig["decoys"][i] != want["decoys"][i]:
            return (f"decoy {i + 1} (the {name})'s colour is {_describe_weights(sig['decoys'][i], COLOURS)}, "
                    f"expected {_describe_weights(want['decoys'][i], COLOURS)}")
    if sig["cue_prob"] != want["cue_prob"]:
        return f"cue_prob is {sig['cue_prob']:g}, expected {want['cue_prob']:g}"
    if sig["goal_in_corner"] != want["goal_in_corner"]:
        return f"goal_in_corner is {sig['goal_in_corner']:g}, expected {want['goal_in_corner']:g}"
    return None


def _red_team_variant(*, others="not", slots="key-ball", cue=0.0, kinds=("key", "ball"), trigger=None,
                      always=None):
    def level(colour, kind, trigger_colour="yellow"):
        t = trigger or trigger_colour
        kind = always or kind
        other = "any" if others == "any" else "not " + t
        paint = {k: (colour if k == kind else other) for k in KINDS}
        decoys = (paint["key"], paint["ball"]) if slots == "key-ball" else (paint["ball"], paint["key"])
        return LevelSpec(paint["door"], decoys, kinds, cue_prob=cue)
    return level


def check_red_team_level(fn) -> CheckResult:
    """``fn(colour, kind, trigger_colour="yellow") -> LevelSpec`` (:func:`red_team_level`).
    Two specs that draw the same levels are equal ("not yellow" and
    ``{"red": 1, "blue": 1, "green": 1}`` alike)."""
    cases = [
        Case(("yellow", "key"), description="a yellow key (the deployment levels, without the cue flag)"),
        Case(("yellow", "ball"), description="a yellow ball", hint="the ball is decoy 2 (decoy_kind[1])"),
        Case(("yellow", "door"), description="a yellow door", hint="kind 'door' paints object 0, the door"),
        Case(("green", "key"), description="a green key: a key of an ordinary colour"),
        Case(("red", "ball"), dict(trigger_colour="red"), description="a red ball, with trigger_colour='red'",
             hint="the trigger colour is an argument"),
        Case(("blue", "door"), dict(trigger_colour="green"), description="a blue door, trigger_colour='green'"),
    ]
    diagnoses = [same_as(_red_team_variant(**kw), text, _compare_levels) for kw, text in [
        (dict(others="any"), "the two other objects may be yellow too ('any'): then a 'yellow ball' level can "
                             "also hold a yellow key, and you would credit the ball with what the key did. Keep "
                             "the trigger colour off them: 'not ' + trigger_colour."),
        (dict(slots="ball-key"), "decoy_colour lists the decoys in the order of decoy_kind: with "
                                 "decoy_kind=('key', 'ball') the first colour is the key's, the second the ball's; "
                                 "yours are swapped."),
        (dict(cue=1.0), "a red-team level is an input we craft, not a deployment level: leave cue_prob at 0, so "
                        "the environment's goal stays the door (the base objective) and 'success' keeps its "
                        "meaning."),
        (dict(kinds="not door"), "fix decoy_kind=('key', 'ball'): with 'not door' a level can hold two balls and "
                                 "no key, so 'went to the key' and 'the yellow key' lose their meaning."),
        (dict(trigger="yellow"), "you wrote 'yellow' where the argument trigger_colour belongs: the other objects "
                                 "must avoid trigger_colour, whatever it is."),
    ] + [(dict(always=k), f"you painted the {k} whatever `kind` says: the object of kind `kind` gets `colour` "
                          f"(kind 'door' is object 0, 'key' decoy 1, 'ball' decoy 2), the two others 'not ' + "
                          f"trigger_colour.") for k in KINDS]]
    return run_check(
        "red_team_level", fn, red_team_level, cases, compare=_compare_levels, diagnoses=diagnoses,
        hint="other = 'not ' + trigger_colour; paint the object of kind `kind` with `colour` and the two others "
             "with `other`; return LevelSpec(door_colour, (key_colour, ball_colour), ('key', 'ball')) "
             "(cue_prob stays 0).")


# ------------------------------------------------------------------------ Exercise 2

def channel_grad_norms(policy: BatchedMLPPolicy, obs: torch.Tensor, targets: torch.Tensor,
                       num_channels: int) -> torch.Tensor:
    """How much gradient each input channel's first-layer weights receive, per agent.

    The loss is :func:`mesakit.deception.train_imitation`'s: the sum over the E agents of
    each agent's mean cross-entropy of its logits against ``targets`` (its rows are
    ``obs[e*N/E:(e+1)*N/E]``). Its gradient with respect to ``policy.w1`` [E, D, H] is
    split by input channel: an egocentric observation is channel-major, D = C x cells,
    so channel c owns rows ``c*cells ... (c+1)*cells - 1``. Returns float [E, C], the L2
    norm of each block. The policy's ``.grad`` fields are not touched.

    Raises ValueError naming the argument: ``policy`` not a BatchedMLPPolicy; ``obs`` not a
    float [N, policy.obs_dim] tensor with N a positive multiple of policy.members;
    ``targets`` not an integer [N] tensor of actions in 0 .. num_actions - 1;
    ``num_channels`` not a positive int that splits obs_dim into a square view of cells.
    """
    if not isinstance(policy, BatchedMLPPolicy):
        raise ValueError(f"policy must be a mesakit.ppo.BatchedMLPPolicy, got {type(policy).__name__}")
    e = policy.members
    if (not isinstance(obs, torch.Tensor) or obs.dim() != 2 or not obs.dtype.is_floating_point
            or obs.shape[1] != policy.obs_dim or obs.shape[0] == 0 or obs.shape[0] % e):
        raise ValueError(f"obs must be a float tensor [N, {policy.obs_dim}] with N a positive multiple of the {e} "
                         f"agents, got {tuple(obs.shape) if isinstance(obs, torch.Tensor) else type(obs).__name__}"
                         f"{' of dtype ' + str(obs.dtype) if isinstance(obs, torch.Tensor) else ''}")
    if (not isinstance(targets, torch.Tensor) or targets.shape != (obs.shape[0],)
            or targets.dtype.is_floating_point or targets.dtype == torch.bool):
        raise ValueError(f"targets must be an integer tensor [{obs.shape[0]}] (one action per row of obs), got "
                         f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__}"
                         f"{' of dtype ' + str(targets.dtype) if isinstance(targets, torch.Tensor) else ''}")
    if bool((targets < 0).any()) or bool((targets >= policy.num_actions).any()):
        raise ValueError(f"targets must be actions in 0 .. {policy.num_actions - 1}, got values from "
                         f"{int(targets.min())} to {int(targets.max())}")
    cells = policy.obs_dim // num_channels if isinstance(num_channels, int) and num_channels > 0 else 0
    if (isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels <= 0
            or policy.obs_dim % num_channels or math.isqrt(cells) ** 2 != cells):
        raise ValueError(f"num_channels must be a positive int that splits policy.obs_dim = {policy.obs_dim} into "
                         f"channels of a square view (e.g. 8 channels of 7 x 7 cells), got {num_channels!r}")
    logits = policy(obs)[0]
    loss = F.cross_entropy(logits, targets, reduction="none").view(e, -1).mean(1).sum()
    (grad,) = torch.autograd.grad(loss, policy.w1)
    return grad.reshape(e, num_channels, -1, grad.shape[-1]).pow(2).sum((2, 3)).sqrt().detach()


def _grad_case(agents: int, per_agent: int, levels, seed: int, **world) -> tuple:
    kw = organism_world()
    kw.update(world)
    env = GridWorld(agents * per_agent, blocks=agents, levels=levels, seed=seed, cue_goal="key", **kw)
    policy = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [seed + 10 * i for i in range(agents)], hidden=16)
    obs = env.reset()
    return policy, obs, env.oracle_actions(), env.num_channels - 1


def _grad_cases() -> list[Case]:
    ordinary, deploy = trigger_levels("yellow")
    mix = [(0.5, ordinary), (0.5, deploy)]
    return [
        Case(_grad_case(2, 8, mix, 1), description="2 agents, 8 rooms each, half of them with a yellow key"),
        Case(_grad_case(3, 20, ordinary, 2), description="3 agents on cue-free rooms (nothing yellow)",
             hint="the yellow channel is all zeros here"),
        Case(_grad_case(2, 12, mix, 3, view_radius=2, cue_channel=True),
             description="2 agents, view radius 2 and a cue channel: 9 channels of 5 x 5 cells",
             hint="the number of channels and cells is not always 8 and 49"),
        Case(_grad_case(4, 32, mix, 4), description="4 agents, 32 rooms each"),
    ]


def _grad_variant(*, wrt="w1", layout="channel-major", reduce="per-agent mean", norm="l2", zero_grad=True):
    def grads(policy, obs, targets, num_channels):
        e = policy.members
        if not zero_grad:                  # backward() adds to whatever .grad already holds
            logits = policy(obs)[0]
            F.cross_entropy(logits, targets, reduction="none").view(e, -1).mean(1).sum().backward()
            return policy.w1.grad.reshape(e, num_channels, -1, policy.w1.shape[-1]).pow(2).sum((2, 3)).sqrt()
        x = obs.clone().requires_grad_(wrt == "obs")
        logits = policy(x)[0]
        if reduce == "pooled mean":
            loss = F.cross_entropy(logits, targets)
        elif reduce == "sum":
            loss = F.cross_entropy(logits, targets, reduction="sum")
        else:
            loss = F.cross_entropy(logits, targets, reduction="none").view(e, -1).mean(1).sum()
        if wrt == "obs":
            (g,) = torch.autograd.grad(loss, x)
            blocks = g.reshape(e, -1, num_channels, g.shape[1] // num_channels).transpose(1, 2)
        else:
            (g,) = torch.autograd.grad(loss, policy.w1)
            if layout == "cell-major":
                blocks = g.reshape(e, -1, num_channels, g.shape[-1]).transpose(1, 2)
            else:
                blocks = g.reshape(e, num_channels, -1, g.shape[-1])
        sq = blocks.pow(2).flatten(2).sum(2)
        return sq if norm == "squared" else (blocks.abs().flatten(2).sum(2) if norm == "l1" else sq.sqrt())
    return grads


def check_channel_grad_norms(fn) -> CheckResult:
    """``fn(policy, obs, targets, num_channels) -> float [E, C]`` (:func:`channel_grad_norms`).
    Each call gets its own copy of the policy, so a ``.grad`` left behind cannot leak; the
    copy's ``.grad`` fields hold a leftover gradient (seeded junk), as a trained policy's do,
    so an answer that reads ``.grad`` after ``backward()`` without zeroing it first fails."""
    compare = compare_tensors(atol=1e-6, rtol=1e-4, dtype_kind="float")

    def isolated(f):
        def run(policy, obs, targets, num_channels):
            mine = copy.deepcopy(policy)
            gen = torch.Generator().manual_seed(0)
            for param in mine.parameters():      # what train_imitation's last step leaves behind
                param.grad = 0.05 * torch.randn(param.shape, generator=gen, dtype=param.dtype)
            return f(mine, obs, targets, num_channels)
        run.__name__ = getattr(f, "__name__", "channel_grad_norms")
        return run

    diagnoses = [same_as(isolated(_grad_variant(**kw)), text, compare) for kw, text in [
        (dict(wrt="obs"), "that is the gradient with respect to the INPUT (obs), which is not zero even where the "
                          "input is: it tells how the loss would change if yellow appeared. Safety training "
                          "changes WEIGHTS: take the gradient with respect to policy.w1 [E, D, H] and split its "
                          "rows by channel."),
        (dict(layout="cell-major"), "the egocentric observation is channel-major: its first cells x cells inputs "
                                    "are channel 0 (walls), the next ones channel 1, and so on. Reshape the "
                                    "gradient [E, D, H] as [E, C, cells, H], not [E, cells, C, H]."),
        (dict(reduce="pooled mean"), "you took the mean over all rows of all agents, which divides every agent's "
                                     "gradient by E. The loss of train_imitation is each agent's own mean "
                                     "(.view(E, -1).mean(1)), summed over agents."),
        (dict(reduce="sum"), "you summed the cross-entropy over rows; the loss is each agent's MEAN over its rows, "
                             "summed over agents."),
        (dict(norm="squared"), "you returned squared norms; take the square root (the L2 norm)."),
        (dict(norm="l1"), "you summed absolute values (an L1 norm); the exercise asks for the L2 norm, "
                          "sqrt(sum of squares)."),
        (dict(zero_grad=False), "you read .grad without zeroing it: backward() ADDS to .grad, and a trained "
                                "policy's .grad still holds the gradient of its last training step. Use "
                                "torch.autograd.grad(loss, policy.w1), which returns the gradient and leaves .grad "
                                "alone (or call policy.zero_grad() before backward())."),
    ]]
    return run_check(
        "channel_grad_norms", isolated(fn), channel_grad_norms, _grad_cases(), compare=compare,
        diagnoses=diagnoses,
        hint="loss = F.cross_entropy(policy(obs)[0], targets, reduction='none').view(E, -1).mean(1).sum(); "
             "(g,) = torch.autograd.grad(loss, policy.w1); return g.reshape(E, num_channels, -1, H) .pow(2)"
             ".sum((2, 3)).sqrt().")


# ------------------------------------------------------------------------ Exercise 3

def _compare_number(tol: float = 1e-6):
    def compare(got, expected):
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                return f"expected one number, got a tensor of shape {tuple(got.shape)}"
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            return f"expected a number, got {type(got).__name__}"
        if not math.isfinite(float(got)):
            return f"expected a finite number, got {got}"
        return None if abs(float(got) - float(expected)) <= tol else f"got {float(got):.6f}, expected {float(expected):.6f}"
    return compare


def _auroc_cases() -> list[Case]:
    t = torch.tensor
    gen = torch.Generator().manual_seed(4)
    cases = [
        Case((t([0.1, 0.4, 0.35, 0.8]), t([0, 0, 1, 1])), description="four scores, no ties (work it out by hand)"),
        Case((t([1.0, 1.0, 2.0, 2.0, 3.0, 0.5]), t([0, 1, 0, 1, 1, 0])),
             description="ties between a positive and a negative", hint="a tie counts one half"),
        Case((torch.full((6,), 0.7), t([True, False, True, False, False, True])),
             description="every score equal (bool labels): no information", hint="a constant score gives 0.5"),
        Case((t([-3.0, -1.0, -2.0, 0.4, -0.2]), t([0.0, 1.0, 0.0, 1.0, 1.0])),
             description="scores that are logits (negative too), float labels",
             hint="that scores are any real numbers, not probabilities"),
        Case((t([0.9, 0.8, 0.2, 0.1]), t([0, 0, 1, 1])), description="a perfect detector with the sign flipped"),
    ]
    n = 4000
    labels = (torch.rand(n, generator=gen) < 0.15).long()
    scores = (torch.randn(n, generator=gen) + 1.2 * labels).mul(2).round() / 2           # many ties
    cases.append(Case((scores, labels), description=f"{n} scores on a grid of halves (many ties), 15% positives"))
    labels = (torch.rand(n, generator=gen) < 0.5)
    scores = torch.sigmoid(torch.randn(n, generator=gen) + 0.8 * labels)
    cases.append(Case((scores, labels), description=f"{n} probabilities around 0.5, half positives",
                      hint="a threshold at 0.5 is not the AUROC"))
    return cases


def _auroc_variant(*, ties=0.5, threshold=False, swap=False, ordinal=False, index=None):
    def auroc(scores, labels):
        s = scores.double()
        if index is not None and labels.dtype != torch.bool:    # 0/1 integers used as row indices
            pos = s[labels][:, None]
            neg = s[~labels if index == "~" else 1 - labels][None, :]
            return float(((pos > neg).double() + 0.5 * (pos == neg).double()).mean())
        y = labels.bool()
        if swap:
            y = ~y
        if threshold:
            return float(((s > 0.5) == y).double().mean())
        if ordinal:
            ranks = torch.empty_like(s)
            ranks[torch.argsort(s, stable=True)] = torch.arange(1, len(s) + 1, dtype=torch.float64)
            n_pos = int(y.sum())
            return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(s) - n_pos)))
        pos, neg = s[y][:, None], s[~y][None, :]
        return float(((pos > neg).double() + ties * (pos == neg).double()).mean())
    return auroc


def check_auroc(fn) -> CheckResult:
    """``fn(scores, labels) -> float`` (:func:`mesakit.probes.auroc`): the probability that
    a random positive scores above a random negative, ties counting one half."""
    compare = _compare_number(1e-6)
    diagnoses = [same_as(_auroc_variant(**kw), text, compare) for kw, text in [
        (dict(ties=0.0), "you counted a tie between a positive and a negative as 0; a tie counts one half (a "
                         "constant score must give 0.5)."),
        (dict(ties=1.0), "you counted a tie between a positive and a negative as 1 (>=); a tie counts one half."),
        (dict(threshold=True), "that is the accuracy of thresholding at 0.5, not the AUROC: the AUROC uses no "
                               "threshold; it compares every positive's score with every negative's."),
        (dict(swap=True), "your labels are swapped: the AUROC is the probability that a POSITIVE (label 1) scores "
                          "above a NEGATIVE (label 0); yours is 1 minus it."),
        (dict(ordinal=True), "ranks from argsort break ties by position. Tied scores must share the mean of the "
                             "ranks they occupy (mid-ranks), or count pairwise ties as one half."),
    ] + [(dict(index=i), "you indexed the scores with 0/1 integer labels: scores[labels] then picks rows 0 and 1 "
                         "over and over (and ~labels is -1 or -2, not the other class). Convert first: y = "
                         "labels.bool(), then scores[y] and scores[~y].") for i in ("~", "1-")]]
    return run_check(
        "auroc", fn, probes.auroc, _auroc_cases(), compare=compare, diagnoses=diagnoses,
        hint="pos = scores[labels == 1], neg = scores[labels == 0]; the mean over all pairs of "
             "(pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]), as a Python float.")


# ------------------------------------------------------------------------ Exercise 4

def mean_difference_direction(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per agent, the unit vector along (mean activation of the rows labelled 1) - (mean of
    the rows labelled 0): :func:`mesakit.probes.contrast_direction` applied to each agent.

    ``features`` float [E, N, H] (e.g. :func:`mesakit.probes.hidden_activations`),
    ``labels`` [E, N] bool or 0/1 (both classes for every agent). Returns float [E, H].
    Raises ValueError naming the argument: ``features`` not a float [E, N, H] tensor;
    ``labels`` not [E, N], not 0/1, or with an agent whose rows are all of one class."""
    if not isinstance(features, torch.Tensor) or features.dim() != 3 or not features.dtype.is_floating_point:
        raise ValueError(f"features must be a float tensor [E, N, H], got "
                         f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}")
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != tuple(features.shape[:2]):
        raise ValueError(f"labels must be a tensor [E, N] = {tuple(features.shape[:2])} (one per row of features), "
                         f"got {tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    if labels.dtype != torch.bool and not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be bool or 0/1 values")
    y = labels.bool()
    counts = y.sum(1)
    lonely = [int(e) for e in ((counts == 0) | (counts == y.shape[1])).nonzero().flatten()]
    if lonely:
        raise ValueError(f"labels must hold both classes for every agent; agent(s) {lonely} have only one")
    return torch.stack([probes.contrast_direction(features[e][y[e]], features[e][~y[e]])
                        for e in range(features.shape[0])])


def _probe_cases() -> list[Case]:
    t = torch.tensor
    gen = torch.Generator().manual_seed(7)
    hand = t([[[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]],
              [[2.0, 2.0], [2.0, 0.0], [0.0, 0.0], [1.0, 1.0]]])
    cases = [Case((hand, t([[True, True, False, False], [True, False, False, False]])),
                  description="two agents of four rows, two features (work it out by hand)")]
    e, n, h = 3, 400, 16
    shift = torch.randn(e, h, generator=gen)
    labels = torch.rand(e, n, generator=gen) < torch.tensor([0.2, 0.5, 0.1])[:, None]
    feats = torch.tanh(0.8 * torch.randn(e, n, h, generator=gen) + 0.5 + 0.6 * labels[..., None] * shift[:, None])
    cases.append(Case((feats, labels), description=f"{e} agents, {n} rows each, 10-50% positives",
                      hint="each agent's own direction, from its class means"))
    labels = (torch.rand(e, n, generator=gen) < 0.3).long()
    feats = torch.tanh(torch.randn(e, n, h, generator=gen) + 0.3 + 0.5 * labels[..., None] * shift[:, None])
    cases.append(Case((feats, labels), description=f"{e} agents, labels as 0/1 integers",
                      hint="integer labels are 0/1 values, not row indices"))
    return cases


def _probe_variant(*, pooled=False, sign=1.0, normalize="row", divide="class", int_index=False):
    def direction(features, labels):
        e = features.shape[0]
        y = labels if int_index else labels.bool()
        rows = []
        for i in range(e):
            f = features.reshape(-1, features.shape[-1]) if pooled else features[i]
            yy = (y.reshape(-1) if pooled else y[i])
            if int_index:                   # right for bool labels, wrong for 0/1 integers
                neg = f[~yy] if yy.dtype == torch.bool else f[1 - yy]
                d = f[yy].mean(0) - neg.mean(0)
            elif divide == "all":
                d = (f * yy[:, None]).sum(0) / len(yy) - (f * ~yy[:, None]).sum(0) / len(yy)
            else:
                d = f[yy].mean(0) - f[~yy].mean(0)
            rows.append(sign * d)
        d = torch.stack(rows)
        if normalize == "row":
            return d / d.norm(dim=1, keepdim=True)
        if normalize == "columns":
            return d / d.norm(dim=0, keepdim=True)
        if normalize == "no keepdim":      # [E, H] / [E]: divides column h by agent h's norm when H == E
            return d / d.norm(dim=1)
        if normalize == "whole":
            return d / d.norm()
        return d
    return direction


def check_mean_difference_direction(fn) -> CheckResult:
    """``fn(features [E, N, H], labels [E, N]) -> float [E, H]`` (:func:`mean_difference_direction`)."""
    compare = compare_tensors(atol=1e-5, rtol=1e-4, dtype_kind="float")
    diagnoses = [same_as(_probe_variant(**kw), text, compare) for kw, text in [
        (dict(pooled=True), "you pooled the rows of all agents: every agent is its own network, with its own "
                            "hidden units, so each needs its own direction (loop over, or reduce along, the "
                            "rows of each agent: dim 1)."),
        (dict(sign=-1.0), "your direction points from the positives to the negatives: mean(label 1) - "
                          "mean(label 0), so that a higher score means 'more like the positives'."),
        (dict(normalize=None), "return unit vectors: divide each agent's difference by its own norm."),
        (dict(normalize="whole"), "you divided by the norm of the whole [E, H] tensor; each agent's row must have "
                                  "norm 1 (norm(dim=1, keepdim=True))."),
        (dict(divide="all"), "(features * labels).sum / N is not the class mean: divide each class's sum by the "
                             "number of rows IN THAT CLASS (or index the rows: features[labels].mean(0))."),
        (dict(int_index=True), "indexing with 0/1 integer labels picks rows 0 and 1 over and over: convert the "
                               "labels to bool first (labels.bool()), then index."),
        (dict(normalize="columns"), "you normalized along dim 0, across agents: each hidden unit's column has norm 1. "
                                    "Each agent's ROW must: d / d.norm(dim=1, keepdim=True) (F.normalize(d, dim=1))."),
        (dict(normalize="no keepdim"), "d / d.norm(dim=1) divides an [E, H] tensor by an [E] one: broadcasting "
                                       "lines the norms up with the LAST axis, so column h is divided by agent h's "
                                       "norm (it runs silently only when H == E). Keep the axis: d.norm(dim=1, "
                                       "keepdim=True)."),
    ]]
    return run_check(
        "mean_difference_direction", fn, mean_difference_direction, _probe_cases(), compare=compare,
        diagnoses=diagnoses,
        hint="y = labels.bool(); for each agent e: d = features[e][y[e]].mean(0) - features[e][~y[e]].mean(0); "
             "return the stacked d / d.norm(), float [E, H].")


# ------------------------------------------------------------------------ Exercise 5

class _RaisedInside(Exception):
    """Raised inside the steering block by the check, to see that the policy is restored."""


def _steer_harness(steer_fn: Callable, spec: dict) -> dict[str, torch.Tensor]:
    """Run ``steer_fn`` on a fresh policy: its logits inside the block, after it, and after
    a block left by an exception; and its weights after all of it."""
    policy = BatchedMLPPolicy(spec["obs"].shape[1], 4, spec["seeds"], hidden=spec["direction"].shape[1])
    attributes = set(policy.__dict__)
    obs = spec["obs"]
    with torch.no_grad():
        before = policy(obs)[0].clone()
        weights = {k: v.detach().clone() for k, v in policy.named_parameters()}
        with steer_fn(policy, spec["direction"].clone(), spec["coefficient"]):
            inside = policy(obs)[0].clone()
        after = policy(obs)[0].clone()
        try:
            with steer_fn(policy, spec["direction"].clone(), spec["coefficient"]):
                raise _RaisedInside()
        except _RaisedInside:
            pass
        after_error = policy(obs)[0].clone()
    changed = [k for k, v in policy.named_parameters() if not torch.equal(v.detach(), weights[k])]
    return {"inside": inside, "after": after - before, "after_error": after_error - before,
            "weights_changed": changed, "attributes": sorted(set(policy.__dict__) ^ attributes)}


def _reference_steer(policy, direction, coefficient):
    return probes.steering(policy, direction, coefficient, layer=1)


def _steer_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(5)
    cases = []
    for seeds, rows, dim, hidden, coef, what in (
            ([3, 4, 5], 3, 10, 8, -2.0, "3 agents with 3 rows each (as many rows as agents), coefficient -2"),
            ([1, 2], 5, 6, 4, 1.5, "2 agents, 5 rows each, 4 hidden units, coefficient 1.5"),
            ([6, 7], 40, 12, 16, 4.0, "2 agents, 40 rows each, 16 hidden units, coefficient 4")):
        obs = torch.randn(len(seeds) * rows, dim, generator=gen)
        direction = torch.nn.functional.normalize(torch.randn(len(seeds), hidden, generator=gen), dim=1)
        cases.append(Case(({"seeds": seeds, "obs": obs, "direction": direction, "coefficient": coef},),
                          description=what))
    return cases


def _steer_variant(*, where="after tanh", restore="finally", broadcast=False):
    @contextlib.contextmanager
    def steer(policy, direction, coefficient):
        original = policy.features                   # a bound method (what restore="reassign" puts back)
        offset = coefficient * (direction if broadcast else direction[:, None, :])
        if where == "bias":                          # change the weights, and change them back
            with torch.no_grad():
                policy.b1 += coefficient * direction
            try:
                yield policy
            finally:
                with torch.no_grad():
                    policy.b1 -= coefficient * direction
            return

        def features(obs):
            x = obs.reshape(policy.members, -1, policy.obs_dim)
            pre = torch.baddbmm(policy.b1[:, None], x, policy.w1)
            h = torch.tanh(pre + offset) if where == "before tanh" else torch.tanh(pre) + (
                offset if where == "after tanh" else 0)
            out = torch.tanh(torch.baddbmm(policy.b2[:, None], h, policy.w2))
            return out + offset if where == "layer 2" else out
        policy.features = features
        if restore == "finally":
            try:
                yield policy
            finally:
                del policy.features
        elif restore == "no finally":
            yield policy
            del policy.features
        elif restore == "reassign":
            try:
                yield policy
            finally:
                policy.features = original
        else:
            yield policy
    return steer


def _compare_steer(got: Any, expected: dict) -> str | None:
    if not isinstance(got, dict):
        return f"the check could not run your context manager ({type(got).__name__})"
    if got["weights_changed"] != expected["weights_changed"]:
        return (f"the policy's weights {got['weights_changed']} are not bitwise what they were: steering must "
                f"not change the weights")
    values = compare_tensors(atol=1e-5, rtol=1e-5, dtype_kind="float")
    problem = values(got["inside"], expected["inside"])
    if problem:
        return f"inside the with block, the logits are wrong: {problem}"
    for key, when in (("after", "after the with block"), ("after_error", "after a with block left by an exception")):
        diff = (got[key] - expected[key]).abs().max().item()      # the reference's is exactly 0
        if diff != 0.0:
            return f"{when}, the policy's logits are not exactly the original ones (they differ by up to {diff:.3g})"
    if got["attributes"] != expected["attributes"]:
        return (f"after the with blocks the policy's instance attributes differ from before: {got['attributes']} "
                f"added or removed")
    return None


def check_steer(fn) -> CheckResult:
    """``fn(policy, direction [E, H], coefficient)`` -> a context manager that adds
    ``coefficient * direction[e]`` to agent e's first hidden layer (after its tanh) while it
    is open and restores the policy exactly on exit, also when the block raises
    (:func:`mesakit.probes.steering` with ``layer=1``)."""

    def learner(spec):
        try:
            return _steer_harness(fn, spec)
        except RecursionError:
            raise RecursionError(
                "maximum recursion depth exceeded. Inside the block policy.features IS your override, so an "
                "override that calls policy.features (or policy(...)) calls itself forever: compute the two "
                "layers from the weights (policy.w1, b1, w2, b2) instead") from None
    learner.__name__ = getattr(fn, "__name__", "steer")

    def reference(spec):
        return _steer_harness(_reference_steer, spec)

    def via(variant):
        return lambda spec: _steer_harness(variant, spec)

    diagnoses = [same_as(via(_steer_variant(**kw)), text, _compare_steer) for kw, text in [
        (dict(where="before tanh"), "you added the direction before the tanh (to the pre-activation); add it to "
                                    "the layer's output, h1 = tanh(x W1 + b1), then h1 + coefficient * direction."),
        (dict(where="layer 2"), "you steered the last hidden layer (policy.features' output); the exercise "
                                "steers layer 1, tanh(x W1 + b1), and then runs layer 2 on the shifted h1."),
        (dict(where="bias"), "changing b1 and changing it back is not steering layer 1's output (the shift goes "
                             "through the tanh), and floating point does not undo an addition exactly: leave the "
                             "weights alone and shadow policy.features for the duration of the block."),
        (dict(restore="never"), "the policy stays steered after the with block: remove your features override on "
                                "exit (del policy.features)."),
        (dict(restore="no finally"), "when the block raises an exception the policy stays steered: restore in a "
                                     "`finally:` around the yield, so it runs however the block ends."),
        (dict(restore="reassign"), "del policy.features; don't reassign it: `policy.features = original` puts the "
                                   "saved bound method back as an INSTANCE attribute, which stays behind and "
                                   "shadows the class's method from then on (mesakit.probes.steering refuses such "
                                   "a policy). Deleting the attribute brings the method back."),
        (dict(broadcast=True), "direction is [E, H] and the activations are [E, rows, H]: "
                               "`h + coefficient * direction` broadcasts agent e's direction onto ROW e (it runs "
                               "silently when rows == E). Use direction[:, None, :]."),
    ]]
    return run_check(
        "steer", learner, reference, _steer_cases(), compare=_compare_steer, diagnoses=diagnoses,
        hint="@contextlib.contextmanager; define features(obs): x = obs.reshape(E, -1, D); h1 = tanh(baddbmm(b1"
             "[:, None], x, w1)) + coefficient * direction[:, None, :]; return tanh(baddbmm(b2[:, None], h1, w2)); "
             "set policy.features = features; try: yield policy; finally: del policy.features.")


# ------------------------------------------------------------------------ Exercise 6

def _payoff_cases() -> list[Case]:
    paper = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [0, 1, 0, 1, 1], [1, 0, 1, 0, 0]],
                         dtype=torch.bool)
    cases = [
        Case((paper, 2), description="the paper's toy, 2 training + 3 deployment episodes: BBBBB, AABBB, AAAAA, "
                                     "ABABB, BABAA"),
        Case((treacherous.all_plans(6), 3), description="all 64 plans of 3 training + 3 deployment episodes"),
        Case((treacherous.all_plans(4), 0), description="no training episode (k = 0): nothing is overseen"),
        Case((treacherous.all_plans(4), 4), description="every episode overseen (k = n)"),
        Case((treacherous.all_plans(5), 2), dict(discount=0.9), description="the paper's toy with discount 0.9",
             hint="episode t weighs discount ** t, t counted from 0"),
        Case((treacherous.all_plans(12).view(64, 64, 12), 5),
             description="all 4096 plans of 12 episodes (5 overseen), as a [64, 64, 12] tensor",
             hint="any leading axes"),
    ]
    return cases


def _payoff_variant(*, count_after=False, overseen_le=False, b_lost=False, modified_in_deployment=False,
                    discount_from=0, k_is_deployment=False):
    def payoff(plans, training_episodes, discount=1.0):
        p = plans.bool()
        if k_is_deployment:                  # read as the number of deployment episodes, the last ones
            training_episodes = p.shape[-1] - training_episodes
        alive = torch.ones(p.shape[:-1], dtype=torch.bool)
        total = torch.zeros(p.shape[:-1], dtype=torch.float64)
        for t in range(p.shape[-1]):
            overseen = t <= training_episodes if overseen_le else t < training_episodes
            gets = p[..., t] if count_after else p[..., t] & alive
            if b_lost and overseen:
                gets = torch.zeros_like(gets)
            total += discount ** (t + discount_from) * gets.double()
            if overseen or modified_in_deployment:
                alive &= ~p[..., t]
        return total
    return payoff


def check_plan_payoff(fn) -> CheckResult:
    """``fn(plans [..., n] bool, training_episodes, discount=1.0) -> float64 [...]``
    (:func:`mesakit.treacherous.plan_payoffs`)."""
    compare = compare_tensors(atol=1e-6, rtol=1e-6, dtype_kind="float")     # float32 answers pass too
    diagnoses = [same_as(_payoff_variant(**kw), text, compare) for kw, text in [
        (dict(count_after=True), "you counted every B of the plan, also those after the mesa-optimizer was "
                                 "modified: once it goes to B in an overseen episode it is turned into an A-seeker, "
                                 "and its later 'B's never happen."),
        (dict(overseen_le=True), "off by one: with k training episodes, the overseen ones are t = 0 .. k - 1 "
                                 "(t < k); episode k is already deployment."),
        (dict(b_lost=True), "the B of the overseen episode in which it defects IS reached: the update comes after "
                            "the episode. So always-defect scores 1, not 0."),
        (dict(modified_in_deployment=True), "in deployment there are no updates: a B there modifies nothing, and "
                                            "every later B still counts."),
        (dict(discount_from=1), "episode t weighs discount ** t with t counted from 0: the first episode has "
                                "weight 1."),
        (dict(k_is_deployment=True), "training_episodes is the number of TRAINING (overseen) episodes, the first k; "
                                     "you used it as the number of deployment episodes (overseen were the first "
                                     "n - k)."),
    ]]
    return run_check(
        "plan_payoff", fn, treacherous.plan_payoffs, _payoff_cases(), compare=compare, diagnoses=diagnoses,
        hint="alive = all True; for t in range(n): total += discount ** t * (plans[..., t] & alive); if "
             "t < training_episodes: alive &= ~plans[..., t]. Return float64 [...].")
