"""A lesson's numbers do not depend on how many cores the machine has: ``mk.setup``
fixes torch to one thread whatever ``OMP_NUM_THREADS`` says, so the same seed trains the
same network bit for bit in a process started with one thread or with two."""
from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
import torch
import mesakit as mk
from mesakit.nets import MLP, train_supervised

device = mk.setup(0)
assert torch.get_num_threads() == 1, torch.get_num_threads()
model = MLP(32, 128, 8, depth=3)

def make_batch(gen):
    x = torch.randn(512, 32, generator=gen)
    return x, torch.sin(x[:, :8] * 3) + x[:, 8:16] ** 2

train_supervised(model, make_batch, torch.nn.functional.mse_loss, steps=30, lr=3e-3, seed=0)
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
print(flat.double().sum().item(), flat.abs().double().sum().item(), flat[:5].tolist())
"""


def run_with_threads(n: int) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n), "MESAKIT_PROGRESS": "0"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_same_numbers_at_one_and_two_threads():
    assert run_with_threads(1) == run_with_threads(2)


def test_setup_fixes_the_thread_count():
    import torch

    import mesakit as mk

    before = torch.get_num_threads()
    try:
        mk.setup(0, threads=2)
        assert torch.get_num_threads() == 2
        mk.setup(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
