"""An ensemble trained as one batched program equals its members trained one by one."""
import pytest
import torch
from torch import nn

from mesakit.ensembles import Ensemble, clip_grad_norm_per_member_, scaled_stacked_step_
from mesakit.nets import MLP


def factory():
    return MLP(3, 8, 2, depth=2)


def test_members_start_from_their_own_seed():
    ens = Ensemble(factory, [0, 1, 5])
    for i, s in enumerate([0, 1, 5]):
        torch.manual_seed(s)
        ref = factory()
        for (name, p), (_, q) in zip(ref.named_parameters(), ens.member(i).named_parameters()):
            assert torch.equal(p, q), name


def test_batched_training_equals_one_by_one():
    seeds = [0, 1, 2]
    ens = Ensemble(factory, seeds)
    opt = torch.optim.Adam(ens.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(20, len(seeds), 16, 3, generator=gen)
    for x in xs:
        loss = ens(x).pow(2).mean(dim=(1, 2)).sum()
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_per_member_(ens, 0.5)
        opt.step()
    for i, s in enumerate(seeds):
        torch.manual_seed(s)
        net = factory()
        o = torch.optim.Adam(net.parameters(), lr=1e-2)
        for x in xs:
            loss = net(x[i]).pow(2).mean()
            o.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 0.5)
            o.step()
        got = ens.member(i)
        for (name, p), (_, q) in zip(net.named_parameters(), got.named_parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_shared_input_and_bad_input():
    ens = Ensemble(factory, [0, 1])
    assert ens(torch.randn(4, 3), shared_input=True).shape == (2, 4, 2)
    with pytest.raises(ValueError, match="leading member dimension"):
        ens(torch.randn(3, 4, 3))
    with pytest.raises(ValueError, match="seeds"):
        Ensemble(factory, [])
    with pytest.raises(ValueError, match="i must be"):
        ens.member(2)


def test_scaled_stacked_step_is_a_per_member_learning_rate():
    # two members stacked on a leading axis, one Adam step with member e's step scaled by
    # scale[e], equals each member stepped alone by Adam at lr * scale[e]
    torch.manual_seed(0)
    w0, g = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    scale = torch.tensor([0.25, 3.0])
    w = nn.Parameter(w0.clone())
    w.grad = g.clone()
    scaled_stacked_step_(torch.optim.Adam([w], lr=1e-2), [w], scale)
    for e in range(2):
        alone = nn.Parameter(w0[e].clone())
        alone.grad = g[e].clone()
        torch.optim.Adam([alone], lr=1e-2 * scale[e].item()).step()
        torch.testing.assert_close(w.detach()[e], alone.detach(), rtol=0, atol=1e-6)
    # a scale of ones is the plain step, bit for bit
    a, b = nn.Parameter(w0.clone()), nn.Parameter(w0.clone())
    a.grad, b.grad = g.clone(), g.clone()
    torch.optim.Adam([a], lr=1e-2).step()
    scaled_stacked_step_(torch.optim.Adam([b], lr=1e-2), [b], torch.ones(2))
    assert torch.equal(a, b)

