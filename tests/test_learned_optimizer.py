"""Tests for mesakit.learned_optimizer: bad input, the quadratic task against closed forms,
the tuned baselines' grid search against the closed-form optimum, the LSTM optimizer's
dynamics and determinism."""
import math

import pytest
import torch

from mesakit import learned_optimizer as lo


def one_d(w, y):
    """One 1-D quadratic 0.5 * (w x - y)^2 as a batch of one."""
    return lo.Quadratics(torch.tensor([[[float(w)]]]), torch.tensor([[float(y)]]))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, name", [
    (dict(shape=0, dim=3), "shape"), (dict(shape=(2, -1), dim=3), "shape"),
    (dict(shape=2, dim=0), "dim"), (dict(shape=2, dim=3, cond=(0.5, 2)), "cond"),
    (dict(shape=2, dim=3, cond=(5, 2)), "cond"), (dict(shape=2, dim=3, cond=3), "cond"),
    (dict(shape=2, dim=3, scale=(0, 1)), "scale"), (dict(shape=2, dim=3, scale=(2, 1)), "scale"),
    (dict(shape=2, dim=3, device="tpu"), "device"),
])
def test_sample_quadratics_rejects_bad_arguments(kwargs, name):
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        lo.sample_quadratics(**kwargs)


def test_sample_quadratics_needs_an_int_seed():
    with pytest.raises(ValueError, match="seed"):
        lo.sample_quadratics(2, 3, seed=1.5)


def test_optimizers_reject_bad_arguments():
    q = lo.sample_quadratics(4, 3, seed=0)
    with pytest.raises(ValueError, match="lrs"):
        lo.run_sgd(q, [0.1, -1.0], 5)
    with pytest.raises(ValueError, match="lrs"):
        lo.run_adam(q, [], 5)
    with pytest.raises(ValueError, match="steps"):
        lo.run_sgd(q, [0.1], 0)
    with pytest.raises(ValueError, match="momentum"):
        lo.run_sgd(q, [0.1], 3, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        lo.run_adam(q, [0.1], 3, betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="problems"):
        lo.run_sgd("not a problem", [0.1], 3)
    with pytest.raises(ValueError, match="x"):
        lo.quadratic_loss(q, torch.zeros(4, 5))
    with pytest.raises(ValueError, match="losses"):
        lo.grid_search(torch.zeros(3, 4, 2), [0.1, 0.2])


def test_lstm_optimizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="seeds"):
        lo.LSTMOptimizer([])
    with pytest.raises(ValueError, match="seeds"):
        lo.LSTMOptimizer([0, "a"])
    with pytest.raises(ValueError, match="hidden"):
        lo.LSTMOptimizer([0], hidden=0)
    with pytest.raises(ValueError, match="out_scale"):
        lo.LSTMOptimizer([0], out_scale=0.0)
    opt = lo.LSTMOptimizer([0, 1], hidden=4)
    with pytest.raises(ValueError, match="problems"):
        lo.unroll(opt, lo.sample_quadratics((3, 2), 3, seed=0), 2)   # 3 members' problems for 2 members
    with pytest.raises(ValueError, match="g must be"):
        opt(torch.zeros(3, 5), opt.init_state(5))
    with pytest.raises(ValueError, match="multiple"):
        lo.meta_train(opt, dim=3, cond=(1, 2), iterations=1, horizon=10, truncation=3, seed=0)
    with pytest.raises(ValueError, match="device"):
        lo.meta_train(opt, dim=3, cond=(1, 2), iterations=1, horizon=4, truncation=2, seed=0, device="tpu")
    with pytest.raises(ValueError, match="schedule"):
        lo.meta_train(opt, dim=3, cond=(1, 2), iterations=1, horizon=4, truncation=2, seed=0, schedule="linear")
    with pytest.raises(ValueError, match="opt"):
        lo.meta_train("adam", dim=3, cond=(1, 2), iterations=1, horizon=4, truncation=2, seed=0)


# ---------------------------------------------------------------- the task against closed forms
def test_loss_and_gradient_match_closed_form():
    W = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    y = torch.tensor([1.0, -2.0])
    q = lo.Quadratics(W, y)
    x = torch.tensor([0.5, 0.25])
    r = W @ x - y                                    # [0.25, 2.75]
    assert lo.quadratic_loss(q, x).item() == pytest.approx(0.5 * (0.25 ** 2 + 2.75 ** 2))
    assert torch.allclose(lo.quadratic_grad(q, x), W.T @ r)
    # the minimizer W^-1 y has loss 0 and gradient 0
    x_star = torch.linalg.solve(W, y)
    assert lo.quadratic_loss(q, x_star).item() == pytest.approx(0.0, abs=1e-10)
    assert lo.quadratic_grad(q, x_star).abs().max().item() < 1e-5


def test_gradient_matches_autograd_on_sampled_batches():
    q = lo.sample_quadratics((2, 3), 5, (1, 10), scale=(0.5, 2), seed=3)
    x = torch.randn(4, 2, 3, 5, requires_grad=True)   # an extra leading axis broadcasts
    lo.quadratic_loss(q, x).sum().backward()
    assert torch.allclose(x.grad, lo.quadratic_grad(q, x.detach()), atol=1e-5)


def test_sampled_spectrum_respects_condition_and_scale():
    q = lo.sample_quadratics(200, 6, (2.0, 20.0), scale=(0.5, 2.0), seed=1)
    s = torch.linalg.svdvals(q.W.double())
    top, kappa = s[:, 0], s[:, 0] / s[:, -1]
    assert (top > 0.5 - 1e-4).all() and (top < 2.0 + 1e-4).all()
    assert (kappa > 2.0 - 1e-3).all() and (kappa < 20.0 + 1e-2).all()
    assert kappa.min() < 3 and kappa.max() > 15                      # the range is used
    assert q.W.dtype == torch.float32 and q.y.shape == (200, 6)


# ---------------------------------------------------------------- baselines
@pytest.mark.parametrize("w", [2.0, 1.5, 0.8])
def test_grid_search_finds_the_closed_form_step_size_on_a_1d_quadratic(w):
    # gradient descent on 0.5 (w x - y)^2 multiplies the error by (1 - lr w^2) per step:
    # the best step is 1 / w^2 (one step to the minimum); on a grid, the nearest point to it
    lrs = torch.linspace(0.05, 2.0, 40)
    q = one_d(w, 1.0)
    losses = lo.run_sgd(q, lrs, 3)
    best, score = lo.grid_search(losses, lrs)
    nearest = float(lrs[torch.argmin((lrs - 1 / w ** 2).abs())])
    assert best == pytest.approx(nearest)
    # and the loss trajectory is the closed form 0.5 y^2 (1 - lr w^2)^(2t)
    t = torch.arange(4, dtype=torch.float32)
    closed = 0.5 * (1 - lrs[:, None] * w ** 2) ** (2 * t)
    assert torch.allclose(losses[:, :, 0], closed, rtol=1e-4, atol=1e-7)
    # a step size above 2 / w^2 diverges and scores worse than any convergent one
    diverging = lrs > 2 / w ** 2 + 0.05
    if w > 1.0:   # only then does the grid (up to 2.0) reach past 2 / w^2
        assert diverging.any()
        assert score[diverging].min() > score[lrs < 2 / w ** 2 - 0.05].max()


def test_adam_first_step_moves_by_lr_against_the_gradient_sign():
    q = lo.Quadratics(torch.tensor([[[1.0, 0.0], [0.0, 4.0]]]), torch.tensor([[3.0, -1.0]]))
    losses = lo.run_adam(q, [0.1], 1)
    x1 = torch.tensor([0.1, -0.1])     # -lr * sign(grad at 0) = -lr * sign(-W^T y)
    assert losses[0, 1, 0].item() == pytest.approx(lo.quadratic_loss(q, x1)[0].item(), rel=1e-5)


def test_log_final_loss_floors_and_marks_divergence():
    losses = torch.tensor([[[1.0, 1.0, 1.0], [0.1, 0.0, float("inf")]]])   # [L=1, steps+1=2, batch=3]
    out = lo.log_final_loss(losses)
    assert out[0, 0].item() == pytest.approx(-1.0)
    assert out[0, 1].item() == pytest.approx(math.log10(lo.LOSS_FLOOR))
    assert out[0, 2].item() == math.inf


# ---------------------------------------------------------------- the learned optimizer
def test_members_are_what_their_seeds_give_alone():
    both, alone = lo.LSTMOptimizer([5, 7], hidden=6), lo.LSTMOptimizer([7], hidden=6)
    for p, q in zip(both.parameters(), alone.parameters()):
        assert torch.equal(p[1], q[0])


def test_preprocessing_follows_the_paper():
    opt = lo.LSTMOptimizer([0], hidden=3)
    g = torch.tensor([[2.0, -1e-3, 1e-6, 0.0]])
    f = opt.preprocess(g)
    assert f[0, 0].tolist() == pytest.approx([math.log(2.0) / 10, 1.0])
    assert f[0, 1].tolist() == pytest.approx([math.log(1e-3) / 10, -1.0])
    assert f[0, 2].tolist() == pytest.approx([-1.0, math.exp(10) * 1e-6])   # below e^-10: (-1, e^10 g)
    assert f[0, 3].tolist() == pytest.approx([-1.0, 0.0])


def test_unroll_shapes_and_zero_start():
    opt = lo.LSTMOptimizer([0, 1], hidden=5)
    q = lo.sample_quadratics((2, 4), 3, seed=0)
    losses, x, (h, c) = lo.unroll(opt, q, 6)
    assert losses.shape == (7, 2, 4) and x.shape == (2, 4, 3) and h.shape == (2, 12, 5)
    assert torch.allclose(losses[0], 0.5 * (q.y ** 2).sum(-1))     # x0 = 0
    assert not losses.requires_grad


def test_meta_training_lowers_the_meta_loss_and_is_deterministic():
    def train():
        opt = lo.LSTMOptimizer([0, 1], hidden=8)
        hist = lo.meta_train(opt, dim=4, cond=(1, 5), scale=(0.5, 2), iterations=40, horizon=10,
                             truncation=5, batch=8, lr=1e-2, seed=0, schedule="cosine")
        return opt, hist
    (opt_a, hist_a), (opt_b, hist_b) = train(), train()
    assert torch.equal(hist_a, hist_b)
    for p, q in zip(opt_a.parameters(), opt_b.parameters()):
        assert torch.equal(p, q)
    assert hist_a.shape == (40, 2)
    assert (hist_a[-10:].mean(0) < hist_a[:5].mean(0) - 0.3).all(), hist_a
    # a trained optimizer lowers the loss on new problems
    q = lo.sample_quadratics((2, 64), 4, (1, 5), scale=(0.5, 2), seed=99)
    losses, _, _ = lo.unroll(opt_a, q, 10)
    assert (losses[-1].mean(1) < 0.5 * losses[0].mean(1)).all()


def test_sampling_is_deterministic_per_seed():
    a, b, c = (lo.sample_quadratics((2, 3), 4, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.W, b.W) and torch.equal(a.y, b.y)
    assert not torch.equal(a.W, c.W)
