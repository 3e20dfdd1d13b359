"""Several small networks trained as one batched program: the members of an ensemble
(training seeds, points of a sweep) are slices of a leading dimension of the same
parameters, and one vectorized forward pass (``torch.func.vmap``) runs them all.

Why: a lesson's claim must hold across training seeds, and tiny networks spend most of
their time in Python overhead, so E members batched cost little more than one. Member
``i`` starts from exactly the weights ``factory()`` gives after ``torch.manual_seed
(seeds[i])``, and since its parameters are its own slice, its gradients (and Adam's
per-element state) are its own: batched training equals training the members one by
one, up to float rounding (a unit test checks it).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .core import check_positive_int

__all__ = ["Ensemble", "clip_grad_norm_per_member_"]


class Ensemble(nn.Module):
    """E copies of one architecture with their own weights, run in one call.

    ``Ensemble(factory, seeds)`` builds ``factory()`` once per seed, right after
    ``torch.manual_seed(seed)``. ``forward(x)`` takes ``x`` of shape ``[E, ...]`` (one
    input batch per member) and returns ``[E, ...]``; with ``shared_input=True`` it takes
    one batch ``[...]`` and feeds it to every member. Any other method of the base module
    can be vectorized with :meth:`call`.

    Raises ValueError when ``seeds`` is empty or holds a non-integer, or when ``x``'s
    leading dimension is not E.
    """

    def __init__(self, factory: Callable[[], nn.Module], seeds: Sequence[int]):
        super().__init__()
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds must name at least one member, got an empty sequence")
        for s in seeds:
            check_positive_int("seeds[i]", s, minimum=0)
        members = []
        for s in seeds:
            torch.manual_seed(int(s))
            members.append(factory())
        self.seeds = seeds
        params, buffers = stack_module_state(members)
        # The base module lives on the "meta" device: it only lends its code.
        self._base = [members[0].to("meta")]
        self._names = list(params)
        self.params = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(v) for k, v in params.items()})
        self._buffer_names = list(buffers)
        for k, v in buffers.items():
            self.register_buffer(k.replace(".", "__"), v)

    def __len__(self) -> int:
        return len(self.seeds)

    def _state(self):
        params = {k: self.params[k.replace(".", "__")] for k in self._names}
        buffers = {k: getattr(self, k.replace(".", "__")) for k in self._buffer_names}
        return params, buffers

    def call(self, method: str, *args, shared_input: bool = False, **kwargs):
        """Run ``base.<method>(*args, **kwargs)`` for every member at once. Tensor
        arguments carry a leading member dimension ``[E, ...]`` unless ``shared_input``."""
        params, buffers = self._state()
        base = self._base[0]
        if not shared_input:
            for a in args:
                if isinstance(a, torch.Tensor) and a.shape[0] != len(self):
                    raise ValueError(f"inputs must have a leading member dimension of {len(self)}, "
                                     f"got shape {tuple(a.shape)} (pass shared_input=True to feed "
                                     "one batch to every member)")

        if method == "forward":
            def one(p, b, *a):
                return functional_call(base, (p, b), a, kwargs)
        else:
            adapter = _MethodAdapter(base, method)

            def one(p, b, *a):
                p = {f"base.{k}": v for k, v in p.items()}
                b = {f"base.{k}": v for k, v in b.items()}
                return functional_call(adapter, (p, b), a, kwargs)

        in_dims = (0, 0) + tuple((None if shared_input or not isinstance(a, torch.Tensor) else 0)
                                 for a in args)
        return vmap(one, in_dims=in_dims, randomness="different")(params, buffers, *args)

    def forward(self, *args, shared_input: bool = False, **kwargs):
        return self.call("forward", *args, shared_input=shared_input, **kwargs)

    def member(self, i: int) -> nn.Module:
        """A plain module holding member ``i``'s current weights (a copy), for analysis
        code that expects one network."""
        if not 0 <= i < len(self):
            raise ValueError(f"i must be in [0, {len(self) - 1}], got {i}")
        params, buffers = self._state()
        state = {k: v[i].detach().clone() for k, v in {**params, **buffers}.items()}
        module = _rebuild(self._factory_like(), state)
        return module

    def _factory_like(self) -> nn.Module:
        import copy
        return copy.deepcopy(self._base[0]).to_empty(device=next(self.parameters()).device)


class _MethodAdapter(nn.Module):
    """Makes ``base.<method>`` callable through ``functional_call`` (which calls forward)."""

    def __init__(self, base: nn.Module, method: str):
        super().__init__()
        self.base = base
        self.method = method

    def forward(self, *args, **kwargs):
        return getattr(self.base, self.method)(*args, **kwargs)


def _rebuild(module: nn.Module, state: dict) -> nn.Module:
    module.load_state_dict(state)
    return module


@torch.no_grad()
def clip_stacked_grad_norms_(parameters, members: int, max_norm: float) -> torch.Tensor:
    """Clip the gradients of ``members`` networks stored as the slices of a leading axis
    of every parameter (stacked weights), each member to global norm ``max_norm`` on its
    own, as ``torch.nn.utils.clip_grad_norm_`` would for that member alone. Returns the
    members' norms [E] before clipping. Shared by the batched policies of mesakit.bandits,
    mesakit.ppo and mesakit.proxies."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(members)
    norms = torch.stack([g.reshape(members, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms


def scaled_stacked_step_(optimizer: torch.optim.Optimizer, parameters, scale: torch.Tensor) -> None:
    """``optimizer.step()`` for ``E`` networks stored as the slices of a leading axis of
    every parameter (stacked weights), with member e's step multiplied by ``scale[e]``
    (float [E]). For Adam, whose step is proportional to the learning rate, this trains
    member e as if alone at learning rate ``lr * scale[e]`` (up to rounding), so several
    learning rates train as one batched program. Shared by :func:`mesakit.ppo.train_ppo`
    and mesakit.deception's imitation fine-tuning."""
    params = list(parameters)
    start = [p.detach().clone() for p in params]
    optimizer.step()
    with torch.no_grad():
        for p, p0 in zip(params, start):
            p.copy_(p0 + scale.to(p.dtype).view(-1, *([1] * (p.dim() - 1))) * (p - p0))


def clip_grad_norm_per_member_(ensemble: Ensemble, max_norm: float) -> torch.Tensor:
    """Clip each member's gradient to global norm ``max_norm`` separately (as
    ``torch.nn.utils.clip_grad_norm_`` would for that member alone). Returns the E norms
    before clipping."""
    grads = [p.grad for p in ensemble.params.values() if p.grad is not None]
    if not grads:
        return torch.zeros(len(ensemble))
    sq = sum(g.pow(2).reshape(g.shape[0], -1).sum(1) for g in grads)
    norms = sq.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms
