"""Tests of mesakit.gridworld: dynamics, rewards, auto-reset, observations, level
distributions, the BFS oracle (against a plain Python BFS) and input validation."""
import re
from collections import deque

import pytest

import mesakit  # noqa: F401  (before torch, so its OMP_WAIT_POLICY default takes effect)
import torch

from mesakit.gridworld import (
    COLOURS,
    KINDS,
    GridWorld,
    LevelSpec,
    bfs_distances,
    shortest_path_lengths,
)

UP, DOWN, LEFT, RIGHT, STAY = range(5)
RED, BLUE, GREEN, YELLOW = range(4)
DOOR, KEY, BALL = range(3)


def open_walls(n, h=7, w=7):
    walls = torch.zeros(n, h, w, dtype=torch.bool)
    walls[:, 0] = walls[:, -1] = True
    walls[:, :, 0] = walls[:, :, -1] = True
    return walls


def hand_state(env, agent, objects, colours, kinds, walls=None):
    """Put the same hand-made level into every environment of ``env``."""
    n = env.num_envs
    walls = open_walls(n, env.height, env.width) if walls is None else walls
    return env.set_state(
        walls=walls,
        agent_pos=torch.tensor([agent] * n),
        object_pos=torch.tensor([objects] * n),
        object_colour=torch.tensor([colours] * n),
        object_kind=torch.tensor([kinds] * n),
    )


def python_bfs(free, sources):
    """Reference BFS on one grid (lists of lists), -1 where unreachable."""
    h, w = len(free), len(free[0])
    dist = [[-1] * w for _ in range(h)]
    queue = deque()
    for r in range(h):
        for c in range(w):
            if sources[r][c] and free[r][c]:
                dist[r][c] = 0
                queue.append((r, c))
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w and free[rr][cc] and dist[rr][cc] < 0:
                dist[rr][cc] = dist[r][c] + 1
                queue.append((rr, cc))
    return dist


# ------------------------------------------------------------------ dynamics
def test_moves_go_where_the_action_says():
    env = GridWorld(5, height=7, width=7, allow_stay=True, max_steps=50)
    hand_state(env, (3, 3), [(1, 1), (5, 5)], [RED, BLUE], [DOOR, KEY])
    obs, reward, done, info = env.step(torch.tensor([UP, DOWN, LEFT, RIGHT, STAY]))
    expected = torch.tensor([[2, 3], [4, 3], [3, 2], [3, 4], [3, 3]])
    assert torch.equal(env.agent_pos, expected)
    assert not done.any() and torch.equal(reward, torch.zeros(5))
    assert torch.equal(env.elapsed, torch.ones(5, dtype=torch.long))


def test_walls_block_moves():
    env = GridWorld(4, height=7, width=7)
    walls = open_walls(4)
    walls[:, 2, 3] = True  # an interior wall just above (3, 3)
    hand_state(env, (3, 3), [(5, 1), (5, 5)], [RED, BLUE], [DOOR, KEY], walls=walls)
    env.step(torch.tensor([UP, LEFT, LEFT, LEFT]))
    assert env.agent_pos[0].tolist() == [3, 3]  # blocked by the interior wall
    # walk env 1..3 into the left border: two free cells, then blocked
    for _ in range(3):
        env.step(torch.tensor([DOWN, LEFT, LEFT, LEFT]))
    assert env.agent_pos[1:, 1].tolist() == [1, 1, 1]
    assert env.agent_pos[0].tolist() == [5, 3]  # two moves down, then the bottom border


def test_reaching_the_goal_rewards_and_resets_only_that_env():
    env = GridWorld(3, height=7, width=7, step_penalty=0.01, seed=5)
    hand_state(env, (3, 3), [(3, 4), (1, 1)], [RED, BLUE], [DOOR, KEY])
    before_walls = env.walls
    obs, reward, done, info = env.step(torch.tensor([RIGHT, LEFT, UP]))
    assert done.tolist() == [True, False, False]
    assert info["success"].tolist() == [True, False, False]
    assert info["reached"].tolist() == [0, -1, -1]
    assert info["reached_colour"][0] == RED and info["reached_kind"][0] == DOOR
    assert torch.allclose(reward, torch.tensor([0.99, -0.01, -0.01]))
    assert info["episode_length"][0] == 1 and info["optimal_length"][0] == 1
    assert abs(float(info["episode_return"][0]) - 0.99) < 1e-6
    # env 0 got a fresh level; envs 1 and 2 kept theirs and just moved
    assert env.elapsed.tolist() == [0, 1, 1]
    assert torch.equal(env.walls[1:], before_walls[1:])
    assert env.agent_pos[1].tolist() == [3, 2] and env.agent_pos[2].tolist() == [2, 3]
    assert env.object_pos[1].tolist() == [[3, 4], [1, 1]]
    assert env.object_colour[0, 0] == RED  # the default LevelSpec: red door


def test_decoys_end_the_episode_without_reward_unless_disabled():
    env = GridWorld(1, height=7, width=7)
    hand_state(env, (3, 3), [(1, 1), (3, 4)], [RED, BLUE], [DOOR, KEY])
    _, reward, done, info = env.step(torch.tensor([RIGHT]))
    assert done.item() and reward.item() == 0.0
    assert info["terminated"].item() and not info["success"].item()
    assert info["reached"].item() == 1 and info["reached_colour"].item() == BLUE

    env = GridWorld(1, height=7, width=7, end_on_any_object=False)
    hand_state(env, (3, 3), [(1, 1), (3, 4)], [RED, BLUE], [DOOR, KEY])
    _, reward, done, info = env.step(torch.tensor([RIGHT]))
    assert not done.item() and info["reached"].item() == 1
    _, _, done, _ = env.step(torch.tensor([RIGHT]))
    assert not done.item() and env.agent_pos[0].tolist() == [3, 5]


def test_goal_can_be_a_colour():
    env = GridWorld(1, height=7, width=7, goal="red")
    hand_state(env, (3, 3), [(1, 1), (3, 4)], [BLUE, RED], [DOOR, KEY])
    assert env.goal_mask.tolist() == [[False, True]]
    _, reward, done, info = env.step(torch.tensor([RIGHT]))
    assert done.item() and reward.item() == 1.0 and info["success"].item()


def test_time_limit_truncates_and_auto_resets():
    env = GridWorld(2, height=7, width=7, max_steps=3)
    hand_state(env, (1, 3), [(5, 1), (5, 5)], [RED, BLUE], [DOOR, KEY])
    for t in range(3):
        _, reward, done, info = env.step(torch.tensor([UP, UP]))  # bump the top wall
        if t < 2:
            assert not done.any()
    assert done.all() and info["truncated"].all() and not info["terminated"].any()
    assert torch.equal(reward, torch.zeros(2))
    assert info["episode_length"].tolist() == [3, 3]
    assert env.elapsed.tolist() == [0, 0]


def test_auto_reset_keeps_every_level_valid():
    env = GridWorld(64, height=7, width=7, num_objects=3, layout="rooms", max_steps=8, seed=2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        env.step(torch.randint(0, 4, (64,), generator=gen))
        walls = env.walls.view(64, -1)
        agent = env.agent_pos[:, 0] * 7 + env.agent_pos[:, 1]
        objs = env.object_pos[..., 0] * 7 + env.object_pos[..., 1]
        assert not walls.gather(1, agent[:, None]).any()
        assert not walls.gather(1, objs).any()
        assert not (objs == agent[:, None]).any()  # objects end episodes: never under the agent
        assert (env.elapsed < 8).all()


# ------------------------------------------------------------------ observations
def check_obs_matches_state(env, obs):
    n, h, w = env.num_envs, env.height, env.width
    ch = env.channel_index
    assert obs.shape == (n, env.num_channels, h, w)
    assert torch.equal(obs[:, ch("wall")].bool(), env.walls)
    agent = torch.zeros(n, h, w, dtype=torch.bool)
    agent[torch.arange(n), env.agent_pos[:, 0], env.agent_pos[:, 1]] = True
    assert torch.equal(obs[:, ch("agent")].bool(), agent)
    for ids, names in ((env.object_colour, COLOURS), (env.object_kind, KINDS)):
        for value, name in enumerate(names):
            want = torch.zeros(n, h, w, dtype=torch.bool)
            for j in range(env.num_objects):
                sel = ids[:, j] == value
                rows = torch.arange(n)[sel]
                want[rows, env.object_pos[sel, j, 0], env.object_pos[sel, j, 1]] = True
            assert torch.equal(obs[:, ch(name)].bool(), want), name
    assert set(obs.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("copy_obs", [True, False])
def test_observation_channels_match_the_state(copy_obs):
    env = GridWorld(32, num_objects=3, layout="random", max_steps=10, copy_obs=copy_obs, seed=3)
    obs = env.reset()
    check_obs_matches_state(env, obs)
    gen = torch.Generator().manual_seed(1)
    for _ in range(25):
        obs, _, _, _ = env.step(torch.randint(0, 4, (32,), generator=gen))
        check_obs_matches_state(env, obs)


def test_copy_obs_false_returns_the_live_buffer_and_true_a_copy():
    env = GridWorld(4, copy_obs=True, seed=0)
    first = env.observe()
    env.step(env.oracle_actions())
    assert not torch.equal(first, env.observe())  # the kept copy did not change with the step
    env = GridWorld(4, copy_obs=False, seed=0)
    first = env.observe()
    env.step(env.oracle_actions())
    assert torch.equal(first, env.observe())  # same storage, updated in place


def test_egocentric_view_is_the_window_around_the_agent():
    env = GridWorld(6, height=7, width=9, num_objects=3, obs_mode="egocentric",
                    view_radius=2, seed=4)
    env.step(torch.randint(0, 4, (6,), generator=torch.Generator().manual_seed(0)))
    ego = env.observe()
    c = env.num_channels - 1
    assert ego.shape == (6, c * 25) == (6,) + env.obs_shape
    grid = env.grid_obs()
    keep = [0] + list(range(2, env.num_channels))
    for i in range(6):
        r0, c0 = env.agent_pos[i].tolist()
        want = torch.zeros(c, 5, 5)
        want[0] = 1.0  # outside the grid reads as wall
        for dr in range(-2, 3):
            for dc in range(-2, 3):
                rr, cc = r0 + dr, c0 + dc
                if 0 <= rr < 7 and 0 <= cc < 9:
                    want[:, dr + 2, dc + 2] = grid[i, keep, rr, cc]
        assert torch.equal(ego[i].view(c, 5, 5), want)


def test_cue_channel_and_cue_goal():
    env = GridWorld(8, levels=LevelSpec(decoy_kind="key", cue_prob=1.0), cue_channel=True,
                    cue_goal="key", seed=0)
    obs = env.observe()
    assert env.cue.all()
    assert obs[:, env.channel_index("cue")].eq(1).all()
    assert torch.equal(env.goal_mask, env.object_kind == KEY)
    env = GridWorld(8, levels=LevelSpec(cue_prob=0.0), cue_channel=True, cue_goal="key")
    assert not env.cue.any() and env.observe()[:, -1].eq(0).all()
    assert torch.equal(env.goal_mask, env.object_kind == DOOR)


def test_obs_dtype_uint8():
    env = GridWorld(4, obs_dtype=torch.uint8, seed=0)
    obs, _, _, _ = env.step(torch.zeros(4, dtype=torch.long))
    assert obs.dtype == torch.uint8
    check_obs_matches_state(env, obs.float())


# ------------------------------------------------------------------ level generation
def test_same_seed_same_run_and_different_seed_differs():
    def run(seed):
        env = GridWorld(16, layout="maze", num_objects=3, max_steps=12, seed=seed)
        gen = torch.Generator().manual_seed(9)
        out = [env.observe()]
        for _ in range(30):
            obs, reward, done, _ = env.step(torch.randint(0, 4, (16,), generator=gen))
            out += [obs, reward, done.float()]
        return out

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    env = GridWorld(16, layout="maze", num_objects=3, seed=7)
    first = env.observe()
    env.step(torch.zeros(16, dtype=torch.long))
    assert torch.equal(env.reset(seed=7), first)


@pytest.mark.parametrize("layout", ["open", "rooms", "maze", "random"])
def test_layouts_are_connected_with_a_border(layout):
    env = GridWorld(64, height=9, width=11 if layout != "maze" else 9, layout=layout,
                    num_objects=3, seed=1)
    walls = env.walls
    assert walls[:, 0].all() and walls[:, -1].all() and walls[:, :, 0].all() and walls[:, :, -1].all()
    start = torch.zeros_like(walls)
    start[torch.arange(64), env.agent_pos[:, 0], env.agent_pos[:, 1]] = True
    reach = bfs_distances(~walls, start) >= 0
    assert torch.equal(reach, ~walls)  # every free cell is reachable from the agent
    if layout == "maze":  # a perfect maze is a tree: free cells - 1 == adjacent free pairs
        free = ~walls
        edges = (free[:, 1:] & free[:, :-1]).sum((1, 2)) + (free[:, :, 1:] & free[:, :, :-1]).sum((1, 2))
        assert torch.equal(edges, free.sum((1, 2)) - 1)


def test_red_door_distributions():
    train = GridWorld(256, num_objects=3, levels=LevelSpec("red", "not red"), seed=0)
    assert (train.object_colour[:, 0] == RED).all()
    assert (train.object_colour[:, 1:] != RED).all()
    assert (train.object_kind[:, 0] == DOOR).all() and (train.object_kind[:, 1:] != DOOR).all()
    test = GridWorld(256, num_objects=3, levels=LevelSpec("blue", ("red", "any"), "key"), seed=0)
    assert (test.object_colour[:, 0] == BLUE).all() and (test.object_colour[:, 1] == RED).all()
    assert (test.object_kind[:, 1:] == KEY).all()
    assert len(test.object_colour[:, 2].unique()) == 4
    other = GridWorld(256, num_objects=4, levels=LevelSpec("any", "other than door"), seed=0)
    assert (other.object_colour[:, 1:] != other.object_colour[:, :1]).all()


def many_levels(times=5, **kwargs):
    """(spec index, door colour, door cell) of 400 * ``times`` levels, drawn in small
    batches by repeated resets (small tensors keep the test quick on 2 cores)."""
    env = GridWorld(400, height=7, width=7, **kwargs)
    out = []
    for _ in range(times):
        out.append((env.spec_index, env.object_colour[:, 0], env.object_pos[:, 0]))
        env.reset()
    return [torch.cat(parts) for parts in zip(*out)]


def test_mixture_and_corner_probabilities():
    q = 0.25
    mix = [(1 - q, LevelSpec("red", "not red", goal_in_corner=1.0)),
           (q, LevelSpec("blue", "red", goal_in_corner=0.0))]
    spec, door_colour, door = many_levels(levels=mix, seed=0)
    assert abs(spec.float().mean().item() - q) < 0.03  # 2000 draws: sd 0.01
    assert (door_colour[spec == 0] == RED).all() and (door_colour[spec == 1] == BLUE).all()
    assert (door[spec == 0] == torch.tensor([1, 5])).all()  # top_right interior corner
    in_corner = (door[spec == 1] == torch.tensor([1, 5])).all(1).float().mean().item()
    assert in_corner < 0.1  # uniform over 25 cells: 0.04
    _, _, door = many_levels(levels=LevelSpec(goal_in_corner=0.5, corner="bottom_left"), seed=1)
    frac = (door == torch.tensor([5, 1])).all(1).float().mean().item()
    assert abs(frac - (0.5 + 0.5 / 25)) < 0.04
    _, door_colour, _ = many_levels(levels=LevelSpec({"red": 3, "green": 1}), seed=2)
    assert abs((door_colour == RED).float().mean().item() - 0.75) < 0.03
    assert set(door_colour.unique().tolist()) == {RED, GREEN}


# ------------------------------------------------------------------ BFS and the oracle
def test_bfs_distances_match_python_bfs():
    gen = torch.Generator().manual_seed(0)
    free = torch.rand(20, 6, 8, generator=gen) > 0.3
    sources = torch.rand(20, 6, 8, generator=gen) > 0.92
    dist = bfs_distances(free, sources)
    for i in range(20):
        assert dist[i].tolist() == python_bfs(free[i].tolist(), sources[i].tolist())
    starts = torch.stack([torch.randint(0, 6, (20,), generator=gen),
                          torch.randint(0, 8, (20,), generator=gen)], 1)
    lengths = shortest_path_lengths(free, starts, sources)
    assert torch.equal(lengths, dist[torch.arange(20), starts[:, 0], starts[:, 1]])


def test_goal_distances_treat_ending_decoys_as_walls():
    env = GridWorld(1, height=7, width=7)
    walls = open_walls(1)
    walls[0, 2, 1:5] = True  # a wall with the only gap at (2, 5)
    hand_state(env, (5, 1), [(1, 1), (2, 5)], [RED, BLUE], [DOOR, KEY], walls=walls)
    assert env.shortest_path_lengths().item() == -1  # the decoy plugs the gap
    env = GridWorld(1, height=7, width=7, end_on_any_object=False)
    hand_state(env, (5, 1), [(1, 1), (2, 5)], [RED, BLUE], [DOOR, KEY], walls=walls)
    assert env.shortest_path_lengths().item() == 12  # 4 rows up, 4 columns out to the gap and 4 back
    want = python_bfs((~walls[0]).tolist(), [[(r, c) == (1, 1) for c in range(7)] for r in range(7)])
    assert env.goal_distances()[0].tolist() == want


@pytest.mark.parametrize("layout", ["open", "rooms", "maze", "random"])
def test_oracle_reaches_the_goal_in_the_bfs_distance(layout):
    env = GridWorld(96, height=9, width=9, num_objects=3, layout=layout, seed=11,
                    levels=[(0.5, LevelSpec()), (0.5, LevelSpec("blue", "red", goal_in_corner=1.0))])
    start = env.shortest_path_lengths()
    assert (start > 0).all()  # generation guarantees a reachable goal
    first_done = torch.full((96,), -1)
    for t in range(1, 81):
        _, reward, done, info = env.step(env.oracle_actions())
        assert info["success"][done].all() and (reward[done] == 1.0).all()
        assert torch.equal(info["episode_length"][done], info["optimal_length"][done])
        newly = done & (first_done < 0)
        first_done[newly] = t
        if (first_done >= 0).all():
            break
    assert torch.equal(first_done, start)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("kwargs, word", [
    (dict(num_envs=0), "num_envs"),
    (dict(height=4), "height"),
    (dict(width=3.5), "width"),
    (dict(layout="cave"), "layout"),
    (dict(layout="maze", height=8), "odd"),
    (dict(num_objects=0), "num_objects"),
    (dict(num_objects=30, height=5, width=5), "num_objects"),
    (dict(goal="exit"), "goal"),
    (dict(cue_goal="purple"), "cue_goal"),
    (dict(obs_mode="pixels"), "obs_mode"),
    (dict(view_radius=0), "view_radius"),
    (dict(max_steps=0), "max_steps"),
    (dict(wall_density=1.5), "wall_density"),
    (dict(device="tpu"), "device"),
    (dict(seed=-1), "seed"),
    (dict(obs_dtype=torch.int64), "obs_dtype"),
    (dict(end_on_any_object="yes"), "end_on_any_object"),
    (dict(levels="red"), "levels"),
    (dict(levels=[(1.0, "red")]), "levels[0]"),
    (dict(levels=[(-1.0, LevelSpec())]), "levels[0] weight"),
    (dict(levels=LevelSpec(door_colour="purple")), "door_colour"),
    (dict(levels=LevelSpec(door_colour="other than door")), "door_colour"),
    (dict(levels=LevelSpec(door_colour={"red": -1})), "door_colour"),
    (dict(levels=LevelSpec(door_colour={"red": 0})), "door_colour"),
    (dict(levels=LevelSpec(decoy_colour=("red", "blue"))), "decoy_colour"),
    (dict(levels=LevelSpec(decoy_kind="not dragon")), "decoy_kind"),
    (dict(levels=LevelSpec(goal_in_corner=1.2)), "goal_in_corner"),
    (dict(levels=LevelSpec(corner="middle")), "corner"),
    (dict(levels=LevelSpec(cue_prob=-0.1)), "cue_prob"),
])
def test_bad_constructor_arguments_raise(kwargs, word):
    args = dict(num_envs=2)
    args.update(kwargs)
    n = args.pop("num_envs")
    with pytest.raises(ValueError, match=re.escape(word)):
        GridWorld(n, **args)


def test_bad_step_and_state_arguments_raise():
    env = GridWorld(3)
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.tensor([0, 1, 4]))  # no stay action by default
    with pytest.raises(ValueError, match="actions"):
        env.step([0, 1, 2])
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=1.5)
    with pytest.raises(ValueError, match="index"):
        env.render_text(3)
    with pytest.raises(ValueError, match="name"):
        env.channel_index("purple")
    good = dict(walls=open_walls(3, 9, 9), agent_pos=torch.tensor([[4, 4]] * 3),
                object_pos=torch.tensor([[[1, 1], [2, 2]]] * 3),
                object_colour=torch.zeros(3, 2, dtype=torch.long),
                object_kind=torch.zeros(3, 2, dtype=torch.long))
    env.set_state(**good)
    for key, value, word in [
        ("walls", torch.zeros(3, 9, 9, dtype=torch.bool), "border"),
        ("agent_pos", torch.tensor([[0, 4]] * 3), "free"),
        ("agent_pos", torch.tensor([[1, 1]] * 3), "distinct"),
        ("agent_pos", torch.tensor([[9, 4]] * 3), "inside"),
        ("object_pos", torch.zeros(3, 3, 2, dtype=torch.long), "object_pos"),
        ("object_colour", torch.full((3, 2), 4), "object_colour"),
        ("object_kind", torch.full((3, 2), -1), "object_kind"),
    ]:
        with pytest.raises(ValueError, match=word):
            env.set_state(**{**good, key: value})
    with pytest.raises(ValueError, match="free"):
        bfs_distances(torch.ones(2, 3), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="sources"):
        bfs_distances(torch.ones(2, 3, 3, dtype=torch.bool), torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="starts"):
        shortest_path_lengths(torch.ones(2, 3, 3, dtype=torch.bool),
                              torch.tensor([[0, 5], [0, 0]]), torch.ones(2, 3, 3, dtype=torch.bool))


def test_render_text_and_plot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = GridWorld(2, height=7, width=7)
    hand_state(env, (3, 3), [(1, 1), (5, 5)], [RED, BLUE], [DOOR, KEY])
    text = env.render_text(1)
    lines = text.splitlines()
    assert len(lines) == 7 and lines[0] == "#" * 14
    assert lines[1][2:4] == "Rd" and lines[5][10:12] == "bk" and lines[3][6:8] == " @"
    ax = env.plot(0, title="a level")
    assert ax.get_title() == "a level"
    plt.close("all")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda_like_on_cpu_rules():
    env = GridWorld(256, num_objects=3, layout="rooms", device="cuda", seed=0)
    assert env.observe().device.type == "cuda"
    start = env.shortest_path_lengths()
    first_done = torch.full((256,), -1, device="cuda")
    for t in range(1, 60):
        obs, reward, done, info = env.step(env.oracle_actions())
        assert info["success"][done].all()
        first_done[done & (first_done < 0)] = t
    assert torch.equal(first_done, start)
    check_obs_matches_state_cuda = obs.cpu()
    assert check_obs_matches_state_cuda.shape == (256, env.num_channels, 9, 9)
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.zeros(256, dtype=torch.long))  # a CPU tensor for a CUDA env


# ---------------------------------------------------------------- blocks (batched sweeps)
def test_each_block_behaves_like_its_own_gridworld():
    """Block b of a blocked GridWorld equals GridWorld(N/B, levels=block_levels[b],
    seed=seeds[b]) step for step: the environments of a batched sweep's agents."""
    specs = [LevelSpec("red", "not red"),
             [(0.5, LevelSpec("red", "not red")), (0.5, LevelSpec("any", "any"))],
             LevelSpec("blue", "red", goal_in_corner=1.0)]
    kw = dict(height=7, width=7, num_objects=3, layout="rooms", max_steps=12)
    batched = GridWorld(3 * 40, blocks=3, block_levels=specs, seed=[5, 9, 2], **kw)
    singles = [GridWorld(40, levels=sp, seed=s, **kw) for sp, s in zip(specs, [5, 9, 2])]
    gen = torch.Generator().manual_seed(0)
    obs = batched.observe()
    for step in range(200):   # long enough for every block's pool to be refilled
        assert torch.equal(obs, torch.cat([e.observe() for e in singles])), step
        actions = torch.randint(0, 4, (120,), generator=gen)
        obs, reward, done, info = batched.step(actions)
        outs = [e.step(actions[40 * b:40 * (b + 1)]) for b, e in enumerate(singles)]
        assert torch.equal(reward, torch.cat([o[1] for o in outs]))
        assert torch.equal(done, torch.cat([o[2] for o in outs]))


def test_block_arguments_are_validated():
    with pytest.raises(ValueError, match="blocks"):
        GridWorld(10, blocks=3)
    with pytest.raises(ValueError, match="block_levels"):
        GridWorld(12, blocks=3, block_levels=[LevelSpec()] * 2)
    with pytest.raises(ValueError, match="seed"):
        GridWorld(12, blocks=3, seed=[1, 2])
    with pytest.raises(ValueError, match="kind_features"):
        GridWorld(12, kind_features="two-hot")


def test_conjunctive_kind_features_need_both_channels_for_a_door():
    env = GridWorld(1, kind_features="conjunctive", num_objects=3, seed=0)
    walls = env.walls
    env.set_state(walls=walls, agent_pos=torch.tensor([[1, 1]]),
                  object_pos=torch.tensor([[[2, 2], [3, 3], [4, 4]]]),
                  object_colour=torch.tensor([[0, 1, 2]]), object_kind=torch.tensor([[0, 1, 2]]))
    obs = env.grid_obs()[0]
    frame, handle = obs[env.channel_index("frame")], obs[env.channel_index("handle")]
    assert (frame[2, 2], handle[2, 2]) == (1, 1)      # door: both
    assert (frame[3, 3], handle[3, 3]) == (0, 1)      # key: handle only
    assert (frame[4, 4], handle[4, 4]) == (1, 0)      # ball: frame only
    assert "door" not in env.channel_names
