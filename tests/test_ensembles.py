"""An ensemble trained as one batched program equals its members trained one by one."""
import pytest
import torch
from torch import nn

from mesakit.ensembles import Ensemble, clip_grad_norm_per_member_
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
