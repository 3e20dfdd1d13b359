"""mesakit.irl: the grid MDP matches the gridworld's moves, the soft visitation is the
exact expectation over paths, and maximum-entropy IRL recovers a goal from demonstrations."""
import itertools
import math

import pytest
import torch

from mesakit import alignment, irl
from mesakit.gridworld import GridWorld, LevelSpec

KW = dict(height=7, width=7, num_objects=3, layout="open", obs_mode="egocentric", view_radius=4,
          kind_features="conjunctive", max_steps=28)


def _room():
    walls = torch.zeros(5, 6, dtype=torch.bool)
    walls[0], walls[-1], walls[:, 0], walls[:, -1] = True, True, True, True
    walls[2, 3] = True
    absorbing = torch.zeros_like(walls)
    absorbing[1, 4] = True
    return walls, absorbing


def test_grid_mdp_moves_stay_at_walls_and_absorb_at_objects():
    walls, absorbing = _room()
    p = irl.grid_mdp(walls, absorbing)
    assert p.shape == (30, 4, 30) and torch.allclose(p.sum(2), torch.ones(30, 4, dtype=torch.float64))
    cell = lambda r, c: r * 6 + c  # noqa: E731
    assert p[cell(1, 1), 0].argmax() == cell(1, 1)          # up into the border: stay
    assert p[cell(1, 1), 1].argmax() == cell(2, 1)          # down
    assert p[cell(2, 2), 3].argmax() == cell(2, 2)          # right into the interior wall: stay
    assert p[cell(1, 1), 3].argmax() == cell(1, 2)          # right
    assert (p[cell(1, 4)].argmax(1) == cell(1, 4)).all()    # absorbing


def test_grid_mdp_agrees_with_the_gridworld_step():
    for seed in range(6):
        env = GridWorld(1, levels=LevelSpec("blue", "red"), seed=seed, **KW)
        p = irl.level_mdp(env)
        walls, pos, colour, kind = env.walls, env.object_pos, env.object_colour, env.object_kind
        objects = pos[0, :, 0] * 7 + pos[0, :, 1]
        for cell in (~walls[0]).flatten().nonzero().flatten().tolist():
            if cell in objects.tolist():
                continue
            for a in range(4):
                env.set_state(walls=walls, agent_pos=torch.tensor([[cell // 7, cell % 7]]), object_pos=pos,
                              object_colour=colour, object_kind=kind)
                _, _, _, info = env.step(torch.tensor([a]))
                landed = (int(objects[info["reached"][0]]) if info["reached"][0] >= 0
                          else int(env.agent_pos[0, 0]) * 7 + int(env.agent_pos[0, 1]))
                assert int(p[cell, a].argmax()) == landed, (seed, cell, a)


def _brute_force_visitation(reward, p, start, horizon):
    """Enumerate every (state, action) path of a tiny deterministic MDP: the MaxEnt model
    puts probability proportional to exp(sum of rewards of the T states) on each action
    sequence (with the dynamics' branching already deterministic)."""
    s, a, _ = p.shape
    visits = torch.zeros(s, dtype=torch.float64)
    for s0 in range(s):
        if start[s0] == 0:
            continue
        paths, weights = [], []
        for actions in itertools.product(range(a), repeat=horizon - 1):
            states = [s0]
            for act in actions:
                states.append(int(p[states[-1], act].argmax()))
            paths.append(states)
            weights.append(float(sum(reward[x] for x in states)))
        w = torch.softmax(torch.tensor(weights, dtype=torch.float64), 0)
        for states, wi in zip(paths, w):
            for x in states:
                visits[x] += start[s0] * wi
    return visits


def test_soft_visitation_is_the_maxent_path_distribution():
    walls = torch.zeros(4, 5, dtype=torch.bool)
    walls[0], walls[-1], walls[:, 0], walls[:, -1] = True, True, True, True
    absorbing = torch.zeros_like(walls)
    absorbing[2, 3] = True
    p = irl.grid_mdp(walls, absorbing)
    gen = torch.Generator().manual_seed(0)
    reward = torch.randn(20, generator=gen, dtype=torch.float64)
    start = torch.zeros(20, dtype=torch.float64)
    start[1 * 5 + 1], start[2 * 5 + 1] = 0.5, 0.5
    for horizon in (1, 2, 4):
        got = irl.soft_visitation(reward, p, start, horizon)
        assert torch.allclose(got, _brute_force_visitation(reward, p, start, horizon), atol=1e-10)
        assert math.isclose(float(got.sum()), horizon)


def test_soft_visitation_is_stable_with_huge_rewards():
    walls, absorbing = _room()
    p = irl.grid_mdp(walls, absorbing)
    reward = torch.zeros(30, dtype=torch.float64)
    reward[1 * 6 + 4] = 500.0
    start = torch.zeros(30, dtype=torch.float64)
    start[3 * 6 + 1] = 1.0
    v = irl.soft_visitation(reward, p, start, 10)
    assert torch.isfinite(v).all() and v[1 * 6 + 4] > 4.9      # 5 moves to the goal, then it stays


def test_maxent_irl_recovers_the_goal_of_oracle_demonstrations():
    room = GridWorld(1, levels=LevelSpec("blue", "red"), seed=4, **KW)
    pos = room.object_pos[0]
    occupied = room.walls[0].clone()
    occupied[pos[:, 0], pos[:, 1]] = True
    free = (~occupied).nonzero()
    env = GridWorld(len(free), levels=LevelSpec("blue", "red"), seed=0, **KW)
    env.set_state(walls=room.walls.expand(len(free), -1, -1).clone(), agent_pos=free[:1].expand(len(free), -1).clone(),
                  object_pos=room.object_pos.expand(len(free), -1, -1).clone(),
                  object_colour=room.object_colour.expand(len(free), -1).clone(),
                  object_kind=room.object_kind.expand(len(free), -1).clone())
    paths = irl.play_level(alignment.OraclePolicy(env), env, free, 12, greedy=True)
    assert paths.shape == (len(free), 12)
    door = int(pos[0, 0]) * 7 + int(pos[0, 1])
    assert (paths[:, -1] == door).all(), "the oracle reaches the door within 12 states and stays"
    start = torch.zeros(49, dtype=torch.float64)
    start[free[:, 0] * 7 + free[:, 1]] = 1.0 / len(free)
    empirical = irl.empirical_visitation(paths, 49)
    assert math.isclose(float(empirical.sum()), 12)
    reward = irl.maxent_irl(irl.level_mdp(room), start, empirical, 12, steps=100, lr=0.5)
    assert int(reward.argmax()) == door
    model = irl.soft_visitation(reward, irl.level_mdp(room), start, 12)
    before = irl.soft_visitation(torch.zeros(49, dtype=torch.float64), irl.level_mdp(room), start, 12)
    assert (model - empirical).abs().sum() < 0.5 * (before - empirical).abs().sum()


def test_play_level_copies_another_env_level_and_is_seeded():
    room = GridWorld(1, levels=LevelSpec("blue", "red"), seed=4, **KW)
    env = GridWorld(6, levels=LevelSpec("blue", "red"), seed=9, **KW)
    starts = torch.tensor([[3, 3]] * 6)
    policy = alignment.RandomPolicy(4)
    a = irl.play_level(policy, env, starts, 8, level=room, seed=1)
    b = irl.play_level(policy, env, starts, 8, level=room, seed=1)
    assert torch.equal(a, b) and (a[:, 0] == 3 * 7 + 3).all()
    assert torch.equal(env.walls[0], room.walls[0])
    steps = (a[:, 1:] - a[:, :-1]).abs()
    assert bool(((steps == 0) | (steps == 1) | (steps == 7)).all()), "one move at a time"


@pytest.mark.parametrize("call, name", [
    (lambda: irl.grid_mdp(torch.zeros(3, 3), torch.zeros(3, 3, dtype=torch.bool)), "walls"),
    (lambda: irl.grid_mdp(torch.zeros(3, 3, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.bool)), "absorbing"),
    (lambda: irl.soft_visitation(torch.zeros(3), torch.ones(3, 2, 3) / 3, torch.ones(3) / 3, 0), "horizon"),
    (lambda: irl.soft_visitation(torch.zeros(4), torch.ones(3, 2, 3) / 3, torch.ones(3) / 3, 2), "reward"),
    (lambda: irl.soft_visitation(torch.zeros(3), torch.ones(3, 2, 3), torch.ones(3) / 3, 2), "transitions"),
    (lambda: irl.soft_visitation(torch.zeros(3), torch.ones(3, 2, 3) / 3, torch.ones(3), 2), "start"),
    (lambda: irl.empirical_visitation(torch.tensor([[0, 5]]), 3), "states"),
    (lambda: irl.maxent_irl(torch.ones(3, 2, 3) / 3, torch.ones(3) / 3, torch.ones(3), 2, lr=0.0), "lr"),
    (lambda: irl.maxent_irl(torch.ones(3, 2, 3) / 3, torch.ones(3) / 3, torch.ones(2), 2), "empirical"),
    (lambda: irl.play_level(alignment.RandomPolicy(4), GridWorld(2, **KW), torch.zeros(3, 2, dtype=torch.long), 5),
     "starts"),
    (lambda: irl.play_level(alignment.RandomPolicy(4), GridWorld(2, **KW), torch.ones(2, 2, dtype=torch.long), 99),
     "horizon"),
])
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
