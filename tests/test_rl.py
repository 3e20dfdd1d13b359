"""The A2C trainer: its pieces against brute force, learning trivial tasks (feed-forward
and recurrent), determinism, and bad inputs."""
import pytest
import torch
from torch import nn

from mesakit import rl


class CueEnv:
    """One-step task: the observation is a one-hot cue; reward 1 for the cued action."""

    num_actions = 2

    def __init__(self, n=128, seed=0):
        self.num_envs = n
        self.gen = torch.Generator().manual_seed(seed)

    def reset(self):
        self.cue = torch.randint(2, (self.num_envs,), generator=self.gen)
        return nn.functional.one_hot(self.cue, 2).float()

    def step(self, actions):
        reward = (actions == self.cue).float()
        return self.reset(), reward, torch.ones(self.num_envs, dtype=torch.bool), {}


class RememberEnv:
    """Two steps: a cue shown at step 0, a blank at step 1; reward 1 for naming the cue at
    step 1. Only a policy with memory can do better than chance."""

    num_actions = 2

    def __init__(self, n=128, seed=0):
        self.num_envs = n
        self.gen = torch.Generator().manual_seed(seed)

    def reset(self):
        self.t = 0
        self.cue = torch.randint(2, (self.num_envs,), generator=self.gen)
        return torch.cat([nn.functional.one_hot(self.cue, 2).float(), torch.zeros(self.num_envs, 1)], 1)

    def step(self, actions):
        if self.t == 0:
            self.t = 1
            obs = torch.zeros(self.num_envs, 3)
            obs[:, 2] = 1.0
            return obs, torch.zeros(self.num_envs), torch.zeros(self.num_envs, dtype=torch.bool)
        reward = (actions == self.cue).float()
        return self.reset(), reward, torch.ones(self.num_envs, dtype=torch.bool)


class Linear(nn.Module):
    def __init__(self, obs_dim=2):
        super().__init__()
        self.layer = nn.Linear(obs_dim, 3)

    def initial_state(self, batch, device=None):
        return None

    def forward(self, obs, state):
        y = self.layer(obs)
        return y[:, :2], y[:, 2], None


class Recurrent(nn.Module):
    def __init__(self, hidden=16):
        super().__init__()
        self.cell = nn.GRUCell(3, hidden)
        self.head = nn.Linear(hidden, 3)
        self.hidden = hidden

    def initial_state(self, batch, device=None):
        return torch.zeros(batch, self.hidden, device=device)

    def forward(self, obs, state):
        h = self.cell(obs, state)
        y = self.head(h)
        return y[:, :2], y[:, 2], h


def test_gae_matches_brute_force():
    torch.manual_seed(0)
    s, n, gamma = 5, 3, 0.9
    rewards, values, last = torch.rand(s, n), torch.rand(s, n), torch.rand(n)
    dones = torch.zeros(s, n, dtype=torch.bool)
    dones[2, 0] = True
    # lambda = 1: discounted return to the episode end (or bootstrapped) minus the value.
    adv, ret = rl.gae_advantages(rewards, values, dones, last, gamma=gamma, gae_lambda=1.0)
    for j in range(n):
        for t in range(s):
            g, disc, k = 0.0, 1.0, t
            while True:
                g += disc * rewards[k, j].item()
                if dones[k, j]:
                    break
                disc *= gamma
                k += 1
                if k == s:
                    g += disc * last[j].item()
                    break
            assert ret[t, j].item() == pytest.approx(g, abs=1e-5)
    # lambda = 0: one-step TD errors.
    adv0, _ = rl.gae_advantages(rewards, values, dones, last, gamma=gamma, gae_lambda=0.0)
    nxt = torch.cat([values[1:], last[None]])
    td = rewards + gamma * nxt * (~dones).float() - values
    assert torch.allclose(adv0, td, atol=1e-6)
    assert torch.allclose(ret - values, adv)


def test_sample_actions_follows_the_softmax():
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]])).repeat(30000, 1)
    a = rl.sample_actions(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(a, minlength=3).float() / a.numel()
    assert torch.allclose(freq, torch.tensor([0.2, 0.5, 0.3]), atol=0.01)
    assert torch.equal(a, rl.sample_actions(logits, torch.Generator().manual_seed(0)))


def test_reset_state_replaces_finished_rows():
    policy = Recurrent(4)
    state = torch.ones(3, 4)
    out = rl.reset_state(policy, state, torch.tensor([False, True, False]))
    assert (out[1] == 0).all() and (out[[0, 2]] == 1).all()
    assert rl.reset_state(policy, None, torch.tensor([True])) is None


def test_a2c_learns_a_one_step_task():
    torch.manual_seed(0)
    policy = Linear()
    log = rl.train_a2c(policy, CueEnv(), updates=60, rollout=4, lr=3e-2, seed=0)
    assert sum(log.mean_reward[-10:]) / 10 > 0.9
    assert sum(log.mean_reward[:5]) / 5 < 0.7


def test_a2c_learns_a_memory_task_with_a_recurrent_policy():
    torch.manual_seed(0)
    policy = Recurrent()
    log = rl.train_a2c(policy, RememberEnv(), updates=60, rollout=4, lr=3e-2, gamma=1.0,
                       gae_lambda=1.0, ent_coef=0.0, seed=0)
    # Reward comes only at step 1, so the mean reward per step tops out at 0.5.
    assert sum(log.mean_reward[-10:]) / 10 > 0.45


def test_a2c_is_deterministic():
    def run():
        torch.manual_seed(3)
        policy = Linear()
        log = rl.train_a2c(policy, CueEnv(seed=1), updates=20, rollout=3, lr=1e-2, seed=5)
        return log, [p.detach().clone() for p in policy.parameters()]
    (log1, p1), (log2, p2) = run(), run()
    assert log1.mean_reward == log2.mean_reward and log1.entropy == log2.entropy
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))


@pytest.mark.parametrize("kwargs,name", [
    (dict(updates=0), "updates"),
    (dict(rollout=0), "rollout"),
    (dict(gamma=1.5), "gamma"),
    (dict(gae_lambda=-0.1), "gae_lambda"),
    (dict(lr=0.0), "lr"),
    (dict(ent_coef=-1.0), "ent_coef"),
    (dict(seed=-1), "seed"),
    (dict(callback=3), "callback"),
    (dict(device="tpu"), "device"),
    (dict(gamma_final=1.5), "gamma_final"),
    (dict(reward_scale=0.0), "reward_scale"),
    (dict(device="not a device"), "device"),
])
def test_bad_arguments_raise_value_error(kwargs, name):
    args = dict(updates=1, rollout=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        rl.train_a2c(Linear(), CueEnv(), **args)


def test_bad_env_or_policy_raise_value_error():
    with pytest.raises(ValueError, match="env"):
        rl.train_a2c(Linear(), object(), updates=1, rollout=1)
    with pytest.raises(ValueError, match="policy"):
        rl.train_a2c("policy", CueEnv(), updates=1, rollout=1)


def test_policy_members_must_divide_the_environments():
    policy = Linear()
    policy.members = 3
    with pytest.raises(ValueError, match="multiple of policy.members"):
        rl.train_a2c(policy, CueEnv(n=128), updates=1, rollout=1)
    policy.members = 0
    with pytest.raises(ValueError, match="members"):
        rl.train_a2c(policy, CueEnv(n=128), updates=1, rollout=1)
