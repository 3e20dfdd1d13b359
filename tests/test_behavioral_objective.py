"""mesakit.alignment.with_outside_option (lesson 3.3): time-limit episodes become a choice of
"nothing", whose utility is 0, and a fitted model recovers an object's value against it."""
import pytest
import torch

from mesakit.alignment import choice_accuracy, fit_choice_model, object_features, with_outside_option


def test_nothing_is_alternative_k_with_zero_features_and_invalid_rows_are_skipped():
    feats = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4) + 1.0
    reached = torch.tensor([-1, 2])
    f, choice = with_outside_option(feats, reached)
    assert f.shape == (2, 4, 4)
    assert torch.equal(f[:, :3], feats) and bool((f[:, 3] == 0).all())
    assert choice.tolist() == [3, 2]
    _, choice = with_outside_option(feats, reached, valid=torch.tensor([False, True]))
    assert choice.tolist() == [-1, 2]
    # the model skips the invalid row: accuracy is over the valid one only
    w = torch.zeros(4)
    w[0] = 1.0   # the last object has the largest first feature in row 1
    assert choice_accuracy(f, choice, w) == 1.0


def test_an_object_worth_less_than_nothing_gets_a_negative_utility():
    # one object per level, red (colour 0) or blue (1) at distance 1..8; the chooser touches
    # red objects and walks past blue ones (utility below the outside option's 0)
    gen = torch.Generator().manual_seed(0)
    n = 3000
    colour = torch.randint(0, 2, (n, 1), generator=gen)
    kind = torch.zeros(n, 1, dtype=torch.long)
    dist = torch.randint(1, 9, (n, 1), generator=gen)
    feats, names = object_features(colour, kind, dist, max_distance=8)
    true_u = torch.where(colour[:, 0] == 0, 2.0, -2.0)
    touched = torch.rand(n, generator=gen) < torch.sigmoid(true_u)
    reached = torch.where(touched, 0, -1)
    f, choice = with_outside_option(feats, reached)
    w = fit_choice_model(f[:2000], choice[:2000], l2=1e-4)
    u = torch.stack([f[:, 0][colour[:, 0] == c][0] @ w for c in (0, 1)])   # red, blue (same kind)
    assert u[0] > 1.0 and u[1] < -1.0, u
    # without the outside option the time-limit episodes are dropped and the fit cannot
    # tell blue from red (one object per level: nothing to compare)
    w_cond = fit_choice_model(feats[:2000], reached[:2000], l2=1e-4)
    assert abs(float(w_cond[names.index("red")] - w_cond[names.index("blue")])) < 1e-3
    assert choice_accuracy(f[2000:], choice[2000:], w) > 0.8


@pytest.mark.parametrize("bad, match", [
    (dict(features=torch.zeros(2, 3)), "features"),
    (dict(features=torch.zeros(2, 3, 4, dtype=torch.long)), "features"),
    (dict(reached=torch.tensor([0, 1, 2])), "reached"),
    (dict(reached=torch.tensor([0.0, 1.0])), "reached"),
    (dict(reached=torch.tensor([3, 0])), "reached"),
    (dict(reached=torch.tensor([-2, 0])), "reached"),
    (dict(valid=torch.tensor([1, 0])), "valid"),
    (dict(valid=torch.tensor([True])), "valid"),
])
def test_bad_arguments_are_named(bad, match):
    args = dict(features=torch.zeros(2, 3, 4), reached=torch.tensor([0, -1]), valid=None)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        with_outside_option(args["features"], args["reached"], valid=args["valid"])
