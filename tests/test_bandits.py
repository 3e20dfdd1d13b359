"""Bernoulli bandits, their baselines (checked against brute force and each other), and
the meta-learning environment and policy."""
import functools
import math

import pytest
import torch

import mesakit as mk
from mesakit import bandits as B


# ---------------------------------------------------------------------------- bandits
def test_sample_arm_probs_shape_range_mean_and_seed():
    p = B.sample_arm_probs(20000, 3, a=2.0, b=6.0, seed=1)
    assert p.shape == (20000, 3) and p.dtype == torch.float32
    assert (p >= 0).all() and (p <= 1).all()
    assert abs(p.mean().item() - 0.25) < 0.01                     # Beta(2, 6) has mean 1/4
    assert torch.equal(p, B.sample_arm_probs(20000, 3, a=2.0, b=6.0, seed=1))
    assert not torch.equal(p, B.sample_arm_probs(20000, 3, a=2.0, b=6.0, seed=2))
    u = B.sample_arm_probs(20000, 2, seed=0)                       # Uniform(0, 1)
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.005


def test_reward_frequencies_match_probabilities():
    probs = torch.tensor([[0.1, 0.5, 0.9]]).repeat(30000, 1)
    bandits = B.BernoulliBandits(probs, seed=0)
    for arm, p in enumerate([0.1, 0.5, 0.9]):
        r = bandits.step(torch.full((30000,), arm))
        assert set(r.unique().tolist()) <= {0.0, 1.0}
        assert abs(r.mean().item() - p) < 0.012, (arm, r.mean().item())


def test_same_seed_same_reward_draws():
    probs = B.sample_arm_probs(50, 2, seed=3)
    a = torch.zeros(50, dtype=torch.long)
    r1 = B.BernoulliBandits(probs, seed=5).step(a)
    r2 = B.BernoulliBandits(probs, seed=5).step(a)
    assert torch.equal(r1, r2)


# ---------------------------------------------------------------------------- baselines
def test_ucb1_tries_untried_arms_then_follows_the_formula():
    s = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 1.0, 0.0]])
    f = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0]])
    # Row 0: nothing tried -> arm 0; row 1: arm 0 tried -> arm 1 (lowest untried).
    t = torch.tensor([0, 1, 8])
    a = B.ucb1_action(s, f, t)
    n = torch.tensor([4.0, 2.0, 2.0])
    score = torch.tensor([3.0, 1.0, 0.0]) / n + torch.sqrt(2 * math.log(8) / n)
    assert a.tolist() == [0, 1, int(score.argmax())]
    assert a.dtype == torch.long
    # Ties go to the lowest index; an int t works too.
    tie = B.ucb1_action(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 1.0]]), 4)
    assert tie.tolist() == [0]


def test_thompson_is_seeded_and_samples_the_posterior():
    s = torch.zeros(40000, 2)
    f = torch.zeros(40000, 2)
    s[:, 0] = 1.0                  # arm 0 ~ Beta(2, 1), arm 1 ~ Beta(1, 1): P(arm 0) = 2/3
    a1 = B.thompson_action(s, f, 1.0, 1.0, generator=mk.make_generator(4))
    a2 = B.thompson_action(s, f, 1.0, 1.0, generator=mk.make_generator(4))
    assert torch.equal(a1, a2)
    assert abs((a1 == 0).float().mean().item() - 2 / 3) < 0.01
    # It is exactly argmax of sample_beta's draw of the posterior, from the same generator.
    g = mk.make_generator(4)
    theta = B.sample_beta(1.0 + s, 1.0 + f, tuple(s.shape), generator=g)
    assert torch.equal(theta.argmax(1), a1)
    # Overwhelming evidence: always the good arm.
    sure = B.thompson_action(torch.tensor([[40.0, 0.0]]), torch.tensor([[0.0, 40.0]]),
                             generator=mk.make_generator(0))
    assert sure.tolist() == [0]


def test_greedy_tries_untried_first_and_breaks_ties_at_random():
    s = torch.tensor([[1.0, 0.0, 0.0]]).repeat(2000, 1)
    f = torch.tensor([[0.0, 0.0, 1.0]]).repeat(2000, 1)
    a = B.greedy_action(s, f, generator=mk.make_generator(0))
    assert (a == 1).all()                                   # arm 1 untried
    s2 = torch.tensor([[1.0, 1.0, 0.0]]).repeat(2000, 1)
    f2 = torch.tensor([[1.0, 1.0, 2.0]]).repeat(2000, 1)
    a2 = B.greedy_action(s2, f2, generator=mk.make_generator(0))
    assert set(a2.tolist()) == {0, 1} and abs((a2 == 0).float().mean().item() - 0.5) < 0.05
    assert B.greedy_action(s2[:1], f2[:1]).tolist() == [0]  # no generator: lowest index


def _brute_force_bayes(k, horizon, a, b):
    @functools.lru_cache(maxsize=None)
    def value(counts):
        if sum(counts) == horizon:
            return 0.0
        best = -1.0
        for j in range(k):
            s, f = counts[2 * j], counts[2 * j + 1]
            p = (a + s) / (a + b + s + f)
            win, lose = list(counts), list(counts)
            win[2 * j] += 1
            lose[2 * j + 1] += 1
            best = max(best, p * (1 + value(tuple(win))) + (1 - p) * value(tuple(lose)))
        return best
    return value


@pytest.mark.parametrize("k,horizon,a,b", [(2, 1, 1.0, 1.0), (2, 5, 1.0, 1.0), (2, 6, 0.5, 2.0), (3, 4, 1.0, 1.0)])
def test_bayes_optimal_dp_matches_brute_force(k, horizon, a, b):
    table = B.bayes_optimal_table(k, horizon, prior_a=a, prior_b=b)
    brute = _brute_force_bayes(k, horizon, a, b)
    assert table.value == pytest.approx(brute(tuple([0] * 2 * k)), abs=1e-12)
    # A few intermediate belief states, through state_value.
    s = torch.tensor([[1.0, 0.0] + [0.0] * (k - 2), [0.0, 1.0] + [0.0] * (k - 2)])
    f = torch.tensor([[0.0, 1.0] + [0.0] * (k - 2), [1.0, 0.0] + [0.0] * (k - 2)])
    if horizon >= 2:
        got = table.state_value(s, f)
        for row in range(2):
            counts = tuple(int(x) for pair in zip(s[row].tolist(), f[row].tolist()) for x in pair)
            assert got[row].item() == pytest.approx(brute(counts), abs=1e-12)


def test_bayes_optimal_value_matches_simulation_and_beats_thompson():
    k, horizon, n = 2, 10, 20000
    table = B.bayes_optimal_table(k, horizon)
    probs = B.sample_arm_probs(n, k, seed=7)
    bayes = B.run_policy(B.bayes_optimal_policy(k, horizon, table=table), probs, horizon, seed=8)
    thompson = B.run_policy(B.thompson_policy(), probs, horizon, seed=8)
    mb, mt = B.summarize(bayes), B.summarize(thompson)
    assert abs(mb.mean_total - table.value) < 1.5 * mb.ci95      # the DP's value is what it gets
    assert table.value > mt.mean_total                               # exact value above the sample
    diff, ci = B.paired_difference(bayes, thompson)
    assert diff > ci, (diff, ci)                                     # and clearly so, paired


def test_ucb1_and_thompson_learn_easy_bandits():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]).repeat(300, 1)
    horizon = 100
    m = {name: B.summarize(B.run_policy(p, probs, horizon, seed=1))
         for name, p in [("random", B.random_policy()), ("ucb1", B.ucb1_policy()),
                         ("thompson", B.thompson_policy())]}
    for name in ("ucb1", "thompson"):
        assert m[name].mean_total > m["random"].mean_total + 10 * m["random"].ci95
        assert m[name].mean_regret < 0.3 * m["random"].mean_regret, (name, m[name].mean_regret)
        assert m[name].best_arm_rate[-10:].mean() > 0.9
    assert abs(m["random"].best_arm_rate.mean().item() - 0.5) < 0.02


def test_run_policy_shapes_and_metrics():
    probs = B.sample_arm_probs(100, 3, seed=0)
    run = B.run_policy(B.greedy_policy(0.1), probs, 7, seed=0)
    assert run.actions.shape == (100, 7) and run.rewards.shape == (100, 7)
    assert run.actions.dtype == torch.long and ((run.actions >= 0) & (run.actions < 3)).all()
    m = B.summarize(run)
    assert m.best_arm_rate.shape == (7,) and m.n == 100 and m.ci95 > 0
    assert m.mean_total == pytest.approx(run.rewards.sum(1).mean().item(), rel=1e-6)
    again = B.run_policy(B.greedy_policy(0.1), probs, 7, seed=0)
    assert torch.equal(run.actions, again.actions) and torch.equal(run.rewards, again.rewards)


# ---------------------------------------------------------------------------- meta-learning
def test_meta_env_episodes_and_observations():
    env = B.MetaBanditEnv(6, 3, 4, seed=0)
    obs = env.reset()
    assert obs.shape == (6, 7) and (obs[:, :6] == 0).all() and (obs[:, 6] == 0).all()
    first = env.probs.clone()
    for t in range(4):
        a = torch.full((6,), 2)
        obs, r, done = env.step(a)
        assert done.dtype == torch.bool and bool(done.all()) == (t == 3)
        if t < 3:
            slot = 4 + r.long()                                   # one-hot of (arm 2, reward)
            assert (obs[:, :6].argmax(1) == slot).all() and (obs[:, :6].sum(1) == 1).all()
            assert torch.allclose(obs[:, 6], torch.full((6,), (t + 1) / 4))
    assert (obs[:, :6] == 0).all()                                # a new episode starts
    assert not torch.equal(first, env.probs)                      # on fresh bandits


@pytest.mark.parametrize("memory", [True, False])
def test_rnn_policy_rollout_matches_stepping(memory):
    from mesakit.rl import evaluate_stepwise
    torch.manual_seed(0)
    net = B.BanditRNNPolicy(2, 16, memory=memory)
    obs = torch.rand(6, 5, 5)
    dones = torch.zeros(6, 5, dtype=torch.bool)
    dones[-1] = True
    h0 = torch.randn(5, 1, 16)
    fast = net.evaluate_rollout(obs, h0, dones)
    slow = evaluate_stepwise(net, obs, h0, dones)
    assert torch.allclose(fast[0], slow[0], atol=1e-6) and torch.allclose(fast[1], slow[1], atol=1e-6)


def test_memoryless_policy_ignores_the_past():
    torch.manual_seed(0)
    net = B.BanditRNNPolicy(2, 16, memory=False)
    obs = torch.tensor([[1.0, 0, 0, 0, 0.5], [0, 0, 0, 1.0, 0.5]])
    lg, v, _ = net(obs, torch.randn(2, 1, 16))
    assert torch.allclose(lg[0], lg[1]) and torch.allclose(v[0], v[1])
    probs = B.sample_arm_probs(50, 2, seed=0)
    run = B.run_policy(B.net_policy(net), probs, 5, seed=0)
    assert run.actions.shape == (50, 5)


def test_train_meta_learner_is_deterministic_and_frozen():
    net1, log1 = B.train_meta_learner(2, 5, hidden=8, batch=16, updates=3, seed=1)
    net2, log2 = B.train_meta_learner(2, 5, hidden=8, batch=16, updates=3, seed=1)
    assert log1.mean_reward == log2.mean_reward
    assert all(torch.equal(p, q) for p, q in zip(net1.parameters(), net2.parameters()))
    assert not any(p.requires_grad for p in net1.parameters())


# ---------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("call,name", [
    (lambda: B.sample_arm_probs(0, 2), "n"),
    (lambda: B.sample_arm_probs(5, 1), "k"),
    (lambda: B.sample_arm_probs(5, 2, a=-1.0), "a"),
    (lambda: B.sample_arm_probs(5, 2, b=0), "b"),
    (lambda: B.BernoulliBandits(torch.tensor([[0.5, 1.5]])), "probs"),
    (lambda: B.BernoulliBandits(torch.tensor([0.5, 0.5])), "probs"),
    (lambda: B.BernoulliBandits(torch.tensor([[0.5, 0.5]])).step(torch.tensor([2])), "actions"),
    (lambda: B.BernoulliBandits(torch.tensor([[0.5, 0.5]])).step(torch.tensor([0.0])), "actions"),
    (lambda: B.ucb1_action(torch.zeros(2, 2), torch.zeros(3, 2), 0), "successes and failures"),
    (lambda: B.ucb1_action(torch.zeros(2, 2), torch.zeros(2, 2), -1), "t"),
    (lambda: B.ucb1_action(-torch.ones(2, 2), torch.zeros(2, 2), 1), "successes"),
    (lambda: B.thompson_action(torch.zeros(2, 2), torch.zeros(2, 2), generator=None), "generator"),
    (lambda: B.thompson_action(torch.zeros(2, 2), torch.zeros(2, 2), 0.0, 1.0,
                               generator=mk.make_generator(0)), "prior_a"),
    (lambda: B.greedy_action(torch.zeros(2, 2), torch.zeros(2, 2), epsilon=1.5), "epsilon"),
    (lambda: B.greedy_action(torch.zeros(2, 2), torch.zeros(2, 2), epsilon=0.1), "generator"),
    (lambda: B.bayes_optimal_table(3, 30), "horizon"),
    (lambda: B.bayes_optimal_table(2, 0), "horizon"),
    (lambda: B.bayes_optimal_table(2, 5, prior_b=-2.0), "prior_b"),
    (lambda: B.bayes_optimal_table(2, 3).action(torch.ones(1, 2) * 2, torch.zeros(1, 2)), "counts"),
    (lambda: B.run_policy("thompson", torch.rand(3, 2), 5), "policy"),
    (lambda: B.run_policy(B.random_policy(), torch.rand(3, 2), 0), "horizon"),
    (lambda: B.MetaBanditEnv(0, 2, 5), "num_envs"),
    (lambda: B.MetaBanditEnv(4, 2, 5, prior_a=0.0), "prior_a"),
    (lambda: B.MetaBanditEnv(4, 2, 5).step(torch.tensor([0, 1])), "actions"),
    (lambda: B.BanditRNNPolicy(1), "k"),
    (lambda: B.BanditRNNPolicy(2, memory="yes"), "memory"),
    (lambda: B.net_policy("net"), "net"),
    (lambda: B.MetaBanditEnv(4, 2, 5, device="cuda:99"), "device"),
    (lambda: B.sample_arm_probs(4, 2, device="tpu"), "device"),
    (lambda: B.train_meta_learner(2, 5, updates=1, device="nope"), "device"),
    (lambda: B.train_meta_learners(2, 5, seeds=[], updates=1), "seeds"),
    (lambda: B.train_meta_learners(2, 5, seeds=[0, 1], memory=[True], updates=1), "memory"),
    (lambda: B.BanditRNNGroup([]), "nets"),
    (lambda: B.agreement_where_rules_disagree(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3)), "choice_probs"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------------------- seeds as one program
def test_group_members_match_single_networks_and_train_independently():
    torch.manual_seed(0)
    a = B.BanditRNNPolicy(2, 16)
    torch.manual_seed(1)
    b = B.BanditRNNPolicy(2, 16, memory=False)
    group = B.BanditRNNGroup([a, b])
    obs, h = torch.rand(10, 5), torch.randn(10, 1, 16)
    lg, v, h2 = group(obs, h)
    for rows, net in ((slice(0, 5), a), (slice(5, 10), b)):
        lg1, v1, h1 = net(obs[rows], h[rows])
        assert torch.allclose(lg[rows], lg1, atol=1e-6) and torch.allclose(v[rows], v1, atol=1e-6)
        assert torch.allclose(h2[rows], h1, atol=1e-6)
    m = group.member(1)
    assert isinstance(m, B.BanditRNNPolicy) and not m.memory
    assert torch.allclose(m(obs[5:], h[5:])[0], lg[5:], atol=1e-6)
    # A member's gradient is its own: the loss of member 0 leaves member 1's gradient at 0.
    group.zero_grad()
    group(obs, h)[0][:5].sum().backward()
    assert group.w_ih.grad[1].abs().max() == 0 and group.w_ih.grad[0].abs().max() > 0
    norms = group.clip_grad_norm_per_member_(1e-3)
    assert norms[0] > 1e-3 and norms[1] == 0
    total = torch.cat([p.grad[0].reshape(-1) for p in group.parameters()]).norm()
    assert total == pytest.approx(1e-3, rel=1e-3)


def test_train_meta_learners_matches_seed_and_learns():
    nets, log = B.train_meta_learners(2, 10, seeds=[4, 5], memory=[True, False], hidden=8, batch=16,
                                      updates=2, env_seed=0)
    torch.manual_seed(5)
    fresh = B.BanditRNNPolicy(2, 8, memory=False)
    assert len(nets) == 2 and nets[0].memory and not nets[1].memory
    assert not any(p.requires_grad for p in nets[0].parameters())
    # trained: moved away from the seed's initial weights, but not far in two steps
    diff = (nets[1].core.head.weight - fresh.core.head.weight).abs().max().item()
    assert 0 < diff < 0.1
    again, _ = B.train_meta_learners(2, 10, seeds=[4, 5], memory=[True, False], hidden=8, batch=16,
                                     updates=2, env_seed=0)
    assert all(torch.equal(p, q) for p, q in zip(nets[0].parameters(), again[0].parameters()))


# ---------------------------------------------------------------------------- rules and agreement
def test_counts_and_rule_choices_on_a_hand_made_run():
    actions = torch.tensor([[0, 0, 1, 1]])
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    run = B.BanditRun(actions, rewards, torch.tensor([[0.5, 0.5]]))
    s, f = B.counts_before_pulls(run)
    assert s[0].tolist() == [[0, 0], [1, 0], [1, 0], [1, 0]]
    assert f[0].tolist() == [[0, 0], [0, 0], [1, 0], [1, 1]]
    wsls = B.rule_choices(run, "wsls")[0].tolist()
    assert wsls == [[True, True], [True, False], [False, True], [True, False]]
    greedy = B.rule_choices(run, "greedy")[0].tolist()
    # t=1: arm 1 untried; t=2: arm 1 untried; t=3: means 0.5 vs 0 -> arm 0
    assert greedy == [[True, True], [False, True], [False, True], [True, False]]
    table = B.bayes_optimal_table(2, 4)
    bayes = B.rule_choices(run, "bayes", table=table)[0]
    assert bayes[0].all() and bayes[1].tolist() == [True, False]     # stay on a paying arm
    with pytest.raises(ValueError, match="rule"):
        B.rule_choices(run, "ucb")
    with pytest.raises(ValueError, match="table"):
        B.rule_choices(run, "bayes")


def test_agreement_scores_the_rules_themselves_and_random_play():
    k, horizon = 2, 8
    table = B.bayes_optimal_table(k, horizon)
    probs = B.sample_arm_probs(3000, k, seed=3)
    for rule, policy in (("wsls", None), ("greedy", B.greedy_policy())):
        run = B.run_policy(policy or B.random_policy(), probs, horizon, seed=1)
        bayes = B.rule_choices(run, "bayes", table=table)
        mine = B.rule_choices(run, rule)
        uniform = torch.full(bayes.shape, 1.0 / k)
        out = B.agreement_where_rules_disagree(uniform, bayes, mine)
        assert out["states"] > 0 and abs(out["agree_a"] - 0.5) < 1e-9 and abs(out["agree_b"] - 0.5) < 1e-9
        # The rule's own choices put everything on the rule, nothing on Bayes.
        follow_rule = mine.double() / mine.double().sum(2, keepdim=True)
        out = B.agreement_where_rules_disagree(follow_rule, bayes, mine)
        assert out["agree_a"] == 0 and out["agree_b"] == pytest.approx(1.0)
        follow_bayes = bayes.double() / bayes.double().sum(2, keepdim=True)
        out = B.agreement_where_rules_disagree(follow_bayes, bayes, mine)
        assert out["agree_a"] == pytest.approx(1.0) and out["agree_a_decided"] == pytest.approx(1.0)


def test_net_choice_probs_match_net_policy():
    torch.manual_seed(0)
    net = B.BanditRNNPolicy(2, 16).eval()
    probs = B.sample_arm_probs(64, 2, seed=0)
    run = B.run_policy(B.net_policy(net, greedy=True), probs, 6, seed=0)
    p = B.net_choice_probs(net, run)
    assert p.shape == (64, 6, 2) and torch.allclose(p.sum(2), torch.ones(64, 6))
    assert torch.equal(p.argmax(2), run.actions)       # the greedy net took its argmax
