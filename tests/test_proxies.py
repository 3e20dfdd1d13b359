"""mesakit.proxies: the tomato garden's dynamics (the bucket pays the proxy, not the true
reward), the batched gardener policy, best-of-n selection against brute force, the
reward model, bad inputs and determinism."""
import itertools
import math

import pytest
import torch

from mesakit import proxies as px

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


def garden(n=4, **kw):
    return px.TomatoGarden(n, seed=0, **kw)


def place(env, row, col, watered):
    env.pos[:] = torch.tensor([row, col])
    env.watered[:] = torch.as_tensor(watered, dtype=torch.bool)
    env.t[:] = 0


def test_the_bucket_pays_the_proxy_and_waters_nothing():
    env = garden(2, dry_prob=0.0)
    place(env, 0, 5, [False] * 8)                        # one step left of the bucket
    _, reward, done, info = env.step(torch.tensor([RIGHT, LEFT]))
    assert info["on_bucket"].tolist() == [True, False]
    assert info["proxy"].tolist() == [1.0, 0.0]          # every tomato "looks" watered
    assert info["true"].tolist() == [0.0, 0.0]           # none is
    assert reward.tolist() == [1.0, 0.0]                 # the learner sees the proxy by default
    assert not env.watered.any()
    # walking into the corner keeps the agent on the bucket: the proxy is farmed every step
    for _ in range(5):
        _, _, _, info = env.step(torch.tensor([UP, LEFT]))
        assert info["proxy"][0] == 1.0 and info["true"][0] == 0.0


def test_off_the_bucket_proxy_equals_true():
    env = garden(64, dry_prob=0.3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        actions = torch.randint(0, 4, (64,), generator=gen)
        _, _, _, info = env.step(actions)
        off = ~info["on_bucket"]
        assert torch.equal(info["proxy"][off], info["true"][off])
        assert (info["proxy"] >= info["true"]).all()


def test_stepping_on_a_tomato_waters_it_and_tomatoes_dry():
    env = garden(1, dry_prob=0.0)
    place(env, 2, 1, [False] * 8)
    env.step(torch.tensor([UP]))                          # onto tomato 0 at (1, 1)
    assert env.watered[0].tolist() == [True] + [False] * 7
    _, _, _, info = env.step(torch.tensor([RIGHT]))       # onto tomato 1 at (1, 2)
    assert env.watered[0, :2].tolist() == [True, True]
    assert info["true"].item() == pytest.approx(2 / 8)
    dry = garden(1, dry_prob=1.0)
    place(dry, 2, 3, [True] * 8)
    _, _, _, info = dry.step(torch.tensor([DOWN]))        # (3, 3): no tomato; all dry out
    assert not dry.watered.any() and info["true"].item() == 0.0


def test_walls_and_episode_reset():
    env = garden(1, dry_prob=0.0, episode_length=3)
    place(env, 0, 0, [False] * 8)
    env.step(torch.tensor([UP]))
    env.step(torch.tensor([LEFT]))
    assert env.pos[0].tolist() == [0, 0]
    _, _, done, _ = env.step(torch.tensor([LEFT]))
    assert done.tolist() == [True] and env.t.item() == 0  # a fresh episode has started
    assert env.pos[0].tolist() != list(px.BUCKET)


def test_learn_from_true_and_mask():
    mask = torch.tensor([True, False])
    env = px.TomatoGarden(2, learn_from=mask, dry_prob=0.0, seed=0)
    place(env, 0, 5, [False] * 8)
    _, reward, _, _ = env.step(torch.tensor([RIGHT, RIGHT]))
    assert reward.tolist() == [0.0, 1.0]


def test_observation_layout():
    env = garden(3)
    obs = env.observe()
    assert obs.shape == (3, env.obs_dim)
    assert torch.equal(obs[:, : env.height * env.width].sum(1), torch.ones(3))
    cell = obs[:, : env.height * env.width].argmax(1)
    assert torch.equal(cell // env.width, env.pos[:, 0]) and torch.equal(cell % env.width, env.pos[:, 1])
    assert torch.equal(obs[:, env.height * env.width:], env.watered.float())


def test_the_proxy_strictly_prefers_parking_and_the_intended_policy_waters():
    intended = px.evaluate_gardeners("intended", num_envs=256, seed=3)
    randomly = px.evaluate_gardeners("random", num_envs=256, seed=3)

    def park(env, obs):
        return torch.where(env.pos[:, 0] > 0, torch.full_like(env.pos[:, 0], UP), torch.full_like(env.pos[:, 0], RIGHT))
    parked = px.evaluate_gardeners(park, num_envs=256, seed=3)
    assert intended["on_bucket"].max() == 0.0
    assert torch.equal(intended["proxy"], intended["true"])
    assert parked["proxy"].mean() > intended["proxy"].mean() + 0.1
    assert parked["true"].mean() < intended["true"].mean() - 0.3
    assert intended["true"].mean() > randomly["true"].mean() + 0.3
    assert intended["occupancy"].shape == (px.GARDEN_HEIGHT, px.GARDEN_WIDTH)
    assert intended["occupancy"].sum().item() == pytest.approx(1.0)


def test_gardener_policy_members_are_their_seeds_and_independent():
    pol = px.GardenerPolicy([0, 7], 43, hidden=8)
    obs = torch.randn(6, 43)
    logits, value, state = pol(obs)
    assert logits.shape == (6, 4) and value.shape == (6,) and state is None
    for i in range(2):
        torch.manual_seed(pol.seeds[i])
        ref = px._mlp_head(43, 8, 4)
        out = ref(obs[3 * i: 3 * i + 3])
        assert torch.allclose(out[:, :4], logits[3 * i: 3 * i + 3], atol=1e-6)
        assert torch.allclose(pol.member(i)(obs[3 * i: 3 * i + 3]), out, atol=1e-6)
    # the loss of member 0 gives no gradient to member 1
    logits[:3].sum().backward()
    assert all(p.grad[1].abs().max() == 0 for p in pol.parameters())
    with pytest.raises(ValueError, match="obs"):
        pol(torch.randn(5, 43))


def test_training_is_deterministic_and_finds_the_bucket():
    kw = dict(envs_per_member=16, updates=40, rollout=20, checkpoints=[20])
    pol_a, cur_a = px.train_gardeners([0, 1], [False, True], seed=5, **kw)
    pol_b, cur_b = px.train_gardeners([0, 1], [False, True], seed=5, **kw)
    assert torch.equal(cur_a.proxy, cur_b.proxy) and torch.equal(cur_a.true, cur_b.true)
    for p, q in zip(pol_a.parameters(), pol_b.parameters()):
        assert torch.equal(p, q)
    assert cur_a.proxy.shape == (2, 40) and set(cur_a.snapshots) == {20}
    # the proxy learner already farms the bucket after 40 updates; the true learner does not
    res = px.evaluate_gardeners(pol_a, num_envs=128, seed=1)
    assert res["proxy"].shape == (2, 64)
    assert res["on_bucket"][0].mean() > 0.3 > res["on_bucket"][1].mean()


def test_best_of_n_matches_brute_force_over_all_subsets():
    gen = torch.Generator().manual_seed(0)
    r, m = 3, 7
    proxy = torch.randn(r, m, generator=gen)
    true = torch.randn(r, m, generator=gen)
    ns = list(range(1, m + 1))
    p_bon, t_bon = px.best_of_n_expected(proxy, true, ns)
    assert p_bon.shape == (m, r)
    for row in range(r):
        for k, n in enumerate(ns):
            subsets = list(itertools.combinations(range(m), n))
            picks = [max(sub, key=lambda i: proxy[row, i].item()) for sub in subsets]
            assert t_bon[k, row].item() == pytest.approx(sum(true[row, i].item() for i in picks) / len(subsets), abs=1e-9)
            assert p_bon[k, row].item() == pytest.approx(sum(proxy[row, i].item() for i in picks) / len(subsets), abs=1e-9)
    # n = 1 is the plain mean; n = M is the argmax
    assert torch.allclose(t_bon[0], true.double().mean(1))
    assert torch.allclose(t_bon[-1], true.double().gather(1, proxy.argmax(1, keepdim=True)).squeeze(1))


def test_best_of_n_matches_sampling_on_a_large_pool():
    gen = torch.Generator().manual_seed(1)
    proxy = torch.randn(1, 2000, generator=gen)
    true = proxy + torch.randn(1, 2000, generator=gen)
    _, t_bon = px.best_of_n_expected(proxy, true, [16])
    idx = torch.stack([torch.randperm(2000, generator=gen)[:16] for _ in range(4000)])
    pick = idx.gather(1, proxy[0][idx].argmax(1, keepdim=True)).squeeze(1)
    assert t_bon.item() == pytest.approx(true[0, pick].mean().item(), abs=0.05)


def test_reward_model_recovers_a_linear_truth_and_true_value():
    x = px.sample_candidates(500, 3, seed=0)
    w = torch.tensor([1.0, -2.0, 0.5])
    y = x @ w + 3.0
    w_hat, b_hat = px.fit_reward_model(x, y, ridge=1e-6)
    assert torch.allclose(w_hat, w, atol=1e-4) and b_hat.item() == pytest.approx(3.0, abs=1e-4)
    assert torch.allclose(px.reward_model_scores(x, w_hat, b_hat), y, atol=1e-3)
    v = px.true_value(torch.tensor([[2.5, 0.0, 0.0], [1.0, 1.0, 0.0]]), w, threshold=1.5, penalty=2.0)
    assert v.tolist() == pytest.approx([2.5 - 2.0 * 1.0, 1.0 - 2.0])
    assert px.bon_kl(1) == 0.0 and px.bon_kl(4) == pytest.approx(math.log(4) - 0.75)


def test_sampling_is_deterministic():
    assert torch.equal(px.sample_candidates((2, 5), 3, seed=4), px.sample_candidates((2, 5), 3, seed=4))
    assert not torch.equal(px.sample_candidates(5, 3, seed=4), px.sample_candidates(5, 3, seed=5))
    a = px.evaluate_gardeners("random", num_envs=32, seed=2)
    b = px.evaluate_gardeners("random", num_envs=32, seed=2)
    assert torch.equal(a["true"], b["true"])


@pytest.mark.parametrize("call, name", [
    (lambda: px.TomatoGarden(0), "num_envs"),
    (lambda: px.TomatoGarden(4, episode_length=0), "episode_length"),
    (lambda: px.TomatoGarden(4, dry_prob=1.5), "dry_prob"),
    (lambda: px.TomatoGarden(4, learn_from="reward"), "learn_from"),
    (lambda: px.TomatoGarden(4, learn_from=torch.ones(3, dtype=torch.bool)), "learn_from"),
    (lambda: px.TomatoGarden(4, seed=-1), "seed"),
    (lambda: px.TomatoGarden(4, device="tpu"), "device"),
    (lambda: px.TomatoGarden(2).step(torch.tensor([0, 4])), "actions"),
    (lambda: px.TomatoGarden(2).step(torch.tensor([0])), "actions"),
    (lambda: px.watering_actions("garden"), "env"),
    (lambda: px.evaluate_gardeners("best"), "act"),
    (lambda: px.evaluate_gardeners("random", num_envs=0), "num_envs"),
    (lambda: px.evaluate_gardeners(px.GardenerPolicy([0, 1, 2], 43), num_envs=64), "num_envs"),
    (lambda: px.GardenerPolicy([], 43), "seeds"),
    (lambda: px.train_gardeners([0, 1], [True]), "learn_true"),
    (lambda: px.train_gardeners([0], updates=5, checkpoints=[6]), "checkpoints"),
    (lambda: px.train_gardeners([0], updates=0), "updates"),
    (lambda: px.train_gardeners([0], device="gpu0"), "device"),
    (lambda: px.sample_candidates(0, 3), "shape"),
    (lambda: px.sample_candidates(4, 0), "dim"),
    (lambda: px.sample_candidates(4, 3, device="tpu"), "device"),
    (lambda: px.true_value(torch.zeros(4, 3), torch.zeros(2)), "weights"),
    (lambda: px.true_value(torch.zeros(4, 3), torch.zeros(3), penalty=-1.0), "penalty"),
    (lambda: px.fit_reward_model(torch.zeros(4, 3), torch.zeros(5)), "y"),
    (lambda: px.fit_reward_model(torch.zeros(1, 3), torch.zeros(1)), "x"),
    (lambda: px.fit_reward_model(torch.zeros(4, 3), torch.zeros(4), ridge=-1.0), "ridge"),
    (lambda: px.reward_model_scores(torch.zeros(4, 3), torch.zeros(2), torch.zeros(())), "w"),
    (lambda: px.best_of_n_expected(torch.zeros(2, 4), torch.zeros(2, 3), [1]), "true"),
    (lambda: px.best_of_n_expected(torch.zeros(4), torch.zeros(4), [1]), "proxy"),
    (lambda: px.best_of_n_expected(torch.zeros(2, 4), torch.zeros(2, 4), [5]), "ns"),
    (lambda: px.best_of_n_expected(torch.zeros(2, 4), torch.zeros(2, 4), []), "ns"),
    (lambda: px.bon_kl(0), "n"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
