"""In-context regression: the two Bayes baselines against brute force, the token layout,
clear errors, and repeatable training."""
import pytest
import torch

from mesakit.icl_regression import (
    BatchedICLTransformer,
    batched_predict_all,
    dmmse_predict,
    dmmse_predict_all,
    make_tokens,
    mean_squared_error,
    prediction_distance,
    ridge_predict,
    ridge_predict_all,
    crossover,
    sample_sequences,
    sample_tasks,
    train_icl_sweep,
    train_icl_transformer,
    transformer_predict_all,
)


def _data(d=3, n=10, batch=5, noise=0.0, seed=0):
    tasks = sample_tasks(batch, d, seed=seed)
    xs, ys = sample_sequences(tasks, n, noise, seed=seed + 1)
    return tasks, xs, ys


def test_shapes_and_noiseless_targets():
    tasks, xs, ys = _data()
    assert xs.shape == (5, 10, 3) and ys.shape == (5, 10)
    assert torch.allclose(ys, torch.einsum("bnd,bd->bn", xs, tasks), atol=1e-5)


def test_ridge_matches_closed_form_and_least_squares():
    torch.manual_seed(0)
    _, xs, ys = _data(d=3, n=10, noise=0.3)
    xq = torch.randn(5, 3)
    # closed form, one sequence at a time (brute force)
    for lam in (0.1, 2.0):
        pred = ridge_predict(xs, ys, xq, lam)
        for b in range(5):
            x, y = xs[b].double(), ys[b].double()
            w = torch.linalg.inv(x.T @ x + lam * torch.eye(3, dtype=torch.double)) @ x.T @ y
            assert abs(pred[b].item() - (w @ xq[b].double()).item()) < 1e-4
    # lam -> 0 on noiseless data recovers the true task (least squares, n >= d)
    tasks, xs0, ys0 = _data(d=3, n=10, noise=0.0)
    truth = (tasks * xq).sum(-1)
    assert torch.allclose(ridge_predict(xs0, ys0, xq, 1e-8), truth, atol=1e-3)
    assert torch.allclose(ridge_predict(xs0, ys0, xq, 0.0), truth, atol=1e-3)
    lstsq = torch.linalg.lstsq(xs0, ys0.unsqueeze(-1)).solution.squeeze(-1)
    assert torch.allclose(ridge_predict(xs0, ys0, xq, 0.0), (lstsq * xq).sum(-1), atol=1e-4)


def test_ridge_empty_context_predicts_prior_mean():
    xs, ys = torch.zeros(4, 0, 2), torch.zeros(4, 0)
    assert torch.allclose(ridge_predict(xs, ys, torch.randn(4, 2), 0.5), torch.zeros(4))


def test_dmmse_single_task_equals_that_task():
    torch.manual_seed(1)
    pool = torch.randn(1, 4)
    _, xs, ys = _data(d=4, n=6, noise=0.5)
    xq = torch.randn(5, 4)
    assert torch.allclose(dmmse_predict(xs, ys, xq, pool, 0.5), xq @ pool[0], atol=1e-6)


def test_dmmse_locates_the_true_task_in_the_pool():
    pool = sample_tasks(32, 4, seed=3)
    idx = torch.arange(0, 32, 4)
    xs, ys = sample_sequences(pool[idx], 12, 0.1, seed=4)
    xq = torch.randn(len(idx), 4, generator=torch.Generator().manual_seed(5))
    pred = dmmse_predict(xs, ys, xq, pool, 0.1)
    assert torch.allclose(pred, (pool[idx] * xq).sum(-1), atol=1e-3)


def test_dmmse_matches_brute_force_posterior():
    pool = sample_tasks(5, 2, seed=7)
    _, xs, ys = _data(d=2, n=3, batch=4, noise=0.5, seed=8)
    xq = torch.randn(4, 2, generator=torch.Generator().manual_seed(9))
    pred = dmmse_predict(xs, ys, xq, pool, 0.7)
    for b in range(4):
        lik = torch.stack([torch.exp(-((ys[b] - xs[b] @ w) ** 2).sum() / (2 * 0.7 ** 2)) for w in pool])
        post = lik / lik.sum()
        assert abs(pred[b].item() - sum(post[m] * (pool[m] @ xq[b]) for m in range(5)).item()) < 1e-5


def test_all_positions_agree_with_prefix_predictions():
    pool = sample_tasks(6, 3, seed=2)
    _, xs, ys = _data(d=3, n=7, batch=4, noise=0.4, seed=3)
    r_all = ridge_predict_all(xs, ys, 0.3)
    d_all = dmmse_predict_all(xs, ys, pool, 0.4, chunk=3)
    for i in range(7):
        assert torch.allclose(r_all[:, i], ridge_predict(xs[:, :i], ys[:, :i], xs[:, i], 0.3), atol=1e-5)
        assert torch.allclose(d_all[:, i], dmmse_predict(xs[:, :i], ys[:, :i], xs[:, i], pool, 0.4), atol=1e-5)


def test_tokens_hide_the_current_target():
    _, xs, ys = _data(d=2, n=4, batch=1)
    tok = make_tokens(xs, ys)
    assert tok.shape == (1, 4, 5)
    assert torch.equal(tok[0, 0, :3], torch.zeros(3))
    assert torch.equal(tok[0, 2], torch.cat([xs[0, 1], ys[0, 1:2], xs[0, 2]]))


def test_distances():
    a = torch.tensor([[1.0, 2.0]])
    assert prediction_distance(a, a) == 0.0
    assert prediction_distance(a, a + 2) == pytest.approx(4.0)
    assert mean_squared_error(a, torch.zeros(1, 2)) == pytest.approx(2.5)
    per = prediction_distance(torch.zeros(2, 3), torch.tensor([[1.0, 1, 1], [0, 0, 3]]), per_sequence=True)
    assert torch.allclose(per, torch.tensor([1.0, 3.0]))


def test_crossover_interpolates_in_log_m():
    # closer to A (ratio < 1) at M=1 and 4, closer to B at 16: log-ratios -1, -ln 2, +ln 2
    m = [1, 4, 16]
    to_a = [1.0, 1.0, 2.0]
    to_b = [2.718281828, 2.0, 1.0]
    assert crossover(m, to_a, to_b) == pytest.approx(8.0)
    assert crossover(m, [1, 1, 1], [2, 2, 2]) is None
    with pytest.raises(ValueError, match="m_values"):
        crossover([4, 1], [1, 1], [1, 1])


def test_training_is_deterministic_and_learns_a_single_task():
    pool = sample_tasks(1, 2, seed=0)

    def run():
        return train_icl_transformer(pool, d=2, n_points=6, noise_std=0.1, steps=40, batch=32, lr=1e-2,
                                     d_model=16, n_heads=2, n_layers=1, seed=3)
    (m1, l1), (m2, l2) = run(), run()
    assert l1 == l2
    assert l1[-1] < 0.3 * l1[0]
    xs, ys = sample_sequences(pool.expand(8, 2), 6, 0.1, seed=1)
    assert torch.equal(transformer_predict_all(m1, xs, ys), transformer_predict_all(m2, xs, ys))
    assert transformer_predict_all(m1, xs, ys).shape == (8, 6)


def test_sampling_is_deterministic():
    assert torch.equal(sample_tasks(3, 2, seed=5), sample_tasks(3, 2, seed=5))
    t = sample_tasks(3, 2, seed=5)
    a, b = sample_sequences(t, 4, 0.2, seed=1), sample_sequences(t, 4, 0.2, seed=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_arguments():
    _, xs, ys = _data(d=2, n=3, batch=2)
    xq = torch.randn(2, 2)
    pool = torch.randn(3, 2)
    with pytest.raises(ValueError, match="lam"):
        ridge_predict(xs, ys, xq, -1.0)
    with pytest.raises(ValueError, match="lam"):
        ridge_predict_all(xs, ys, 0.0)
    with pytest.raises(ValueError, match="xs"):
        ridge_predict(xs[0], ys, xq, 1.0)
    with pytest.raises(ValueError, match="ys"):
        ridge_predict(xs, ys[:, :2], xq, 1.0)
    with pytest.raises(ValueError, match="x_query"):
        ridge_predict(xs, ys, torch.randn(2, 3), 1.0)
    with pytest.raises(ValueError, match="task_pool"):
        dmmse_predict(xs, ys, xq, torch.randn(3, 5), 0.5)
    with pytest.raises(ValueError, match="noise_std"):
        dmmse_predict(xs, ys, xq, pool, 0.0)
    with pytest.raises(ValueError, match="noise_std"):
        dmmse_predict_all(xs, ys, pool, -1.0)
    with pytest.raises(ValueError, match="n_tasks"):
        sample_tasks(0, 2)
    with pytest.raises(ValueError, match="prior_std"):
        sample_tasks(2, 2, prior_std=0.0)
    with pytest.raises(ValueError, match="n_points"):
        sample_sequences(pool, 0, 0.1)
    with pytest.raises(ValueError, match="steps"):
        train_icl_transformer(pool, d=2, n_points=3, noise_std=0.1, steps=0)
    with pytest.raises(ValueError, match="task_pool"):
        train_icl_transformer(torch.randn(3, 4), d=2, n_points=3, noise_std=0.1, steps=1)
    with pytest.raises(ValueError, match="pred_a"):
        prediction_distance(torch.zeros(2), torch.zeros(3))


def test_batched_members_are_independent_and_seeded():
    a = BatchedICLTransformer([3, 5], d=2, n_points=6, d_model=8, n_heads=2, n_layers=1)
    b = BatchedICLTransformer([5], d=2, n_points=6, d_model=8, n_heads=2, n_layers=1)
    _, xs, ys = _data(d=2, n=6, batch=4, noise=0.1)
    pa, pb = batched_predict_all(a, xs, ys), batched_predict_all(b, xs, ys)
    assert pa.shape == (2, 4, 6) and pb.shape == (1, 4, 6)
    # member 1 of a equals the one-member model with the same seed, whatever member 0 is
    assert torch.allclose(pa[1], pb[0], atol=1e-5)
    assert not torch.allclose(pa[0], pa[1])
    # causal: changing the last target changes no prediction, changing the first changes later ones
    ys2 = ys.clone(); ys2[:, -1] += 5.0
    assert torch.equal(batched_predict_all(a, xs, ys2), pa)
    ys3 = ys.clone(); ys3[:, 0] += 5.0
    p3 = batched_predict_all(a, xs, ys3)
    assert torch.equal(p3[:, :, 0], pa[:, :, 0]) and not torch.allclose(p3[:, :, 1:], pa[:, :, 1:])


def test_sweep_is_deterministic_learns_and_matches_a_lone_member():
    pool = sample_tasks(1, 2, seed=0)

    def run(pools, seeds):
        return train_icl_sweep(pools, seeds, d=2, n_points=6, noise_std=0.1, steps=60, batch=16, lr=1e-2,
                               warmup=5, d_model=8, n_heads=2, n_layers=1)
    (m1, l1), (m2, l2) = run([pool, None], [1, 2]), run([pool, None], [1, 2])
    assert torch.equal(l1, l2) and l1.shape == (60, 2)
    assert l1[-10:, 0].mean() < 0.2 * l1[:5, 0].mean()   # one task: memorised
    # training member 0 alone gives the same model (members do not interact)
    m3, l3 = run([pool], [1])
    _, xs, ys = _data(d=2, n=6, batch=3, noise=0.1)
    assert torch.allclose(batched_predict_all(m1, xs, ys)[0], batched_predict_all(m3, xs, ys)[0], atol=1e-4)
    calls = []
    train_icl_sweep([pool], [1], d=2, n_points=6, noise_std=0.1, steps=4, batch=4, d_model=8, n_heads=2,
                    n_layers=1, checkpoints=[2, 4], on_checkpoint=lambda s, m: calls.append(s))
    assert calls == [2, 4]


def test_sweep_and_batched_bad_arguments():
    pool = torch.randn(3, 2)
    with pytest.raises(ValueError, match="task_pools and seeds"):
        train_icl_sweep([pool], [0, 1], d=2, n_points=3, noise_std=0.1, steps=1)
    with pytest.raises(ValueError, match="task_pool"):
        train_icl_sweep([torch.randn(3, 4)], [0], d=2, n_points=3, noise_std=0.1, steps=1)
    with pytest.raises(ValueError, match="lr"):
        train_icl_sweep([pool], [0], d=2, n_points=3, noise_std=0.1, steps=1, lr=0)
    with pytest.raises(ValueError, match="checkpoints"):
        train_icl_sweep([pool], [0], d=2, n_points=3, noise_std=0.1, steps=2, checkpoints=[3], on_checkpoint=print)
    with pytest.raises(ValueError, match="seeds"):
        BatchedICLTransformer([], d=2, n_points=3)
    with pytest.raises(ValueError, match="n_heads"):
        BatchedICLTransformer([0], d=2, n_points=3, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="tokens"):
        BatchedICLTransformer([0, 1], d=2, n_points=3)(torch.zeros(1, 2, 3, 5))
    with pytest.raises(ValueError, match="model"):
        batched_predict_all(torch.nn.Linear(2, 2), torch.zeros(1, 3, 2), torch.zeros(1, 3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_arguments_are_validated():
    pool = torch.randn(3, 2)
    with pytest.raises(ValueError, match="device"):
        sample_tasks(2, 2, device="cuda")
    with pytest.raises(ValueError, match="device"):
        sample_sequences(pool, 3, 0.1, device="cuda")
    with pytest.raises(ValueError, match="device"):
        train_icl_transformer(pool, d=2, n_points=3, noise_std=0.1, steps=1, device="cuda")
    with pytest.raises(ValueError, match="device"):
        train_icl_sweep([pool], [0], d=2, n_points=3, noise_std=0.1, steps=1, device="cuda")
    with pytest.raises(ValueError, match="device"):
        BatchedICLTransformer([0], d=2, n_points=3, device="cuda")
    with pytest.raises(ValueError, match="device"):
        sample_tasks(2, 2, device="tpu-ish")
