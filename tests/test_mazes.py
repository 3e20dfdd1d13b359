"""Tests of mesakit.mazes: maze generator, BFS against a plain Python BFS, the flood-fill
step, the networks, deterministic training and the analysis helpers."""
from collections import deque

import pytest
import torch

from mesakit import mazes as mz


def python_bfs(free, source, diagonal=False):
    """Plain, obviously correct BFS on one maze (lists of lists), -1 where unreachable."""
    H, W = len(free), len(free[0])
    dist = [[-1] * W for _ in range(H)]
    queue = deque()
    for i in range(H):
        for j in range(W):
            if source[i][j]:
                dist[i][j] = 0
                queue.append((i, j))
    moves = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if diagonal:
        moves += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    while queue:
        i, j = queue.popleft()
        for di, dj in moves:
            a, b = i + di, j + dj
            if 0 <= a < H and 0 <= b < W and free[a][b] and dist[a][b] < 0:
                dist[a][b] = dist[i][j] + 1
                queue.append((a, b))
    return dist


def random_grids(n, h, w, seed):
    """Random obstacle grids (not mazes) with one free source each: a harder test of BFS."""
    gen = torch.Generator().manual_seed(seed)
    free = torch.rand(n, h, w, generator=gen) < 0.6
    idx = torch.randint(0, h * w, (n,), generator=gen)
    source = torch.zeros(n, h, w, dtype=torch.bool)
    source.view(n, -1)[torch.arange(n), idx] = True
    return free | source, source


@pytest.mark.parametrize("diagonal", [False, True])
def test_bfs_matches_python_bfs_on_mazes_and_grids(diagonal):
    cases = [mz.random_mazes(20, size, seed=size) for size in (5, 7, 11)]
    cases.append(random_grids(30, 6, 9, seed=3))
    for free, source in cases:
        dist = mz.bfs_distances(free, source, diagonal=diagonal)
        assert dist.dtype == torch.int64 and dist.shape == free.shape
        for b in range(free.shape[0]):
            expected = python_bfs(free[b].tolist(), source[b].tolist(), diagonal)
            assert dist[b].tolist() == expected


def test_diagonal_moves_do_not_change_reachability_in_mazes():
    free, source = mz.random_mazes(50, 13, seed=4)
    assert torch.equal(mz.bfs_distances(free, source, diagonal=True) >= 0, mz.reachable(free, source))


def test_flood_fill_step_semantics_on_a_hand_example():
    free = torch.tensor([[[1, 1, 0],
                          [0, 1, 1],
                          [1, 0, 1]]], dtype=torch.bool)
    reached = torch.tensor([[[0, 0, 0],
                             [0, 1, 0],
                             [1, 0, 0]]], dtype=torch.bool)
    out = mz.flood_fill_step(reached, free)
    expected = torch.tensor([[[0, 1, 0],
                              [0, 1, 1],
                              [1, 0, 0]]], dtype=torch.bool)
    assert torch.equal(out, expected)
    # a reached wall pixel is not kept, though by the formula its free neighbours are;
    # diagonal neighbours only count when asked for
    wall_reached = torch.tensor([[[0, 0, 1], [0, 0, 0], [0, 0, 0]]], dtype=torch.bool)
    assert torch.equal(mz.flood_fill_step(wall_reached, free),
                       torch.tensor([[[0, 1, 0], [0, 0, 1], [0, 0, 0]]], dtype=torch.bool))
    diag = mz.flood_fill_step(torch.tensor([[[0, 0, 0], [0, 1, 0], [0, 0, 0]]], dtype=torch.bool),
                              free, diagonal=True)
    assert torch.equal(diag, free & True)
    # 0/1 float inputs are accepted
    assert torch.equal(mz.flood_fill_step(reached.float(), free.float()), expected)


def test_flood_fill_iterated_to_convergence_equals_reachable():
    for free, source in (mz.random_mazes(40, 15, seed=7), random_grids(40, 10, 10, seed=8)):
        dist = mz.bfs_distances(free, source)
        reached = source.clone()
        d = 0
        while True:
            nxt = mz.flood_fill_step(reached, free)
            if torch.equal(nxt, reached):
                break
            d += 1
            # after d steps: exactly the pixels at distance <= d
            assert torch.equal(nxt, (dist >= 0) & (dist <= d))
            reached = nxt
        assert torch.equal(reached, mz.reachable(free, source))
        assert d == int(dist.max())


def test_random_mazes_are_valid_and_seeded():
    free, source = mz.random_mazes(64, 9, seed=0)
    assert free.shape == source.shape == (64, 9, 9)
    assert free.dtype == source.dtype == torch.bool
    assert torch.equal(source.flatten(1).sum(1), torch.ones(64, dtype=torch.long))
    assert not bool((source & ~free).any())  # the source is free ...
    rows, cols = torch.nonzero(source)[:, 1], torch.nonzero(source)[:, 2]
    assert bool((rows % 2 == 1).all() and (cols % 2 == 1).all())  # ... and a room
    assert bool(free[:, 1::2, 1::2].all())  # every room is free
    assert not bool(free[:, ::2, ::2].any())  # even-even pixels are walls
    assert not bool(free[:, 0].any() or free[:, -1].any() or free[:, :, 0].any() or free[:, :, -1].any())
    again = mz.random_mazes(64, 9, seed=0)
    assert torch.equal(free, again[0]) and torch.equal(source, again[1])
    assert not torch.equal(free, mz.random_mazes(64, 9, seed=1)[0])
    closed, _ = mz.random_mazes(5, 7, open_prob=0.0, seed=0)
    assert int(closed.sum()) == 5 * 9  # rooms only
    open_, _ = mz.random_mazes(5, 7, open_prob=1.0, seed=0)
    assert int(open_.sum()) == 5 * (9 + 12)  # rooms and all doors
    f, s = mz.random_mazes(3, 5, seed=0, device=torch.device("cpu"))
    assert f.device.type == "cpu"


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: mz.random_mazes(0, 9, seed=0), "n"),
        (lambda: mz.random_mazes(4, 8, seed=0), "size"),
        (lambda: mz.random_mazes(4, 3, seed=0), "size"),
        (lambda: mz.random_mazes(4, 9, open_prob=1.5, seed=0), "open_prob"),
        (lambda: mz.random_mazes(4, 9, seed=-1), "seed"),
        (lambda: mz.random_mazes(4, 9, seed=0, device="nonsense"), "device"),
        (lambda: mz.bfs_distances(torch.ones(2, 5, 5, dtype=torch.bool),
                                  torch.zeros(2, 5, 4, dtype=torch.bool)), "source"),
        (lambda: mz.bfs_distances(torch.zeros(1, 5, 5, dtype=torch.bool),
                                  torch.ones(1, 5, 5, dtype=torch.bool)), "source"),
        (lambda: mz.bfs_distances(torch.ones(5, 5, dtype=torch.bool),
                                  torch.ones(5, 5, dtype=torch.bool)), "free"),
        (lambda: mz.flood_fill_step([[1]], torch.ones(1, 1, 1)), "reached"),
        (lambda: mz.flood_fill_step(torch.full((1, 2, 2), 0.5), torch.ones(1, 2, 2)), "reached"),
        (lambda: mz.RecurrentMazeNet(0), "width"),
        (lambda: mz.FeedForwardMazeNet(8, 0), "depth"),
        (lambda: mz.train_maze_net(mz.RecurrentMazeNet(4), steps=0), "steps"),
        (lambda: mz.train_maze_net(mz.RecurrentMazeNet(4), steps=1, noise=-1.0), "noise"),
        (lambda: mz.train_maze_net(torch.nn.Linear(2, 2), steps=1), "net"),
        (lambda: mz.spearman(torch.arange(3.0), torch.arange(4.0)), "x and y"),
        (lambda: mz.exact_accuracy(torch.ones(2, 3, 3), torch.ones(2, 3, 4)), "pred and target"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_networks_shapes_and_iterations():
    free, source = mz.random_mazes(3, 9, seed=0)
    x = mz.maze_inputs(free, source)
    assert x.shape == (3, 2, 9, 9)
    net = mz.RecurrentMazeNet(6, seed=0)
    logits, h = net(x, 5)
    assert logits.shape == (3, 9, 9) and h.shape == (3, 6, 9, 9)
    # running 5 iterations = running 2, then 3 more from that state
    _, h2 = net(x, 2)
    logits_b, _ = net(x, 3, state=h2)
    assert torch.allclose(logits, logits_b, atol=1e-6)
    ff = mz.FeedForwardMazeNet(6, 4, seed=0)
    assert ff(x)[0].shape == (3, 9, 9)
    assert mz.count_parameters(ff) == 4 * (mz.count_parameters(net) - 7) + 7  # 4 blocks, one head
    pred = mz.predict(net, free, source, iterations=4)
    assert pred.dtype == torch.bool and not bool((pred & ~free).any())  # walls never reachable
    with pytest.raises(ValueError, match="iterations"):
        mz.predict(net, free, source)


def test_training_is_deterministic_and_learns_something():
    kwargs = dict(steps=4, batch_size=4, size=5, iterations=3, seed=3)
    a, b = mz.RecurrentMazeNet(4, seed=1), mz.RecurrentMazeNet(4, seed=1)
    la, lb = mz.train_maze_net(a, **kwargs), mz.train_maze_net(b, **kwargs)
    assert la == lb and len(la) == 4
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c, d = mz.FeedForwardMazeNet(4, 3, seed=1), mz.FeedForwardMazeNet(4, 3, seed=1)
    assert mz.train_maze_net(c, **kwargs) == mz.train_maze_net(d, **kwargs)
    # a different seed gives different weights
    e = mz.RecurrentMazeNet(4, seed=1)
    mz.train_maze_net(e, **{**kwargs, "seed": 4})
    assert not torch.equal(next(e.parameters()), next(a.parameters()))


def test_trace_thinking_agrees_with_predict():
    free, source = mz.random_mazes(12, 9, seed=5)
    net = mz.RecurrentMazeNet(4, seed=2)
    mz.train_maze_net(net, steps=5, batch_size=8, size=7, iterations=4, seed=0)
    acc, change = mz.trace_thinking(net, free, source, 6, batch_size=5)
    assert acc.shape == (6,) and change.shape == free.shape
    target = mz.reachable(free, source)
    for t in (1, 3, 6):
        pred = mz.predict(net, free, source, iterations=t)
        assert abs(float(acc[t - 1]) - mz.exact_accuracy(pred, target)) < 1e-6
    final = mz.predict(net, free, source, iterations=6)
    assert torch.equal(change >= 0, final)
    assert bool((change <= 6).all())


def test_spearman_and_slope():
    x = torch.arange(10.0)
    assert mz.spearman(x, x ** 3) == pytest.approx(1.0)
    assert mz.spearman(x, -x) == pytest.approx(-1.0)
    # ties get average ranks: compare with a hand computation
    a, b = torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 2.0, 4.0])
    ra, rb = torch.tensor([1.0, 2.5, 2.5, 4.0]), torch.tensor([1.0, 3.0, 2.0, 4.0])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    expected = float((ra * rb).sum() / (ra.norm() * rb.norm()))
    assert mz.spearman(a, b) == pytest.approx(expected)
    slope, intercept = mz.fit_slope(x, 2 * x + 1)
    assert slope == pytest.approx(2.0) and intercept == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mz.spearman(torch.ones(5), x[:5])


def test_batched_training_equals_training_each_net_alone():
    kwargs = dict(steps=5, batch_size=6, size=7, iterations=4, warm_start_factor=3)
    for make, extra in ((lambda s: mz.RecurrentMazeNet(5, seed=s), {}),
                        (lambda s: mz.RecurrentMazeNet(5, seed=s), {"progressive": False, "noise": 0.0}),
                        (lambda s: mz.FeedForwardMazeNet(5, 3, seed=s), {})):
        nets = [make(s) for s in (0, 1, 2)]
        losses = mz.train_maze_nets(nets, seeds=[4, 9, 13], **kwargs, **extra)
        assert len(losses) == 3 and all(len(l) == 5 for l in losses)
        for i, seed in enumerate((4, 9, 13)):
            alone = make(i)
            l_alone = mz.train_maze_net(alone, seed=seed, **kwargs, **extra)
            assert l_alone == pytest.approx(losses[i], abs=1e-5)
            for p, q in zip(alone.parameters(), nets[i].parameters()):
                assert torch.allclose(p, q, atol=1e-5)
        # the members did not all learn the same thing
        assert not torch.equal(nets[0].head.weight, nets[1].head.weight)


def test_progressive_false_scores_only_the_answer_after_exactly_the_training_iterations():
    free, source = mz.random_mazes(6, 7, seed=4)  # the first batch train_maze_net draws with seed 4
    target = mz.reachable(free, source).float()
    net = mz.RecurrentMazeNet(5, seed=1)
    with torch.no_grad():
        logits, _ = net(mz.maze_inputs(free, source), 4)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    expected = float((loss * free).sum() / free.sum())
    plain = mz.train_maze_net(mz.RecurrentMazeNet(5, seed=1), steps=1, batch_size=6, size=7, iterations=4,
                              progressive=False, noise=0.0, seed=4)
    assert plain[0] == pytest.approx(expected, rel=1e-5)
    # the progressive loss averages in a second term, scored at another iteration count
    recipe = mz.train_maze_net(mz.RecurrentMazeNet(5, seed=1), steps=1, batch_size=6, size=7, iterations=4,
                               noise=0.0, seed=4)
    assert abs(recipe[0] - expected) > 1e-4


def test_fast_path_agrees_with_the_modules():
    free, source = mz.random_mazes(10, 13, seed=6)
    x = mz.maze_inputs(free, source)
    net = mz.RecurrentMazeNet(6, seed=3)
    mz.train_maze_net(net, steps=3, batch_size=4, size=7, iterations=3, seed=0)
    ff = mz.FeedForwardMazeNet(6, 3, seed=3)
    with torch.no_grad():
        for t in (1, 5, 9):
            logits, _ = net(x, t)
            assert torch.equal(mz.predict(net, free, source, iterations=t), (logits > 0) & free)
        logits, _ = ff(x)
    assert torch.equal(mz.predict(ff, free, source, batch_size=3), (logits > 0) & free)


def test_steps_needed_is_the_reach_a_perfect_flood_fill_needs():
    free, source = mz.random_mazes(60, 11, seed=2)
    for diagonal in (False, True):
        need = mz.steps_needed(free, source, diagonal=diagonal)
        assert need.dtype == torch.int64 and need.shape == (60,)
        for b in range(3):
            dist = python_bfs(free[b].tolist(), source[b].tolist(), diagonal)
            assert int(need[b]) == max(max(row) for row in dist)
        target = mz.reachable(free, source)
        reached = source.clone()
        for t in range(1, 12):
            reached = mz.flood_fill_step(reached, free, diagonal=diagonal)
            solved = (reached == target).flatten(1).all(1)
            assert torch.equal(solved, need <= t)
    assert bool((mz.steps_needed(free, source, diagonal=True) <= mz.steps_needed(free, source)).all())


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: mz.train_maze_nets([mz.RecurrentMazeNet(4)], seeds=[0, 1], steps=1), "seeds"),
        (lambda: mz.train_maze_nets([mz.RecurrentMazeNet(4), mz.RecurrentMazeNet(5)], seeds=[0, 1]), "nets"),
        (lambda: mz.train_maze_nets([mz.RecurrentMazeNet(4), mz.FeedForwardMazeNet(4, 2)], seeds=[0, 1]), "nets"),
        (lambda: mz.train_maze_nets([], seeds=[]), "nets"),
        (lambda: mz.train_maze_nets(mz.RecurrentMazeNet(4), seeds=[0]), "nets"),
        (lambda: mz.train_maze_nets([mz.RecurrentMazeNet(4)], seeds=[-1]), "seeds"),
        (lambda: mz.train_maze_net(mz.RecurrentMazeNet(4), steps=1, progressive="no"), "progressive"),
        (lambda: mz.train_maze_net(mz.RecurrentMazeNet(4), steps=1, device="nonsense"), "device"),
        (lambda: mz.RecurrentMazeNet(4, device="nonsense"), "device"),
        (lambda: mz.FeedForwardMazeNet(4, 2, device="tpu"), "device"),
        (lambda: mz.predict(torch.nn.Linear(2, 2), torch.ones(1, 5, 5), torch.ones(1, 5, 5)), "net"),
    ],
)
def test_bad_training_inputs_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_the_same_net_twice_is_refused():
    net = mz.RecurrentMazeNet(4)
    with pytest.raises(ValueError, match="nets"):
        mz.train_maze_nets([net, net], seeds=[0, 1], steps=1)
