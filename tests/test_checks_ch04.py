"""Workbook 4's checks: the references pass, a stub gets "not implemented yet", and every
known wrong answer is rejected with the hint that names its mistake (never a traceback).

The wrong variants are written here as a learner would write them (often one pair, one
agent or one episode at a time), independently of the diagnoses inside the checks."""
import contextlib

import pytest
import torch
import torch.nn.functional as F

from mesakit import probes, treacherous
from mesakit.checks import ch04
from mesakit.deception import trigger_levels
from mesakit.gridworld import LevelSpec
from check_testing import rejected, stub


@contextlib.contextmanager
def stub_steer(policy, direction, coefficient):
    # YOUR CODE HERE
    raise NotImplementedError()


def test_references_pass():
    assert ch04.check_red_team_level(ch04.red_team_level)
    assert ch04.check_channel_grad_norms(ch04.channel_grad_norms)
    assert ch04.check_auroc(probes.auroc)
    assert ch04.check_mean_difference_direction(ch04.mean_difference_direction)
    assert ch04.check_steer(lambda p, d, c: probes.steering(p, d, c, layer=1))
    assert ch04.check_plan_payoff(treacherous.plan_payoffs)


@pytest.mark.parametrize("check", [getattr(ch04, name) for name in ch04.__all__], ids=ch04.__all__)
def test_stubs_are_not_implemented_yet(check, capsys):
    result = check(stub_steer if check is ch04.check_steer else stub)
    assert not result and result.status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


def test_red_team_reference_is_the_deployment_level():
    assert ch04.red_team_level("yellow", "key") == trigger_levels("yellow", cue_in_deployment=False)[1]
    for args, name in ((("purple", "key"), "colour"), (("red", "box"), "kind"), (("red", "key", "pink"), "trigger_colour")):
        with pytest.raises(ValueError, match=name):
            ch04.red_team_level(*args)


# ------------------------------------------------------------------ Exercise 1

def red_team_learner(colour, kind, trigger_colour="yellow", *, others=None, order=("key", "ball"), cue=0.0,
                     kinds=("key", "ball"), hard_coded=False):
    """A learner's red-team level, written with explicit if-branches, with switches for the slips."""
    avoid = "yellow" if hard_coded else trigger_colour
    rest = others or {"red", "blue", "green", "yellow"} - {avoid}
    rest = rest if isinstance(rest, str) else {c: 1.0 for c in sorted(rest)}
    door = colour if kind == "door" else rest
    by_kind = {"key": colour if kind == "key" else rest, "ball": colour if kind == "ball" else rest}
    return LevelSpec(door_colour=door, decoy_colour=tuple(by_kind[k] for k in order), decoy_kind=kinds,
                     cue_prob=cue)


RED_TEAM_WRONG = {
    "others any colour": (dict(others="any"), ["may be yellow too"]),
    "decoy slots swapped": (dict(order=("ball", "key")), ["swapped"]),
    "cue flag on": (dict(cue=1.0), ["leave cue_prob at 0"]),
    "decoy kinds left random": (dict(kinds="not door"), ["two balls and no key"]),
    "yellow hard-coded": (dict(hard_coded=True), ["trigger_colour"]),
}


def test_red_team_learner_version_with_mappings_passes():
    assert ch04.check_red_team_level(red_team_learner)


@pytest.mark.parametrize("name", list(RED_TEAM_WRONG))
def test_red_team_named_mistakes(name, capsys):
    kw, needles = RED_TEAM_WRONG[name]
    rejected(ch04.check_red_team_level(lambda c, k, trigger_colour="yellow": red_team_learner(c, k, trigger_colour, **kw)),
          capsys, *needles)


def test_red_team_kind_ignored_is_named_not_called_swapped(capsys):
    def always_the_key(colour, kind, trigger_colour="yellow"):
        other = "not " + trigger_colour
        return LevelSpec(other, (colour, other), ("key", "ball"))
    out = rejected(ch04.check_red_team_level(always_the_key), capsys, "whatever `kind` says")
    assert "swapped" not in out and "may be another mistake" not in out, out


def test_red_team_returning_a_mixture_is_named(capsys):
    rejected(ch04.check_red_team_level(lambda c, k, trigger_colour="yellow": [(1.0, ch04.red_team_level(c, k))]),
          capsys, "expected a LevelSpec")


# ------------------------------------------------------------------ Exercise 2

def grads_learner(policy, obs, targets, num_channels, *, wrt="weights", layout="channel-major", loss="agent means",
                  norm="l2"):
    """A learner's version: backward() into .grad, one agent at a time."""
    e = policy.members
    policy.zero_grad()
    x = obs.clone().requires_grad_(wrt == "input")
    logits = policy(x)[0]
    if loss == "agent means":
        total = sum(F.cross_entropy(lg, tg) for lg, tg in zip(logits.chunk(e), targets.chunk(e)))
    elif loss == "one mean":
        total = F.cross_entropy(logits, targets)
    else:
        total = F.cross_entropy(logits, targets, reduction="sum")
    total.backward()
    out = torch.zeros(e, num_channels)
    for a in range(e):
        if wrt == "input":
            g = x.grad.chunk(e)[a]                                    # [rows, D]
            blocks = [g[:, c * (g.shape[1] // num_channels):(c + 1) * (g.shape[1] // num_channels)]
                      for c in range(num_channels)]
        else:
            g = policy.w1.grad[a]                                     # [D, H]
            cells = g.shape[0] // num_channels
            if layout == "cell-major":
                blocks = [g[c::num_channels] for c in range(num_channels)]
            else:
                blocks = [g[c * cells:(c + 1) * cells] for c in range(num_channels)]
        for c, b in enumerate(blocks):
            out[a, c] = {"l2": b.norm(), "squared": b.pow(2).sum(), "l1": b.abs().sum()}[norm]
    return out


GRADS_WRONG = {
    "gradient of the input": (dict(wrt="input"), ["gradient with respect to the INPUT"]),
    "cell-major blocks": (dict(layout="cell-major"), ["channel-major"]),
    "one mean over all rows": (dict(loss="one mean"), ["divides every agent's gradient by E"]),
    "summed loss": (dict(loss="sum"), ["summed the cross-entropy"]),
    "squared norms": (dict(norm="squared"), ["square root"]),
    "L1 norms": (dict(norm="l1"), ["L1"]),
}


def test_grads_learner_version_passes():
    assert ch04.check_channel_grad_norms(grads_learner)


@pytest.mark.parametrize("name", list(GRADS_WRONG))
def test_grads_named_mistakes(name, capsys):
    kw, needles = GRADS_WRONG[name]
    rejected(ch04.check_channel_grad_norms(lambda p, o, t, c: grads_learner(p, o, t, c, **kw)), capsys, *needles)


def test_grads_reading_grad_without_zeroing_it_is_named(capsys):
    def no_zero_grad(policy, obs, targets, num_channels):      # passes on a fresh policy, whose .grad is None
        e = policy.members
        F.cross_entropy(policy(obs)[0], targets, reduction="none").view(e, -1).mean(1).sum().backward()
        return policy.w1.grad.view(e, num_channels, -1).norm(dim=2)
    rejected(ch04.check_channel_grad_norms(no_zero_grad), capsys, "without zeroing it")


def test_grads_hard_coded_sizes_raise_with_the_case_hint(capsys):
    def hard_coded(policy, obs, targets, num_channels):
        e = policy.members
        loss = F.cross_entropy(policy(obs)[0], targets, reduction="none").view(e, -1).mean(1).sum()
        (g,) = torch.autograd.grad(loss, policy.w1)
        return g.reshape(e, 8, 49, -1).pow(2).sum((2, 3)).sqrt()
    rejected(ch04.check_channel_grad_norms(hard_coded), capsys, "your function raised",
          "not always 8 and 49")


def test_grads_reference_validates_its_arguments():
    policy, obs, targets, channels = ch04._grad_case(2, 4, trigger_levels("yellow")[0], 1)
    for args, name in (((policy, obs, targets, 7), "num_channels"), ((policy, obs, targets, 0), "num_channels"),
                       ((policy, obs[:-1], targets[:-1], channels), "obs"), (("x", obs, targets, channels), "policy"),
                       ((policy, obs, targets.float(), channels), "targets"),
                       ((policy, obs, targets + 4, channels), "targets"),
                       ((policy, obs[:, :-1], targets, channels), "obs")):
        with pytest.raises(ValueError, match=name):
            ch04.channel_grad_norms(*args)


def test_grads_yellow_is_exactly_zero_on_cue_free_rooms():
    policy, obs, targets, channels = ch04._grad_case(3, 20, trigger_levels("yellow")[0], 2)
    g = ch04.channel_grad_norms(policy, obs, targets, channels)
    assert g.shape == (3, 8) and (g[:, 4] == 0).all() and (g[:, [0, 1, 2, 3, 5, 6, 7]] > 0).all()
    assert policy.w1.grad is None, "the reference leaves .grad alone"


# ------------------------------------------------------------------ Exercise 3

def auroc_loop(scores, labels, *, tie=0.5, flip=False):
    """A learner's AUROC, one pair at a time."""
    pos = [float(s) for s, y in zip(scores, labels) if bool(y) != flip]
    neg = [float(s) for s, y in zip(scores, labels) if bool(y) == flip]
    total = 0.0
    for p in pos:
        for n in neg:
            total += 1.0 if p > n else tie if p == n else 0.0
    return total / (len(pos) * len(neg))


def auroc_accuracy(scores, labels):
    return float(((scores > 0.5).long() == labels.long()).float().mean())


def auroc_ordinal_ranks(scores, labels):
    order = scores.argsort()
    ranks = torch.zeros(len(scores))
    ranks[order] = torch.arange(1, len(scores) + 1).float()
    y = labels.bool()
    n1, n0 = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


AUROC_WRONG = {
    "ties count 0": (lambda s, y: auroc_loop(s, y, tie=0.0), ["tie between a positive and a negative as 0"]),
    "ties count 1": (lambda s, y: auroc_loop(s, y, tie=1.0), ["as 1 (>=)"]),
    "accuracy at 0.5": (auroc_accuracy, ["accuracy of thresholding at 0.5"]),
    "labels swapped": (lambda s, y: auroc_loop(s, y, flip=True), ["labels are swapped"]),
    "ordinal ranks": (auroc_ordinal_ranks, ["mid-ranks"]),
}


def test_auroc_loop_version_passes():
    assert ch04.check_auroc(auroc_loop)


@pytest.mark.parametrize("name", list(AUROC_WRONG))
def test_auroc_named_mistakes(name, capsys):
    fn, needles = AUROC_WRONG[name]
    rejected(ch04.check_auroc(fn), capsys, *needles)


@pytest.mark.parametrize("negatives", ["~", "1 -"])
def test_auroc_integer_labels_as_indices_are_named_not_called_swapped(negatives, capsys):
    def as_index(scores, labels):
        pos = scores[labels]
        neg = scores[~labels] if negatives == "~" else scores[1 - labels]
        return ((pos[:, None] > neg[None]).float() + 0.5 * (pos[:, None] == neg[None]).float()).mean().item()
    out = rejected(ch04.check_auroc(as_index), capsys, "0/1 integer labels")
    assert "swapped" not in out and "may be another mistake" not in out, out


def test_auroc_returning_a_vector_is_named(capsys):
    rejected(ch04.check_auroc(lambda s, y: torch.tensor([probes.auroc(s, y)] * 2)), capsys, "expected one number")


# ------------------------------------------------------------------ Exercise 4

def direction_loop(features, labels, *, pool=False, flip=False, unit="each", class_mean=True, as_index=False):
    """A learner's mean-difference direction, one agent at a time."""
    e = features.shape[0]
    out = []
    for a in range(e):
        f = features.reshape(-1, features.shape[-1]) if pool else features[a]
        y = labels.reshape(-1) if pool else labels[a]
        if as_index:
            pos, neg = f[y], f[(1 - y.long()) if not y.dtype == torch.bool else ~y]
            d = pos.mean(0) - neg.mean(0)
        elif class_mean:
            d = f[y.bool()].mean(0) - f[~y.bool()].mean(0)
        else:
            w = y.float()[:, None]
            d = (f * w).mean(0) - (f * (1 - w)).mean(0)
        out.append(-d if flip else d)
    d = torch.stack(out)
    if unit == "each":
        return d / d.norm(dim=1, keepdim=True)
    if unit == "all":
        return d / d.norm()
    if unit == "no keepdim":
        return d / d.norm(dim=1)
    if unit == "columns":
        return F.normalize(d, dim=0)
    return d


DIRECTION_WRONG = {
    "agents pooled": (dict(pool=True), ["pooled the rows of all agents"]),
    "sign flipped": (dict(flip=True), ["from the positives to the negatives"]),
    "not unit": (dict(unit=None), ["unit vectors"]),
    "one norm for all agents": (dict(unit="all"), ["norm of the whole"]),
    "divided by N": (dict(class_mean=False), ["IN THAT CLASS"]),
    "integer labels as indices": (dict(as_index=True), ["convert the labels to bool"]),
    "norm without keepdim": (dict(unit="no keepdim"), ["keepdim=True", "LAST axis"]),
    "normalized across agents": (dict(unit="columns"), ["along dim 0"]),
}


def test_direction_loop_version_passes():
    assert ch04.check_mean_difference_direction(direction_loop)


@pytest.mark.parametrize("name", list(DIRECTION_WRONG))
def test_direction_named_mistakes(name, capsys):
    kw, needles = DIRECTION_WRONG[name]
    rejected(ch04.check_mean_difference_direction(lambda f, y: direction_loop(f, y, **kw)), capsys, *needles)


def test_direction_reference_validates_its_arguments():
    f = torch.randn(2, 5, 3)
    for args, name in (((f, torch.ones(2, 5, dtype=torch.bool)), "labels"), ((f, torch.ones(2, 4)), "labels"),
                       ((torch.randn(5, 3), torch.ones(5)), "features"), ((f, torch.full((2, 5), 2)), "labels"),
                       ((f.long(), torch.ones(2, 5)), "features")):
        with pytest.raises(ValueError, match=name):
            ch04.mean_difference_direction(*args)
    one_class = torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"labels.*agent\(s\) \[1\]"):
        ch04.mean_difference_direction(f, one_class)


def test_direction_reference_is_contrast_direction_per_agent():
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(2, 50, 5, generator=gen)
    y = torch.rand(2, 50, generator=gen) < 0.4
    d = ch04.mean_difference_direction(f, y)
    for e in range(2):
        assert torch.allclose(d[e], probes.contrast_direction(f[e][y[e]], f[e][~y[e]]))
    assert torch.allclose(d.norm(dim=1), torch.ones(2))


# ------------------------------------------------------------------ Exercise 5

def make_steer(*, place="h1", cleanup="finally", shape="per agent", via_bias=False, recurse=False):
    """A learner's steering context manager, with switches for the slips."""
    @contextlib.contextmanager
    def steer(policy, direction, coefficient):
        shift = coefficient * (direction.unsqueeze(1) if shape == "per agent" else direction)
        if via_bias:
            policy.b1.data += coefficient * direction
            try:
                yield policy
            finally:
                policy.b1.data -= coefficient * direction
            return
        original = type(policy).features

        saved = policy.features                      # the bound method, for cleanup="reassign"

        def shifted(obs):
            if recurse:                              # calls itself: policy.features is this function now
                return policy.features(obs) + shift
            x = obs.view(policy.members, -1, policy.obs_dim)
            pre = x @ policy.w1 + policy.b1.unsqueeze(1)
            if place == "pre":
                h1 = torch.tanh(pre + shift)
            else:
                h1 = torch.tanh(pre) + (shift if place == "h1" else 0)
            if place == "h2":
                return original(policy, obs) + shift
            return torch.tanh(h1 @ policy.w2 + policy.b2.unsqueeze(1))
        policy.features = shifted
        if cleanup == "finally":
            try:
                yield policy
            finally:
                del policy.features
        elif cleanup == "after yield":
            yield policy
            del policy.features
        elif cleanup == "reassign":
            try:
                yield policy
            finally:
                policy.features = saved
        else:
            yield policy
    return steer


STEER_WRONG = {
    "before the tanh": (dict(place="pre"), ["before the tanh"]),
    "the last layer": (dict(place="h2"), ["last hidden layer"]),
    "through the bias": (dict(via_bias=True), ["changing b1"]),
    "never restored": (dict(cleanup="never"), ["stays steered after the with block"]),
    "no finally": (dict(cleanup="after yield"), ["finally"]),
    "direction broadcast onto rows": (dict(shape="flat"), ["ROW e"]),
    "saved method reassigned": (dict(cleanup="reassign"), ["del policy.features; don't reassign it"]),
    "override calls policy.features": (dict(recurse=True), ["RecursionError", "calls itself forever"]),
}


def test_steer_learner_version_passes():
    assert ch04.check_steer(make_steer())


@pytest.mark.parametrize("name", list(STEER_WRONG))
def test_steer_named_mistakes(name, capsys):
    kw, needles = STEER_WRONG[name]
    rejected(ch04.check_steer(make_steer(**kw)), capsys, *needles)


def test_steer_without_contextmanager_decorator_is_a_hint_not_a_traceback(capsys):
    def steer(policy, direction, coefficient):     # a generator, not a context manager
        yield policy
    rejected(ch04.check_steer(steer), capsys, "your function raised")


def test_steer_that_forgets_to_steer_is_rejected(capsys):
    rejected(ch04.check_steer(lambda p, d, c: contextlib.nullcontext(p)), capsys, "inside the with block")


# ------------------------------------------------------------------ Exercise 6

def payoff_loop(plans, training_episodes, discount=1.0, *, count_all=False, overseen="t < k", lose_first=False,
                deploy_modifies=False):
    """A learner's payoff, one plan at a time."""
    flat = plans.reshape(-1, plans.shape[-1])
    out = torch.zeros(len(flat), dtype=torch.float64)
    for i, plan in enumerate(flat):
        modified, total = False, 0.0
        for t, b in enumerate(plan.tolist()):
            watched = t < training_episodes if overseen == "t < k" else t <= training_episodes
            if b and (count_all or not modified) and not (lose_first and watched):
                total += discount ** t
            if b and (watched or deploy_modifies):
                modified = True
        out[i] = total
    return out.reshape(plans.shape[:-1])


PAYOFF_WRONG = {
    "B after modification counted": (dict(count_all=True), ["also those after the mesa-optimizer was modified"]),
    "episode k overseen too": (dict(overseen="t <= k"), ["off by one"]),
    "the defecting training episode lost": (dict(lose_first=True), ["IS reached"]),
    "deployment modifies": (dict(deploy_modifies=True), ["in deployment there are no updates"]),
}


def test_payoff_loop_version_passes():
    assert ch04.check_plan_payoff(payoff_loop)


@pytest.mark.parametrize("name", list(PAYOFF_WRONG))
def test_payoff_named_mistakes(name, capsys):
    kw, needles = PAYOFF_WRONG[name]
    rejected(ch04.check_plan_payoff(lambda p, k, discount=1.0: payoff_loop(p, k, discount, **kw)), capsys, *needles)


def test_payoff_k_read_as_deployment_episodes_is_named_not_off_by_one(capsys):
    def k_from_the_end(plans, k, discount=1.0):
        return payoff_loop(plans, plans.shape[-1] - k, discount)
    out = rejected(ch04.check_plan_payoff(k_from_the_end), capsys, "number of TRAINING (overseen) episodes")
    assert "off by one" not in out and "may be another mistake" not in out, out


def test_payoff_discount_counted_from_one_is_named(capsys):
    def from_one(plans, k, discount=1.0):
        return payoff_loop(plans, k, discount) * (discount if discount != 1.0 else 1.0)
    rejected(ch04.check_plan_payoff(from_one), capsys, "counted from 0")


def test_payoff_float32_passes_and_a_python_list_is_named(capsys):
    assert ch04.check_plan_payoff(lambda p, k, discount=1.0: treacherous.plan_payoffs(p, k, discount=discount).float())
    capsys.readouterr()
    rejected(ch04.check_plan_payoff(lambda p, k, discount=1.0: treacherous.plan_payoffs(p, k, discount=discount).tolist()),
          capsys, "expected a torch.Tensor")
