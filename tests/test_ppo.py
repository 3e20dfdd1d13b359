"""mesakit.ppo: batched agents train as they would alone; the rollout buffer is reused;
the counter-based random numbers are uniform and batch-independent; bad input fails."""
import pytest
import torch

from mesakit.gridworld import GridWorld, LevelSpec
from mesakit.ppo import BatchedMLPPolicy, RolloutBuffer, hash_uniform, train_ppo

KW = dict(height=6, width=6, num_objects=2, obs_mode="egocentric", view_radius=3,
          kind_features="conjunctive", max_steps=12, copy_obs=False)
SPECS = [LevelSpec("red", "not red"), LevelSpec("any", "any", goal_in_corner=1.0)]


def _env(specs, seeds, per=8):
    return GridWorld(per * len(specs), blocks=len(specs), block_levels=specs, seed=seeds, **KW)


def test_a_batched_run_equals_the_agents_trained_one_by_one():
    env = _env(SPECS, [3, 4])
    batched = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [11, 12], hidden=16)
    log = train_ppo(batched, env, updates=4, rollout=8, epochs=2, minibatches=2)
    for i, (spec, env_seed, seed) in enumerate(zip(SPECS, [3, 4], [11, 12])):
        alone_env = _env([spec], [env_seed])
        alone = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [seed], hidden=16)
        alone_log = train_ppo(alone, alone_env, updates=4, rollout=8, epochs=2, minibatches=2)
        for name, p in batched.named_parameters():
            torch.testing.assert_close(p[i], getattr(alone, name)[0], atol=1e-5, rtol=1e-4)
        assert log.curve("success")[:, i].nan_to_num(-1).tolist() == pytest.approx(
            alone_log.curve("success")[:, 0].nan_to_num(-1).tolist())


def test_member_and_select_copy_the_right_agent():
    pol = BatchedMLPPolicy(10, 4, [1, 2, 3], hidden=8)
    one = pol.member(2)
    assert one.members == 1 and one.seeds == [3]
    x = torch.randn(6, 10)
    logits, value, _ = pol(x)
    l1, v1, _ = one(x[4:])
    torch.testing.assert_close(logits[4:], l1)
    torch.testing.assert_close(value[4:], v1)
    # initial weights depend on the agent's own seed only
    torch.testing.assert_close(BatchedMLPPolicy(10, 4, [3], hidden=8).w1[0], pol.w1[2])


def test_training_reaches_the_goal_and_writes_into_one_buffer(monkeypatch):
    buffers = []
    real_init = RolloutBuffer.__init__

    def spy(self, *a, **k):
        real_init(self, *a, **k)
        buffers.append([t.data_ptr() for t in self.storage()])
    monkeypatch.setattr(RolloutBuffer, "__init__", spy)
    env = _env([LevelSpec("red", "not red")], [0], per=32)
    pol = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [0], hidden=32)
    log = train_ppo(pol, env, updates=25, rollout=16)
    assert len(buffers) == 1, "one rollout buffer for the whole run"
    first, last = log.curve("success")[:3].nanmean(), log.curve("success")[-3:].nanmean()
    assert last > 0.8 and last > first + 0.2, (float(first), float(last))


def test_hash_uniform_is_uniform_and_batch_independent():
    u = hash_uniform(torch.arange(200_000), 7)
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    assert torch.equal(hash_uniform(torch.arange(5, 10), 7), u[5:10])
    assert not torch.equal(hash_uniform(torch.arange(5), 8), u[:5])
    with pytest.raises(ValueError, match="keys"):
        hash_uniform(torch.ones(3))


def test_bad_arguments_are_named():
    env = _env(SPECS, [0, 1])
    pol = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [0, 1], hidden=8)
    with pytest.raises(ValueError, match="updates"):
        train_ppo(pol, env, updates=0)
    with pytest.raises(ValueError, match="minibatches"):
        train_ppo(pol, env, updates=1, minibatches=3)
    with pytest.raises(ValueError, match="num_envs"):
        train_ppo(BatchedMLPPolicy(env.obs_shape[0], 4, [0, 1, 2], hidden=8), env, updates=1)
    with pytest.raises(ValueError, match="clip"):
        train_ppo(pol, env, updates=1, clip=-1)
    for bad in ([1.0], [1.0, 0.0], [1.0, float("nan")], [1.0, True], 2.0):
        with pytest.raises(ValueError, match="lr_scale"):
            train_ppo(pol, env, updates=1, lr_scale=bad)
    with pytest.raises(ValueError, match="seeds"):
        BatchedMLPPolicy(10, 4, [], hidden=8)
    with pytest.raises(ValueError, match="obs_dim"):
        BatchedMLPPolicy(0, 4, [0])
    with pytest.raises(ValueError, match="obs"):
        pol(torch.zeros(3, env.obs_shape[0]))
    with pytest.raises(ValueError, match="device"):
        BatchedMLPPolicy(10, 4, [0], device="cuda:7")
    with pytest.raises(ValueError, match="steps"):
        RolloutBuffer(0, 4, (3,))
