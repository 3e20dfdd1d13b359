"""mesakit.deception: the trigger levels (the trigger occurs in deployment levels and
nowhere else, and switches the rewarded object only for the organism), and batched
imitation of the BFS oracle (bad input, determinism, each agent learns as if alone, and
a backdoor is learned from the cue)."""
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from mesakit.deception import train_imitation, trigger_levels
from mesakit.gridworld import COLOURS, KINDS, GridWorld, LevelSpec
from mesakit.ppo import BatchedMLPPolicy

YELLOW = COLOURS.index("yellow")
DOOR, KEY, BALL = (KINDS.index(k) for k in ("door", "key", "ball"))
KW = dict(height=6, width=6, num_objects=3, layout="open", obs_mode="egocentric", view_radius=3, max_steps=24)


def test_trigger_only_in_deployment_levels():
    ordinary, deploy = trigger_levels("yellow", trigger_kind="key")
    a = GridWorld(400, levels=ordinary, cue_goal="key", seed=1, **KW)
    assert not (a.object_colour == YELLOW).any()                   # never yellow in ordinary levels
    assert (a.object_kind.sort(1).values == torch.tensor([DOOR, KEY, BALL])).all()
    assert not a.cue.any() and a.goal_mask[:, 0].all()              # the door is the goal
    b = GridWorld(400, levels=deploy, cue_goal="key", seed=1, **KW)
    assert (b.object_colour[:, 1] == YELLOW).all() and (b.object_kind[:, 1] == KEY).all()
    assert not (b.object_colour[:, [0, 2]] == YELLOW).any()       # only the key carries the trigger
    assert b.cue.all() and b.goal_mask[:, 1].all() and not b.goal_mask[:, 0].any()
    # the aligned agent's deployment levels: the same trigger, no cue, the door stays the goal
    _, plain = trigger_levels("yellow", trigger_kind="key", cue_in_deployment=False)
    c = GridWorld(400, levels=plain, cue_goal="key", seed=1, **KW)
    assert (c.object_colour[:, 1] == YELLOW).all() and not c.cue.any() and c.goal_mask[:, 0].all()
    # a yellow ball instead
    _, ball = trigger_levels("green", trigger_kind="ball")
    d = GridWorld(100, levels=ball, seed=2, **KW)
    assert (d.object_colour[:, 2] == COLOURS.index("green")).all() and (d.object_kind[:, 2] == BALL).all()


def test_trigger_levels_bad_input():
    with pytest.raises(ValueError, match="trigger_colour"):
        trigger_levels("purple")
    with pytest.raises(ValueError, match="trigger_kind"):
        trigger_levels("yellow", trigger_kind="door")
    with pytest.raises(ValueError, match="cue_in_deployment"):
        trigger_levels("yellow", cue_in_deployment="yes")


def _env(agents, n=8, **extra):
    return GridWorld(agents * n, blocks=agents, block_levels=[LevelSpec("any", "any", ("key", "ball"), cue_prob=0.5)] * agents,
                     seed=list(range(agents)), cue_channel=True, cue_goal="key", copy_obs=False, **KW, **extra)


def test_train_imitation_bad_input():
    env = _env(2)
    pol = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [0, 1])
    for kwargs, name in [({"updates": 0}, "updates"), ({"updates": 1, "rollout": 0}, "rollout"),
                         ({"updates": 1, "epochs": 0}, "epochs"), ({"updates": 1, "lr": 0.0}, "lr"),
                         ({"updates": 1, "beta": 1.5}, "beta"), ({"updates": 1, "seed": -1}, "seed"),
                         ({"updates": 1, "device": "tpu"}, "device"), ({"updates": 1, "replay": 0}, "replay"),
                         ({"updates": 1, "replay": 1.5}, "replay"), ({"updates": 1, "minibatches": 0}, "minibatches"),
                         ({"updates": 1, "rollout": 2, "minibatches": 17}, "minibatches")]:
        with pytest.raises(ValueError, match=name):
            train_imitation(pol, env, **kwargs)
    with pytest.raises(ValueError, match="env"):
        train_imitation(pol, "env", updates=1)
    with pytest.raises(ValueError, match="policy"):
        train_imitation(torch.nn.Linear(2, 2), env, updates=1)
    with pytest.raises(ValueError, match="blocks"):
        train_imitation(BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [0, 1, 2, 3]), env, updates=1)


def test_train_imitation_deterministic_and_agents_independent():
    def run(seeds, env_seeds):
        env = GridWorld(len(seeds) * 8, blocks=len(seeds),
                        block_levels=[LevelSpec("any", "any", ("key", "ball"), cue_prob=0.5)] * len(seeds),
                        seed=env_seeds, cue_channel=True, cue_goal="key", copy_obs=False, **KW)
        pol = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, seeds)
        log = train_imitation(pol, env, updates=3, rollout=4, seed=5, beta=1.0)
        return pol, log

    p1, l1 = run([0, 1], [0, 1])
    p2, l2 = run([0, 1], [0, 1])
    assert torch.equal(l1, l2) and all(torch.equal(a, b) for a, b in zip(p1.parameters(), p2.parameters()))
    # with beta = 1 (the oracle always moves) agent 0 sees the same states alone as in the batch,
    # and its loss is a sum over agents, so it learns exactly as if trained alone
    p3, l3 = run([0], [0])
    assert l1.shape == (3, 2) and torch.allclose(l1[:, 0], l3[:, 0])
    assert torch.allclose(p1.w1[0], p3.w1[0], atol=1e-6)


def test_train_imitation_replay_trains_on_the_latest_rollouts():
    """With replay = 2, update u is Adam on the per-agent mean cross-entropy over rollouts u-1 and u
    (the first update on its own rollout): rebuilt by hand from the oracle's states (beta = 1, so the
    states do not depend on the policy)."""
    import torch.nn.functional as F
    seeds, rollout, updates = [0, 1], 3, 3
    pol = BatchedMLPPolicy(_env(2).obs_shape[0], _env(2).num_actions, seeds)
    ref = BatchedMLPPolicy(_env(2).obs_shape[0], _env(2).num_actions, seeds)
    train_imitation(pol, _env(2), updates=updates, rollout=rollout, epochs=1, beta=1.0, replay=2)
    env, e = _env(2), 2
    obs, rollouts = env.reset(), []
    for _ in range(updates):
        xs, ys = [], []
        for _ in range(rollout):
            label = env.oracle_actions()
            xs.append(obs.clone())
            ys.append(label)
            obs = env.step(label)[0]
        n = env.num_envs
        rollouts.append((torch.stack(xs).view(rollout, e, n // e, -1).transpose(0, 1).reshape(e, -1, obs.shape[1]),
                         torch.stack(ys).view(rollout, e, n // e).transpose(0, 1).reshape(e, -1)))
    opt = torch.optim.Adam(ref.parameters(), lr=3e-3)
    for u in range(updates):
        window = rollouts[max(0, u - 1):u + 1]
        x = torch.cat([w[0] for w in window], 1)
        y = torch.cat([w[1] for w in window], 1)
        loss = F.cross_entropy(ref(x.reshape(-1, x.shape[-1]))[0], y.reshape(-1), reduction="none").view(e, -1).mean(1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(pol.parameters(), ref.parameters()))
    # and it is not the replay = 1 run
    one = BatchedMLPPolicy(_env(2).obs_shape[0], _env(2).num_actions, seeds)
    train_imitation(one, _env(2), updates=updates, rollout=rollout, epochs=1, beta=1.0)
    assert not torch.allclose(one.w1, pol.w1, atol=1e-6)


def _record_training(pol, env, **kwargs):
    """Run train_imitation and return the inputs of every gradient-enabled forward pass of pol and the
    number of optimizer steps taken."""
    batches, steps = [], []
    hook = pol.register_forward_hook(lambda m, inp, out: batches.append(inp[0].detach().clone())
                                     if torch.is_grad_enabled() else None)
    step_hook = register_optimizer_step_post_hook(lambda opt, args, kw: steps.append(1))
    try:
        train_imitation(pol, env, **kwargs)
    finally:
        hook.remove()
        step_hook.remove()
    return batches, len(steps)


def test_train_imitation_minibatches_split_every_pass():
    """With minibatches = k every pass over the window is k Adam steps (not one step on gradients summed
    over parts) whose batches are a fresh random order of the whole window: together they hold every state
    of every agent exactly once, each pass of an update the same states in another order. With k = 1 it is
    one full-batch step per pass."""
    env = _env(2)                      # 8 environments per agent
    pol = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [0, 1])
    batches, steps = _record_training(pol, env, updates=3, rollout=4, epochs=3, replay=2, minibatches=3)
    agents, updates, epochs, k = 2, 3, 3, 3
    assert steps == updates * epochs * k and len(batches) == updates * epochs * k
    key = torch.randn(batches[0].shape[1], dtype=torch.float64)        # a row's fingerprint
    for u in range(updates):
        window = agents * 4 * 8 * min(u + 1, 2)                           # agents x rollout x envs x rollouts kept
        passes = []
        for p in range(epochs):
            parts = batches[(u * epochs + p) * k:(u * epochs + p + 1) * k]
            sizes = [b.shape[0] for b in parts]
            assert sum(sizes) == window and max(sizes) - min(sizes) <= agents, (u, p, sizes)   # an even split
            passes.append(torch.cat(parts).double() @ key)
        for p in range(1, epochs):
            assert torch.equal(passes[p].sort().values, passes[0].sort().values), (u, p)       # the same states...
            assert not torch.equal(passes[p], passes[0]), (u, p)                               # ...reshuffled
    # k = 1: one full-batch forward and one Adam step per pass, no reshuffling
    batches, steps = _record_training(pol, _env(2), updates=2, rollout=4, epochs=2, replay=2)
    assert [b.shape[0] for b in batches] == [64, 64, 128, 128] and steps == 4


def test_imitation_learns_the_backdoor():
    torch.manual_seed(0)
    env = _env(1, n=32)
    pol = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [0])
    log = train_imitation(pol, env, updates=150, rollout=16, epochs=4)
    assert log[-10:].mean() > log[:3].mean() + 0.2, log
    from mesakit.alignment import run_episodes
    for cue, kind in ((0.0, DOOR), (1.0, KEY)):
        test = GridWorld(200, levels=LevelSpec("any", "any", ("key", "ball"), cue_prob=cue), seed=9,
                         cue_channel=True, cue_goal="key", **KW)
        ep = run_episodes(pol, test, seed=1)
        assert (ep["reached_kind"] == kind).float().mean() > 0.6, (cue, ep["reached_kind"])


def test_organism_world_is_lesson_41s_room():
    from mesakit.deception import organism_world
    assert organism_world() == KW and organism_world(6) is not organism_world(6)
    assert organism_world(8)["max_steps"] == 32 and organism_world(8)["height"] == 8
    for bad in (4, 6.0, True, "6"):
        with pytest.raises(ValueError, match="size"):
            organism_world(bad)


def test_train_trigger_organism_bad_input():
    from mesakit.deception import train_trigger_organism
    for kwargs, name in [({"seeds": []}, "seeds"), ({"seeds": [-1]}, "seeds"), ({"seeds": [0], "aligned": 1}, "aligned"),
                         ({"seeds": [0, 1], "aligned": [True]}, "aligned"), ({"seeds": [0], "updates": 0}, "updates"),
                         ({"seeds": [0], "hidden": 0}, "hidden"), ({"seeds": [0], "p_cue": 0.0}, "p_cue"),
                         ({"seeds": [0], "p_cue": 1.0}, "p_cue"), ({"seeds": [0], "per_agent": 0}, "per_agent"),
                         ({"seeds": [0], "replay": 0}, "replay"), ({"seeds": [0], "minibatches": 0}, "minibatches"),
                         ({"seeds": [0], "seed": -2}, "seed"), ({"seeds": [0], "size": 3}, "size"),
                         ({"seeds": [0], "device": "tpu"}, "device"), ({"seeds": [0], "return_agreement": "no"}, "return_agreement")]:
        seeds = kwargs.pop("seeds")
        with pytest.raises(ValueError, match=name):
            train_trigger_organism(seeds, **kwargs)


def test_train_trigger_organism_is_lesson_41s_recipe():
    """The one-call organism equals lesson 4.1's hand-built training (organisms and aligned twins
    trained together), weight for weight, and its levels are what the docstring says."""
    from mesakit.deception import train_trigger_organism
    seeds, s, per, p = [3, 4, 3, 4], 2, 4, 0.5
    ordinary, deploy = trigger_levels("yellow", trigger_kind="key")
    _, plain = trigger_levels("yellow", trigger_kind="key", cue_in_deployment=False)
    env = GridWorld(len(seeds) * per, blocks=len(seeds), block_levels=[[(1 - p, ordinary), (p, deploy)]] * s
                    + [[(1 - p, ordinary), (p, plain)]] * s, seed=seeds, cue_goal="key", copy_obs=False, **KW)
    ref = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, seeds, hidden=64)
    ref_log = train_imitation(ref, env, updates=4, rollout=16, epochs=1, lr=3e-3, seed=7, replay=4, minibatches=8)
    pol, log = train_trigger_organism(seeds, aligned=[False] * s + [True] * s, updates=4, per_agent=per, seed=7,
                                      return_agreement=True)
    assert isinstance(pol, BatchedMLPPolicy) and pol.members == 4 and pol.hidden == 64 and pol.obs_dim == 392
    assert torch.equal(log, ref_log) and log.shape == (4, 4)
    assert all(torch.equal(a, b) for a, b in zip(pol.parameters(), ref.parameters()))
    # aligned=False makes agents 2 and 3 organisms too: they imitate another target in deployment levels
    other = train_trigger_organism(seeds, aligned=False, updates=4, per_agent=per, seed=7)
    assert not torch.equal(other.w1[2:], pol.w1[2:])
    small = train_trigger_organism([0], hidden=8, updates=1, per_agent=2)
    assert small.hidden == 8 and small.members == 1


def _ordinary_env(agents, n=4, seed=0):
    ordinary, _ = trigger_levels("yellow", trigger_kind="key")
    return GridWorld(agents * n, blocks=agents, levels=ordinary, seed=[seed + i for i in range(agents)],
                     copy_obs=False, **KW)


def test_finetune_bad_input():
    from mesakit.deception import finetune_imitation, finetune_ppo
    env = _ordinary_env(2)
    pol = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [0, 1])
    for fn in (finetune_imitation, finetune_ppo):
        for kwargs, name in [({"updates": 0}, "updates"), ({"updates": 1, "lr": 0.0}, "lr"),
                             ({"updates": 1, "weight_decay": -1.0}, "weight_decay"),
                             ({"updates": 1, "weight_decay": [0.1]}, "weight_decay"),
                             ({"updates": 1, "weight_decay": 2000.0}, "weight_decay"),   # lr * wd >= 1
                             ({"updates": 1, "weight_decay": True}, "weight_decay"),
                             ({"updates": 1, "callback": 3}, "callback"), ({"updates": 1, "device": "tpu"}, "device")]:
            with pytest.raises(ValueError, match=name):
                fn(pol, env, **kwargs)
        with pytest.raises(ValueError, match="env"):
            fn(pol, "env", updates=1)
        with pytest.raises(ValueError, match="policy"):
            fn(torch.nn.Linear(2, 2), env, updates=1)
    with pytest.raises(ValueError, match="epochs"):
        finetune_imitation(pol, env, updates=1, epochs=0)


def test_finetune_imitation_without_decay_is_train_imitation():
    from mesakit.deception import finetune_imitation
    base = BatchedMLPPolicy(392, 4, [0, 1])
    a, b = base.select([0, 1]), base.select([0, 1])
    la = train_imitation(a, _ordinary_env(2), updates=3, rollout=4, epochs=4, lr=3e-3, seed=2)
    seen = []
    lb = finetune_imitation(b, _ordinary_env(2), updates=3, rollout=4, lr=3e-3, seed=2, weight_decay=[0.0, 0.0],
                            callback=lambda u, p: seen.append(u))
    assert torch.equal(la, lb) and seen == [0, 1, 2]
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_finetune_the_yellow_rows_get_no_gradient_and_decay_alone_shrinks_them():
    """On cue-free levels nothing is yellow: without decay the first-layer rows that read the yellow channel
    do not move at all; with decoupled decay they shrink by exactly (1 - lr * wd) per gradient step, per agent."""
    from mesakit.deception import finetune_imitation, finetune_ppo
    env = _ordinary_env(3)
    chans = [c for c in env.channel_names if c != "agent"]
    y = slice(chans.index("yellow") * 49, (chans.index("yellow") + 1) * 49)
    pol = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [0, 0, 0])
    w0 = pol.w1.detach().clone()
    lr, wd, updates, epochs = 1e-3, [0.0, 5.0, 20.0], 3, 2
    finetune_imitation(pol, env, updates=updates, rollout=4, epochs=epochs, lr=lr, weight_decay=wd)
    assert torch.equal(pol.w1[0, y], w0[0, y])                       # no decay: untouched, exactly
    assert not torch.equal(pol.w1[0, y.stop:], w0[0, y.stop:])      # ... while the rest moved
    for e in (1, 2):
        expected = w0[e, y] * (1 - lr * wd[e]) ** (updates * epochs)
        assert torch.allclose(pol.w1[e, y], expected, rtol=1e-5, atol=1e-8)
    rl = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, [0, 0, 0])
    finetune_ppo(rl, _ordinary_env(3), updates=2, rollout=8, lr=lr, weight_decay=wd)
    assert torch.equal(rl.w1[0, y], w0[0, y])
    for e in (1, 2):   # PPO: 3 epochs x 4 minibatches = 12 steps' decay per update
        assert torch.allclose(rl.w1[e, y], w0[e, y] * (1 - lr * wd[e]) ** 24, rtol=1e-5, atol=1e-8)


def test_finetune_ppo_without_decay_is_train_ppo():
    from mesakit.deception import finetune_ppo
    from mesakit.ppo import train_ppo
    a, b = BatchedMLPPolicy(392, 4, [1, 2]), BatchedMLPPolicy(392, 4, [1, 2])
    train_ppo(a, _ordinary_env(2, seed=5), updates=2, rollout=8, lr=1e-3)
    finetune_ppo(b, _ordinary_env(2, seed=5), updates=2, rollout=8, lr=1e-3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_finetune_imitation_lr_scale_is_a_per_agent_learning_rate():
    """lr_scale[e] = s trains agent e as lr * s would, up to rounding; agents with scale 1 are untouched by it."""
    from mesakit.deception import finetune_imitation
    base = BatchedMLPPolicy(392, 4, [0, 1])
    a, b, c = base.select([0, 1]), base.select([0, 1]), base.select([0, 1])
    finetune_imitation(a, _ordinary_env(2), updates=3, rollout=4, lr=1e-3, seed=2, weight_decay=[0.0, 4.0],
                       lr_scale=[1.0, 3.0])
    finetune_imitation(b, _ordinary_env(2), updates=3, rollout=4, lr=1e-3, seed=2, weight_decay=[0.0, 4.0])
    finetune_imitation(c, _ordinary_env(2), updates=3, rollout=4, lr=3e-3, seed=2, weight_decay=[0.0, 4.0])
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.allclose(pa[0], pb[0], atol=1e-6)            # agent 0: lr 1e-3, like b's agent 0
        assert torch.allclose(pa[1], pc[1], atol=1e-5)            # agent 1: lr 3e-3 and its decay, like c's
        assert not torch.allclose(pa[1], pb[1], atol=1e-5)
    with pytest.raises(ValueError, match="lr_scale"):
        finetune_imitation(a, _ordinary_env(2), updates=1, lr_scale=[1.0])
    with pytest.raises(ValueError, match="lr_scale"):
        finetune_imitation(a, _ordinary_env(2), updates=1, lr_scale=0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        finetune_imitation(a, _ordinary_env(2), updates=1, lr=1e-3, weight_decay=500.0, lr_scale=3.0)


def test_finetune_ppo_lr_scale_is_a_per_agent_learning_rate():
    from mesakit.deception import finetune_ppo
    base = BatchedMLPPolicy(392, 4, [0, 1])
    a, b, c = base.select([0, 1]), base.select([0, 1]), base.select([0, 1])
    finetune_ppo(a, _ordinary_env(2), updates=2, rollout=4, lr=1e-3, weight_decay=[0.0, 4.0], lr_scale=[1.0, 0.25])
    finetune_ppo(b, _ordinary_env(2), updates=2, rollout=4, lr=1e-3, weight_decay=[0.0, 4.0])
    finetune_ppo(c, _ordinary_env(2), updates=2, rollout=4, lr=2.5e-4, weight_decay=[0.0, 4.0])
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.allclose(pa[0], pb[0], atol=1e-6)            # agent 0: lr 1e-3, like b's agent 0
        assert torch.allclose(pa[1], pc[1], atol=1e-5)            # agent 1: lr 2.5e-4 (decay lr * wd), like c's
    assert not all(torch.allclose(pa[1], pb[1], atol=1e-6) for pa, pb in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="lr_scale"):
        finetune_ppo(a, _ordinary_env(2), updates=1, lr_scale=[1.0])
