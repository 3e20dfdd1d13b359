"""Small networks the lessons share (an MLP, a GRU sequence model, a tiny causal
transformer) and one supervised training loop, so each lesson shows its experiment
rather than its plumbing."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .core import check_device, check_choice, check_positive_int, progress

__all__ = ["MLP", "GRUSequenceModel", "CausalTransformer", "count_parameters", "train_supervised"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters, for comparing models of 'similar size'."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class MLP(nn.Module):
    """A plain multilayer perceptron: ``depth`` hidden layers of width ``hidden``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, depth: int = 2):
        super().__init__()
        check_positive_int("in_dim", in_dim)
        check_positive_int("hidden", hidden)
        check_positive_int("out_dim", out_dim)
        check_positive_int("depth", depth)
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GRUSequenceModel(nn.Module):
    """A GRU reading a sequence ``[B, T, in_dim]`` and emitting an output at every step
    ``[B, T, out_dim]``. Its memory of the past is a fixed-size state: a *recurrence*.

    ``step`` advances one time step, for agents that act as they go."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 1):
        super().__init__()
        check_positive_int("in_dim", in_dim)
        check_positive_int("hidden", hidden)
        check_positive_int("out_dim", out_dim)
        check_positive_int("layers", layers)
        self.hidden, self.layers = hidden, layers
        self.gru = nn.GRU(in_dim, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, out_dim)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(self.layers, batch, self.hidden, device=check_device("device", device))

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False):
        if x.dim() != 3:
            raise ValueError(f"x must have shape [batch, time, features], got {tuple(x.shape)}")
        out, state = self.gru(x, state)
        y = self.head(out)
        return (y, state) if return_state else y

    def step(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """One time step: ``x`` is ``[B, in_dim]``; returns ``(output [B, out_dim], state)``."""
        if x.dim() != 2:
            raise ValueError(f"x must have shape [batch, features], got {tuple(x.shape)}")
        y, state = self.forward(x.unsqueeze(1), state, return_state=True)
        return y.squeeze(1), state


class CausalTransformer(nn.Module):
    """A tiny decoder-only transformer over ``[B, T, in_dim]`` inputs with a causal mask,
    emitting ``[B, T, out_dim]``: each output attends to the whole *history* so far
    {Vaswani et al. 2017}.

    ``positional`` is "learned" (an embedding per position up to ``max_len``) or "none"
    (the causal mask alone tells positions apart, which lets it run past ``max_len``)."""

    def __init__(self, in_dim: int, out_dim: int, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, max_len: int = 256, positional: str = "learned",
                 dropout: float = 0.0):
        super().__init__()
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("d_model", d_model),
                            ("n_heads", n_heads), ("n_layers", n_layers), ("max_len", max_len)):
            check_positive_int(name, value)
        check_choice("positional", positional, ("learned", "none"))
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.max_len, self.positional = max_len, positional
        self.embed = nn.Linear(in_dim, d_model)
        self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02) if positional == "learned" else None
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=4 * d_model, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"x must have shape [batch, time, features], got {tuple(x.shape)}")
        t = x.shape[1]
        if self.pos is not None and t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len={self.max_len}")
        h = self.embed(x)
        if self.pos is not None:
            h = h + self.pos[:t]
        mask = torch.triu(torch.full((t, t), float("-inf"), device=x.device), diagonal=1)
        h = self.blocks(h, mask=mask, is_causal=True)
        return self.head(self.norm(h))


def train_supervised(
    model: nn.Module,
    make_batch: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    steps: int,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    clip_grad: float | None = 1.0,
    desc: str = "training",
    log_every: int = 0,
) -> list[float]:
    """Train ``model`` with Adam on freshly drawn batches; returns the loss per step.

    ``make_batch(generator)`` returns ``(inputs, targets)`` drawn from the given seeded
    generator (already on ``device`` or moved here), so the run is repeatable. A cosine
    learning-rate decay helps small models settle in few steps."""
    check_positive_int("steps", steps)
    device = check_device("device", device)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    losses: list[float] = []
    bar = progress(range(steps), desc=desc)
    for step in bar:
        x, y = make_batch(gen)
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log_every and step % log_every == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses
