"""Shared networks: shapes, causality, repeatable training, clear errors."""
import pytest
import torch

from mesakit.nets import MLP, CausalTransformer, GRUSequenceModel, count_parameters, train_supervised


def test_shapes():
    x = torch.randn(3, 7, 4)
    assert MLP(4, 8, 2)(x).shape == (3, 7, 2)
    assert GRUSequenceModel(4, 8, 2)(x).shape == (3, 7, 2)
    assert CausalTransformer(4, 2, d_model=16, n_heads=2, n_layers=1, max_len=10)(x).shape == (3, 7, 2)


def test_gru_step_matches_full_sequence():
    torch.manual_seed(0)
    model = GRUSequenceModel(4, 8, 2)
    x = torch.randn(2, 5, 4)
    full = model(x)
    state, outs = None, []
    for t in range(5):
        y, state = model.step(x[:, t], state)
        outs.append(y)
    assert torch.allclose(full, torch.stack(outs, 1), atol=1e-6)


@pytest.mark.parametrize("positional", ["learned", "none"])
def test_transformer_is_causal(positional):
    torch.manual_seed(0)
    model = CausalTransformer(3, 2, d_model=16, n_heads=2, n_layers=2, max_len=12, positional=positional).eval()
    x = torch.randn(1, 8, 3)
    y = model(x)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 3, 3)  # changing the future must not change the past
    assert torch.allclose(model(x2)[:, :5], y[:, :5], atol=1e-5)


def test_training_is_repeatable_and_learns():
    def run():
        torch.manual_seed(1)
        model = MLP(2, 16, 1)

        def batch(gen):
            x = torch.randn(64, 2, generator=gen)
            return x, x.sum(-1, keepdim=True)
        return train_supervised(model, batch, torch.nn.functional.mse_loss, steps=150, lr=1e-2, seed=5)
    a, b = run(), run()
    assert a == b
    assert a[-1] < 0.1 * a[0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden"):
        MLP(2, 0, 1)
    with pytest.raises(ValueError, match="positional"):
        CausalTransformer(2, 2, positional="sinusoid")
    with pytest.raises(ValueError, match="divisible"):
        CausalTransformer(2, 2, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="max_len"):
        CausalTransformer(2, 2, d_model=8, n_heads=2, max_len=4)(torch.randn(1, 5, 2))
    with pytest.raises(ValueError, match="steps"):
        train_supervised(MLP(1, 2, 1), lambda g: (torch.zeros(1, 1), torch.zeros(1, 1)), torch.nn.functional.mse_loss, steps=0)
    assert count_parameters(MLP(1, 2, 1)) == 1 * 2 + 2 + 2 * 2 + 2 + 2 * 1 + 1
