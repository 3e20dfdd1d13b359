"""Tests for mesakit.speed_prior: bad input, the task generator (the table of all mazes), the
exact algorithm against brute force, pools, the batched networks and determinism."""
import itertools
import math

import pytest
import torch

from mesakit import mazes as mz
from mesakit import speed_prior as sp


@pytest.fixture(scope="module")
def table():
    return sp.maze_table(3)


def _brute_reachable(k, east, south):
    """Depth-first search over rooms, written independently of the library."""
    seen, stack = {(0, 0)}, [(0, 0)]
    while stack:
        r, c = stack.pop()
        moves = []
        if c < k - 1 and east[r][c]: moves.append((r, c + 1))
        if c > 0 and east[r][c - 1]: moves.append((r, c - 1))
        if r < k - 1 and south[r][c]: moves.append((r + 1, c))
        if r > 0 and south[r - 1][c]: moves.append((r - 1, c))
        for m in moves:
            if m not in seen:
                seen.add(m); stack.append(m)
    return (k - 1, k - 1) in seen


@pytest.mark.parametrize("k", [2, 3])
def test_table_enumerates_every_maze_once_with_brute_force_answers(k):
    t = sp.maze_table(k)
    D = 2 * k * (k - 1)
    assert len(t) == 2 ** D and t.doors.shape == (2 ** D, D) and t.rooms.shape == (2 ** D, k * k, 5)
    assert len({tuple(row.tolist()) for row in t.doors}) == 2 ** D         # all distinct
    assert torch.equal(t.free[:, 1::2, 1::2], torch.ones(2 ** D, k, k, dtype=torch.bool))
    for i in range(0, 2 ** D, max(1, 2 ** D // 300)):
        east = t.free[i, 1::2, 2:-1:2].tolist()
        south = t.free[i, 2:-1:2, 1::2].tolist()
        assert bool(t.labels[i]) == _brute_reachable(k, east, south)
    # the doors input is the image's doors, +1 open, -1 shut
    n_e = k * (k - 1)
    assert torch.equal(t.doors[:, :n_e] > 0, t.free[:, 1::2, 2:-1:2].reshape(-1, n_e))
    assert torch.equal(t.doors[:, n_e:] > 0, t.free[:, 2:-1:2, 1::2].reshape(-1, n_e))


def test_known_mazes(table):
    all_open, all_shut = 2 ** 12 - 1, 0
    assert bool(table.labels[all_open]) and not bool(table.labels[all_shut])
    assert table.rooms[:, 0, 4].eq(1).all() and table.rooms[:, 1:, 4].eq(0).all()   # source flag
    # outer walls are never open doors
    assert table.rooms[:, :3, 0].eq(0).all() and table.rooms[:, ::3, 3].eq(0).all()
    assert table.neighbours.tolist()[4] == [1, 5, 7, 3] and table.neighbours.tolist()[0] == [9, 1, 3, 9]


def test_room_flood_fill_matches_bfs_and_needs_rounds(table):
    assert torch.equal(sp.room_flood_fill(table), table.labels)
    assert torch.equal(table.labels, mz.reachable(table.free, table.source)[:, 5, 5])
    # the target is 4 moves away at least: fewer rounds never reach it
    assert not sp.room_flood_fill(table, steps=3).any()
    assert (sp.room_flood_fill(table, steps=4) != table.labels).any()           # winding mazes need more
    assert sp.majority_rate(table.labels) == pytest.approx(1 - table.labels.float().mean().item())


def test_bad_input(table):
    with pytest.raises(ValueError, match="k"):
        sp.maze_table(4)
    with pytest.raises(ValueError, match="device"):
        sp.maze_table(3, device="tpu")
    with pytest.raises(ValueError, match="table"):
        sp.room_flood_fill("maze")
    with pytest.raises(ValueError, match="steps"):
        sp.room_flood_fill(table, steps=-1)
    with pytest.raises(ValueError, match="pool_sizes"):
        sp.pool_splits(10, [10], [0])
    with pytest.raises(ValueError, match="pool_sizes"):
        sp.pool_splits(10, [3, 4], [0])
    with pytest.raises(ValueError, match="seeds"):
        sp.pool_splits(10, [], [])
    with pytest.raises(ValueError, match="hidden"):
        sp.BatchedMLP(12, 0, [0])
    with pytest.raises(ValueError, match="neighbours"):
        sp.BatchedRoomRNN(torch.zeros(9, 3), 8, 4, [0])
    with pytest.raises(ValueError, match="iterations"):
        sp.BatchedRoomRNN(table.neighbours, 8, 0, [0])
    perm, sz = sp.pool_splits(len(table), [8], [0])
    y = table.labels[None]
    net = sp.BatchedMLP(12, 4, [0])
    with pytest.raises(ValueError, match="labels"):
        sp.train_on_pools(net, table.doors, table.labels, perm, sz, steps=1)
    with pytest.raises(ValueError, match="steps"):
        sp.train_on_pools(net, table.doors, y, perm, sz, steps=0)
    with pytest.raises(ValueError, match="lr"):
        sp.train_on_pools(net, table.doors, y, perm, sz, steps=1, lr=-1.0)
    with pytest.raises(ValueError, match="optimizer"):
        sp.train_on_pools(net, table.doors, y, perm, sz, steps=1, optimizer="adam")
    with pytest.raises(ValueError, match="true_labels"):
        sp.pool_accuracy(net, table.doors, y, perm, sz, true_labels=table.labels)
    with pytest.raises(ValueError, match="level"):
        sp.crossover([1, 2], [0.1, 0.2], 2.0)
    with pytest.raises(ValueError, match="pool_sizes"):
        sp.crossover([2, 1], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="labels"):
        sp.majority_rate(torch.zeros(0))


def test_pool_splits_disjoint_and_seeded():
    perm, sz = sp.pool_splits(100, [5, 50], [1, 2])
    assert sz.tolist() == [5, 50]
    for row in perm:
        assert sorted(row.tolist()) == list(range(100))
    again, _ = sp.pool_splits(100, [5, 50], [1, 2])
    assert torch.equal(perm, again) and not torch.equal(perm[0], perm[1])


def test_crossover_interpolates_in_log_p():
    assert sp.crossover([4, 16, 64], [0.5, 0.6, 0.9], 0.5) == 4
    assert sp.crossover([4, 16, 64], [0.5, 0.6, 0.7], 0.9) == math.inf
    assert sp.crossover([4, 16, 64], [0.5, 0.6, 0.8], 0.7) == pytest.approx(32.0)


def test_pool_accuracy_counts_pool_and_new_exactly(table):
    """A fake model that answers from a fixed table: accuracies are exact shares."""
    class Fixed(torch.nn.Module):
        def __init__(self, answers):
            super().__init__()
            self.answers = answers                                   # [E, N] bool
            self.lookup = {tuple(r.tolist()): i for i, r in enumerate(table.doors)}

        def forward(self, x):
            ids = torch.tensor([self.lookup[tuple(r.tolist())] for r in x[0]])
            return torch.where(self.answers[:, ids], 1.0, -1.0)

    N = len(table)
    perm, sz = sp.pool_splits(N, [100], [3])
    answers = table.labels.clone()
    answers[perm[0, :10]] ^= True          # 10 wrong in the pool
    answers[perm[0, 100:120]] ^= True      # 20 wrong among the new mazes
    pool, new = sp.pool_accuracy(Fixed(answers[None]), table.doors, table.labels[None], perm, sz, chunk=512)
    assert pool.item() == pytest.approx(0.9) and new.item() == pytest.approx(1 - 20 / (N - 100))


def test_networks_match_a_single_member_and_are_deterministic(table):
    seeds = [5, 6]
    mlp = sp.BatchedMLP(12, 8, seeds)
    alone = sp.BatchedMLP(12, 8, [6])
    x = table.doors[:50]
    out = mlp(x.expand(2, *x.shape))
    assert out.shape == (2, 50)
    assert torch.allclose(out[1], alone(x[None])[0])
    rnn = sp.BatchedRoomRNN(table.neighbours, 4, 6, seeds)
    xr = table.rooms[:50]
    assert rnn(xr.expand(2, *xr.shape)).shape == (2, 50)
    assert torch.allclose(rnn(xr.expand(2, *xr.shape))[0], sp.BatchedRoomRNN(table.neighbours, 4, 6, [5])(xr[None])[0])


def _train_small(table):
    perm, sz = sp.pool_splits(len(table), [8, 8, 1500], [0, 1, 2])
    y = table.labels.expand(3, -1)
    net = sp.BatchedMLP(12, 32, [0, 1, 2])
    losses = sp.train_on_pools(net, table.doors, y, perm, sz, steps=300, batch_size=64, seed=4)
    return net, losses, sp.pool_accuracy(net, table.doors, y, perm, sz)


def test_training_memorizes_small_pools_and_is_deterministic(table):
    net, losses, (pool, new) = _train_small(table)
    assert losses[-1] < losses[0]
    assert (pool[:2] == 1).all()                        # 8 mazes: fitted
    assert new[2] > 0.85 and new[2] > new[:2].max()     # 1500 mazes: generalizes better
    net2, losses2, (pool2, new2) = _train_small(table)
    assert losses == losses2 and torch.equal(pool, pool2) and torch.equal(new, new2)


def test_members_do_not_interact(table):
    """Member 0 trained alone equals member 0 trained beside another (its own batches come
    from the shared generator, so give it the same draws: same E and layout)."""
    perm, sz = sp.pool_splits(len(table), [16, 16], [0, 1])
    y = table.labels.expand(2, -1)
    a = sp.BatchedMLP(12, 8, [0, 1])
    b = sp.BatchedMLP(12, 8, [0, 1])
    with torch.no_grad():
        b.w1[1].zero_()                                   # perturb member 1 only
    sp.train_on_pools(a, table.doors, y, perm, sz, steps=20, seed=0)
    sp.train_on_pools(b, table.doors, y, perm, sz, steps=20, seed=0)
    assert torch.allclose(a.w1[0], b.w1[0]) and not torch.allclose(a.w1[1], b.w1[1])
