"""History tasks: answers consistent with the sequences, Bayes predictor by brute force,
cost formulas, exact cached decoding, determinism, and clear errors."""
import math

import pytest
import torch

from mesakit.history_tasks import (
    GRUEnsemble,
    KVCache,
    TransformerEnsemble,
    associative_recall_batch,
    attention_step_macs,
    bag_of_values_accuracy,
    coin_bayes_predictive,
    coin_flip_batch,
    coin_scores,
    kv_cache_bytes,
    measure_step_time,
    recall_accuracy,
    recall_accuracy_per_member,
    recall_input_dim,
    recurrent_state_bytes,
    recurrent_step_macs,
    step_cost_table,
    steps_to_reach,
    train_ensemble,
    transformer_decode_step,
    transformer_stepwise,
)
from mesakit.nets import CausalTransformer, GRUSequenceModel


# ------------------------------------------------------------------ coin task
def test_coin_inputs_encode_previous_flip_and_bayes_is_laplace():
    b = coin_flip_batch(5, 9, seed=3)
    assert b.inputs.shape == (5, 9, 3) and b.targets.shape == (5, 9) and b.bias.shape == (5,)
    assert torch.all(b.inputs[:, 0] == torch.tensor([0.0, 0.0, 1.0]))
    # the input at t is the flip at t - 1, as a one-hot
    assert torch.equal(b.inputs[:, 1:, 1], b.targets[:, :-1])
    assert torch.equal(b.inputs[:, 1:, 0], 1 - b.targets[:, :-1])
    # brute force: Laplace's rule from explicit counts
    for i in range(5):
        for t in range(9):
            heads = b.targets[i, :t].sum().item()
            assert math.isclose(b.bayes[i, t].item(), (heads + 1) / (t + 2), rel_tol=1e-6)


def test_coin_bayes_matches_posterior_integral():
    # P(heads | h heads in n) under a uniform prior, by numerical integration over the bias
    flips = torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]])
    pred = coin_bayes_predictive(flips)
    grid = torch.linspace(0, 1, 20001, dtype=torch.float64)
    for t in range(flips.shape[1]):
        h, n = flips[0, :t].sum().item(), t
        like = grid ** h * (1 - grid) ** (n - h)
        expected = (grid * like).sum() / like.sum()
        assert abs(pred[0, t].item() - expected.item()) < 1e-4


def test_coin_scores_bayes_captures_all_gain_and_uniform_none():
    b = coin_flip_batch(512, 20, seed=0)
    bayes_logits = torch.logit(b.bayes)
    s = coin_scores(bayes_logits, b)
    assert abs(s["gain_captured"] - 1.0) < 1e-5 and s["mean_abs_gap"] < 1e-6
    s0 = coin_scores(torch.zeros_like(bayes_logits), b)
    assert abs(s0["gain_captured"]) < 1e-6
    assert s["bayes_loss"] < s["uniform_loss"]


# ------------------------------------------------------------------ recall task
def test_recall_answers_are_the_stored_values():
    nk, nv = 10, 6
    b = associative_recall_batch(7, 5, n_keys=nk, n_values=nv, n_queries=3, seed=2)
    assert b.inputs.shape == (7, 8, recall_input_dim(nk, nv))
    for i in range(7):
        keys = b.keys[i].tolist()
        assert len(set(keys)) == len(keys)  # distinct keys
        table = dict(zip(keys, b.values[i].tolist()))
        for j in range(3):
            assert table[b.query_keys[i, j].item()] == b.targets[i, j].item()
        # decode the tokens themselves and check them against the stored pairs
        for s in range(5):
            tok = b.inputs[i, s]
            assert tok[:nk].argmax().item() == keys[s] and tok[nk:nk + nv].argmax().item() == table[keys[s]]
            assert tok.sum().item() == 2 and tok[-1] == 0
        for j in range(3):
            tok = b.inputs[i, 5 + j]
            assert tok[:nk].argmax().item() == b.query_keys[i, j].item()
            assert tok[nk:nk + nv].sum() == 0 and tok[-1] == 1


def test_query_first_layout_puts_the_question_before_the_pairs():
    nk, nv = 6, 5
    b = associative_recall_batch(9, 4, n_keys=nk, n_values=nv, n_queries=2, query_first=True, seed=4)
    assert b.inputs.shape == (9, 2 + 4 + 2, nk + nv + 1) and b.query_first
    for i in range(9):
        table = dict(zip(b.keys[i].tolist(), b.values[i].tolist()))
        for j in range(2):
            q = b.inputs[i, j]
            assert q[-1] == 1 and q[:nk].argmax().item() == b.query_keys[i, j].item() and q[nk:nk + nv].sum() == 0
            assert table[b.query_keys[i, j].item()] == b.targets[i, j].item()
            answer = b.inputs[i, 6 + j]
            assert answer[-1] == 1 and answer[:-1].sum() == 0
        for s in range(4):
            tok = b.inputs[i, 2 + s]
            assert tok[-1] == 0 and tok[:nk].argmax().item() == b.keys[i, s].item()
            assert tok[nk:nk + nv].argmax().item() == b.values[i, s].item()
    # same seed, same pairs and questions in either layout
    last = associative_recall_batch(9, 4, n_keys=nk, n_values=nv, n_queries=2, seed=4)
    assert torch.equal(last.targets, b.targets) and torch.equal(last.keys, b.keys)
    assert torch.equal(last.inputs[:, :4], b.inputs[:, 2:6]) and torch.equal(last.inputs[:, 4:], b.inputs[:, :2])
    assert torch.all(b.sequence_targets[:, :6] == -100) and torch.equal(b.sequence_targets[:, 6:], b.targets)


def test_bag_of_values_accuracy_by_brute_force():
    b = associative_recall_batch(300, 5, n_keys=8, n_values=3, seed=7)
    expected = sum(max(row.count(v) for v in set(row)) / 5 for row in b.values.tolist()) / 300
    assert abs(bag_of_values_accuracy(b) - expected) < 1e-6
    assert bag_of_values_accuracy(associative_recall_batch(50, 1, seed=0)) == 1.0


def test_recall_sequence_targets_and_accuracy():
    b = associative_recall_batch(4, 3, n_keys=8, n_values=5, n_queries=2, seed=0)
    st = b.sequence_targets
    assert st.shape == (4, 5) and torch.all(st[:, :3] == -100) and torch.equal(st[:, 3:], b.targets)
    perfect = torch.nn.functional.one_hot(b.targets, 5).float()
    assert recall_accuracy(perfect, b) == 1.0
    full = torch.cat([torch.zeros(4, 3, 5), perfect], 1)
    assert recall_accuracy(full, b) == 1.0
    assert recall_accuracy(-perfect, b) == 0.0


def test_generators_are_deterministic_and_use_a_given_generator():
    a = associative_recall_batch(3, 4, seed=11)
    b = associative_recall_batch(3, 4, seed=11)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, associative_recall_batch(3, 4, seed=12).inputs)
    assert torch.equal(coin_flip_batch(4, 6, seed=5).targets, coin_flip_batch(4, 6, seed=5).targets)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(coin_flip_batch(4, 6, generator=g1).inputs, coin_flip_batch(4, 6, generator=g2).inputs)


# ------------------------------------------------------------------ costs
def _models():
    torch.manual_seed(0)
    gru = GRUSequenceModel(6, 12, 4, layers=2)
    tf = CausalTransformer(6, 4, d_model=16, n_heads=2, n_layers=3, positional="none").eval()
    return gru, tf


def test_cache_and_state_size_formulas():
    assert kv_cache_bytes(2, 32, 100, batch=3) == 2 * 2 * 3 * 100 * 32 * 4
    assert kv_cache_bytes(1, 8, 10, bytes_per_element=2) == 2 * 8 * 10 * 2
    assert recurrent_state_bytes(2, 64, batch=5) == 2 * 5 * 64 * 4
    gru, tf = _models()
    table = step_cost_table(gru, tf, [10, 100, 1000], batch=2)
    assert len(set(table["gru_bytes"])) == 1 and len(set(table["gru_macs"])) == 1
    assert table["cache_bytes"][2] == 100 * table["cache_bytes"][0]
    # linear and quadratic growth of multiply-adds per step
    c = table["cached_macs"]
    assert (c[2] - c[1]) == 10 * (c[1] - c[0])
    # recomputing the history = re-running every cached step (with the head applied once)
    t, d, out = 50, 16, 4
    cached_sum = sum(attention_step_macs(tf, s) for s in range(1, t + 1))
    assert attention_step_macs(tf, t, cached=False) == cached_sum - (t - 1) * d * out
    assert attention_step_macs(tf, 1000, cached=False) > 10 * attention_step_macs(tf, 100, cached=False)


def test_macs_match_hand_count():
    gru, tf = _models()
    # GRU: layer 1 has 3 gates of (6x12 + 12x12), layer 2 of (12x12 + 12x12); head 12x4
    assert recurrent_step_macs(gru) == 3 * (6 * 12 + 144) + 3 * (144 + 144) + 48
    d, f, L, t = 16, 64, 3, 10
    assert attention_step_macs(tf, t) == 6 * d + L * (4 * d * d + 2 * d * f + 2 * t * d) + d * 4


def test_cached_decoding_reproduces_full_forward_and_counts_bytes():
    _, tf = _models()
    x = torch.randn(2, 13, 6)
    y, cache = transformer_stepwise(tf, x)
    assert torch.allclose(y, tf(x), atol=1e-5)
    assert cache.length == 13 and cache.nbytes() == kv_cache_bytes(3, 16, 13, batch=2)
    # a cache that must grow past its capacity still decodes correctly
    small = KVCache(tf, 2, capacity=2)
    outs = torch.stack([transformer_decode_step(tf, x[:, s], small) for s in range(13)], 1)
    assert small.capacity >= 13 and torch.allclose(outs, y, atol=1e-6)


def test_measure_step_time_shapes_and_bytes():
    gru, tf = _models()
    r = measure_step_time(gru, [4, 40], batch=2, repeats=2, warmup=1)
    assert len(r["seconds"]) == 2 and all(s > 0 for s in r["seconds"])
    assert r["state_bytes"] == [recurrent_state_bytes(2, 12, batch=2)] * 2
    r = measure_step_time(tf, [4, 40], batch=2, repeats=2, warmup=1)
    assert r["state_bytes"] == [kv_cache_bytes(3, 16, 4, batch=2), kv_cache_bytes(3, 16, 40, batch=2)]


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("call, name", [
    (lambda: coin_flip_batch(0, 5), "batch"),
    (lambda: coin_flip_batch(3, 0), "length"),
    (lambda: coin_flip_batch(3, 4, generator="nope"), "generator"),
    (lambda: associative_recall_batch(3, 0), "n_pairs"),
    (lambda: associative_recall_batch(3, 9, n_keys=8), "n_pairs"),
    (lambda: associative_recall_batch(3, 2, n_values=0), "n_values"),
    (lambda: associative_recall_batch(3, 2, n_queries=-1), "n_queries"),
    (lambda: associative_recall_batch(3, 2, query_first="yes"), "query_first"),
    (lambda: recall_accuracy(torch.zeros(3, 7, 8), associative_recall_batch(3, 2)), "logits"),
    (lambda: kv_cache_bytes(2, 32, 0), "length"),
    (lambda: kv_cache_bytes(2, 0, 5), "d_model"),
    (lambda: recurrent_state_bytes(1, 8, batch=0), "batch"),
    (lambda: attention_step_macs(_models()[1], 0), "length"),
    (lambda: attention_step_macs(_models()[0], 5), "model"),
    (lambda: recurrent_step_macs(_models()[1]), "model"),
    (lambda: measure_step_time(torch.nn.Linear(2, 2), [4]), "model"),
    (lambda: measure_step_time(_models()[0], []), "lengths"),
    (lambda: measure_step_time(_models()[0], [4, 0]), "lengths"),
    (lambda: transformer_decode_step(_models()[1], torch.randn(2, 5), KVCache(_models()[1], 2)), "x"),
    (lambda: coin_flip_batch(3, 4, device="gpu0"), "device"),
    (lambda: associative_recall_batch(3, 2, device=7), "device"),
    (lambda: KVCache(_models()[1], 2, device="tpu"), "device"),
    (lambda: measure_step_time(_models()[0], [4], device="nope"), "device"),
    (lambda: GRUEnsemble(3, 4, 2, []), "seeds"),
    (lambda: GRUEnsemble(3, 0, 2, [0]), "hidden"),
    (lambda: GRUEnsemble(3, 4, 2, [0, 1])(torch.randn(3, 2, 5, 3)), "x"),
    (lambda: GRUEnsemble(3, 4, 2, [0]).member(1), "i must be"),
    (lambda: TransformerEnsemble(3, 2, [0], d_model=10, n_heads=3), "d_model"),
    (lambda: TransformerEnsemble(3, 2, [0, 1], d_model=8)(torch.randn(2, 2, 5, 4)), "x"),
    (lambda: train_ensemble(torch.nn.Linear(2, 2), None, None, steps=1), "model"),
    (lambda: train_ensemble(GRUEnsemble(3, 4, 2, [0]), None, None, steps=0), "steps"),
    (lambda: train_ensemble(GRUEnsemble(3, 4, 2, [0]), None, None, steps=5, lr=0), "lr"),
    (lambda: train_ensemble(GRUEnsemble(3, 4, 2, [0]), None, None, steps=5, schedule="step"), "schedule"),
    (lambda: train_ensemble(GRUEnsemble(3, 4, 2, [0]), None, None, steps=5, checkpoints=[6],
                            evaluate=lambda m: 0), "checkpoints"),
    (lambda: train_ensemble(GRUEnsemble(3, 4, 2, [0]), None, None, steps=5, checkpoints=[2]), "evaluate"),
    (lambda: train_ensemble(GRUEnsemble(3, 4, 2, [0]), None, None, steps=5, device="gpu0"), "device"),
    (lambda: recall_accuracy_per_member(torch.zeros(3, 7, 8), associative_recall_batch(3, 2)), "logits"),
    (lambda: steps_to_reach(torch.zeros(3, 2), [1, 2], 0.5), "curve"),
    (lambda: steps_to_reach(torch.zeros(2, 2), [1, 0], 0.5), "checkpoints"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_learned_positions_stop_at_max_len():
    tf = CausalTransformer(3, 2, d_model=8, n_heads=2, n_layers=1, max_len=4).eval()
    cache = KVCache(tf, 1)
    for _ in range(4):
        transformer_decode_step(tf, torch.randn(1, 3), cache)
    with pytest.raises(ValueError, match="max_len"):
        transformer_decode_step(tf, torch.randn(1, 3), cache)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_value_error():
    for call in (lambda: coin_flip_batch(2, 3, device="cuda"),
                 lambda: associative_recall_batch(2, 2, device="cuda"),
                 lambda: KVCache(_models()[1], 2, device="cuda"),
                 lambda: KVCache.of_length(_models()[1], 2, 3, device="cuda"),
                 lambda: measure_step_time(_models()[0], [4], device="cuda")):
        with pytest.raises(ValueError, match="device='cuda' asks for CUDA"):
            call()


# ------------------------------------------------------------------ seeds as one program
def test_gru_ensemble_members_are_the_plain_models_built_from_their_seeds():
    seeds = [0, 4, 7]
    ens = GRUEnsemble(5, 12, 3, seeds)
    x = torch.randn(3, 2, 6, 5)
    y = ens(x)
    assert y.shape == (3, 2, 6, 3) and len(ens) == 3
    for i, s in enumerate(seeds):
        torch.manual_seed(s)
        ref = GRUSequenceModel(5, 12, 3)
        torch.testing.assert_close(ens.member(i)(x[i]), y[i], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ref(x[i]), y[i], rtol=1e-5, atol=1e-6)


def test_transformer_ensemble_members_are_the_plain_models_built_from_their_seeds():
    seeds = [1, 2]
    ens = TransformerEnsemble(5, 3, seeds, d_model=16, n_heads=2, n_layers=2)
    x = torch.randn(2, 3, 7, 5)
    y = ens(x)
    for i, s in enumerate(seeds):
        torch.manual_seed(s)
        ref = CausalTransformer(5, 3, d_model=16, n_heads=2, n_layers=2, positional="none").train()
        torch.testing.assert_close(ref(x[i]), y[i], rtol=1e-4, atol=1e-5)
        # causal: changing the last token changes no earlier output
    x2 = x.clone()
    x2[:, :, -1] += 1.0
    torch.testing.assert_close(ens(x2)[:, :, :-1], y[:, :, :-1])


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_batched_training_equals_training_each_member_alone(kind):
    def build(seeds):
        if kind == "gru":
            return GRUEnsemble(4, 8, 3, seeds)
        return TransformerEnsemble(4, 3, seeds, d_model=8, n_heads=2, n_layers=1)

    data = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(6, 2, 5, 3, 4, generator=data), torch.randint(0, 3, (6, 2, 5, 3), generator=data)

    def loss_fn(out, y):
        return torch.nn.functional.cross_entropy(out.reshape(-1, 3), y.reshape(-1), reduction="none") \
            .view(out.shape[0], -1).mean(1)

    def batches(members):
        state = {"i": 0}

        def make(gen):
            i = state["i"]
            state["i"] += 1
            return xs[i][members], ys[i][members]
        return make

    both = build([3, 5])
    run = train_ensemble(both, batches([0, 1]), loss_fn, steps=6, lr=1e-2, clip_grad=0.5,
                         checkpoints=[2, 6], evaluate=lambda m: m(xs[0]).sum((1, 2, 3)))
    assert run["losses"].shape == (6, 2) and run["evaluations"].shape == (2, 2) and run["checkpoints"] == [2, 6]
    for i, s in enumerate([3, 5]):
        alone = build([s])
        train_ensemble(alone, batches([i]), loss_fn, steps=6, lr=1e-2, clip_grad=0.5)
        for name, p in alone.params.items():
            torch.testing.assert_close(p[0], both.params[name][i], rtol=1e-4, atol=1e-5, msg=name)


def test_train_ensemble_learns_and_repeats_exactly():
    def make(gen):
        b = associative_recall_batch(2 * 32, 1, n_keys=4, n_values=4, generator=gen)
        return b.inputs.view(2, 32, 2, -1), b.sequence_targets.view(2, 32, 2)

    def loss_fn(out, y):
        per = torch.nn.functional.cross_entropy(out.reshape(-1, 4), y.reshape(-1), reduction="none").view(2, -1)
        return per.sum(1) / (y.view(2, -1) != -100).sum(1)

    test = associative_recall_batch(256, 1, n_keys=4, n_values=4, seed=9)
    runs = []
    for _ in range(2):
        ens = TransformerEnsemble(recall_input_dim(4, 4), 4, [0, 1], d_model=8, n_heads=2, n_layers=1)
        runs.append(train_ensemble(ens, make, loss_fn, steps=60, lr=1e-2, seed=3, checkpoints=[60],
                                   evaluate=lambda m: recall_accuracy_per_member(m(test.inputs.expand(2, -1, -1, -1)), test)))
    assert torch.equal(runs[0]["losses"], runs[1]["losses"])
    assert (runs[0]["evaluations"][-1] > 0.9).all(), runs[0]["evaluations"]   # one pair: copy the only value


def test_recall_accuracy_per_member_and_steps_to_reach():
    b = associative_recall_batch(5, 3, n_keys=8, n_values=5, n_queries=2, seed=1)
    perfect = torch.nn.functional.one_hot(b.targets, 5).float()
    logits = torch.stack([perfect, -perfect, torch.cat([torch.zeros(5, 3, 5), perfect], 1)[:, -2:]])
    assert recall_accuracy_per_member(logits, b).tolist() == [1.0, 0.0, 1.0]
    curve = torch.tensor([[0.1, 0.96, 0.2], [0.97, 0.5, 0.3], [0.99, 0.97, 0.4]])
    # the first checkpoint from which the score stays at or above the threshold; inf if never
    assert steps_to_reach(curve, [10, 20, 40], 0.95) == [20, 40, math.inf]
    assert steps_to_reach(curve, [10, 20, 40], 0.0) == [10, 10, 10]
