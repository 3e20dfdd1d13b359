"""Unit tests for mesakit.thermostat (Chapter 1, lesson 1)."""
import pytest
import torch

from mesakit import thermostat as th

P = th.ThermostatParams()
QUIET = th.ThermostatParams(noise_std=0.0)


def test_zero_power_relaxes_to_outside_temperature():
    temp = torch.tensor([0.0, 15.0, 25.0, 40.0])
    for _ in range(200):
        temp = th.step(temp, torch.zeros(4), QUIET, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(temp, torch.full((4,), QUIET.outside_temp), atol=1e-6)


def test_one_step_matches_the_formula_and_is_monotone_towards_outside():
    temp = torch.tensor([20.0, 5.0])
    nxt = th.step(temp, torch.zeros(2), QUIET)
    assert torch.allclose(nxt, torch.tensor([19.0, 5.5]))
    nxt = th.step(temp, torch.tensor([0.5, 0.5]), QUIET)
    assert torch.allclose(nxt, torch.tensor([20.0, 6.5]))


def test_power_is_clamped_to_its_bounds():
    temp = torch.full((3,), 20.0)
    over = th.step(temp, torch.tensor([5.0, -3.0, 1.0]), QUIET)
    bounded = th.step(temp, torch.tensor([1.0, 0.0, 1.0]), QUIET)
    assert torch.equal(over, bounded)
    temps, powers = th.rollout(lambda t, k: torch.full_like(t, 7.0), temp, n_steps=3,
                               params=P, seed=0)
    assert powers.max() <= P.max_power and powers.min() >= 0.0


def test_constant_power_reaches_the_predicted_steady_state():
    lo, hi = QUIET.reachable_range()
    assert (lo, hi) == (10.0, 30.0)
    temp = torch.tensor([12.0])
    for _ in range(300):
        temp = th.step(temp, torch.tensor([0.8]), QUIET)
    assert abs(temp.item() - 26.0) < 1e-4


def test_noise_has_the_requested_scale_and_is_seeded():
    temp = torch.full((20000,), 20.0)
    power = torch.full((20000,), 0.5)  # holds 20 exactly
    a = th.step(temp, power, P, generator=torch.Generator().manual_seed(3))
    b = th.step(temp, power, P, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs((a - 20.0).std().item() - P.noise_std) < 0.01


def test_rollout_shapes_and_determinism():
    init = th.initial_temps(8, seed=1)
    assert init.shape == (8,) and init.min() >= 12.0 and init.max() <= 28.0
    pol = lambda t, k: th.hand_controller(t, P)
    t1, p1 = th.rollout(pol, init, n_steps=5, params=P, seed=2)
    t2, p2 = th.rollout(pol, init, n_steps=5, params=P, seed=2)
    assert t1.shape == (8, 6) and p1.shape == (8, 5)
    assert torch.equal(t1, t2) and torch.equal(p1, p2)
    t3, _ = th.rollout(pol, init, n_steps=5, params=P, seed=3)
    assert not torch.equal(t1, t3)


def test_hand_controller_holds_its_setpoint():
    init = th.initial_temps(64, seed=0)
    temps, _ = th.rollout(lambda t, k: th.hand_controller(t, P), init, n_steps=40,
                          params=P, seed=0)
    assert th.mean_abs_error(temps, 20.0) < 0.35


def test_planner_with_many_samples_reaches_a_new_setpoint_and_beats_random():
    init = th.initial_temps(64, seed=0)
    plan = lambda n: (lambda t, k: th.random_shooting_planner(
        t, 26.0, horizon=3, n_samples=n, params=P, seed=100 + k))
    temps, _ = th.rollout(plan(128), init, n_steps=30, params=P, seed=0)
    gen = torch.Generator().manual_seed(5)
    rand_temps, _ = th.rollout(lambda t, k: torch.rand(t.shape, generator=gen), init,
                               n_steps=30, params=P, seed=0)
    err, rand_err = th.mean_abs_error(temps, 26.0), th.mean_abs_error(rand_temps, 26.0)
    assert err < 0.4
    assert err < 0.2 * rand_err


def test_planner_picks_the_best_sampled_plan_brute_force():
    # horizon 1: the selected power must be the sampled power whose prediction is
    # nearest the setpoint, which we recompute by brute force from the same seed.
    temp = torch.tensor([14.0, 20.0, 27.0])
    power = th.random_shooting_planner(temp, 21.0, horizon=1, n_samples=16, params=P, seed=7)
    cands = P.max_power * torch.rand(3, 16, 1, generator=torch.Generator().manual_seed(7))
    for i in range(3):
        preds = [th.expected_next_temp(temp[i], c[0], P) for c in cands[i]]
        j = min(range(16), key=lambda k: (preds[k] - 21.0) ** 2)
        assert power[i] == cands[i, j, 0]


def test_planner_accepts_one_setpoint_per_room_and_is_deterministic():
    temp = torch.tensor([20.0, 20.0])
    goal = torch.tensor([12.0, 29.0])
    a = th.random_shooting_planner(temp, goal, horizon=2, n_samples=64, params=P, seed=1)
    b = th.random_shooting_planner(temp, goal, horizon=2, n_samples=64, params=P, seed=1)
    assert torch.equal(a, b)
    assert a[0] < 0.2 and a[1] > 0.8  # cool down vs heat up


def test_behavioral_fit_recovers_the_setpoint_of_known_controllers():
    cands = torch.arange(10.0, 30.01, 0.1)
    init = th.initial_temps(32, seed=0)
    for s in (15.0, 20.0, 26.0):
        temps, powers = th.rollout(lambda t, k: th.best_one_step_power(t, s, P), init,
                                   n_steps=30, params=P, seed=1)
        fit = th.fit_behavioral_setpoint(temps[:, 10:-1], powers[:, 10:], cands, P)
        assert fit.shape == (32,)
        assert (fit - s).abs().max() < 0.06
        temps, powers = th.rollout(lambda t, k: th.hand_controller(t, P, setpoint=s), init,
                                   n_steps=30, params=P, seed=1)
        fit = th.fit_behavioral_setpoint(temps[:, 15:-1], powers[:, 15:], cands, P)
        assert (fit.mean() - s).abs() < 0.1
    single = th.fit_behavioral_setpoint(temps[0, 15:-1], powers[0, 15:], [18.0, 26.0], P)
    assert single.dim() == 0 and single.item() == 26.0


def test_neural_controller_has_no_goal_input():
    net = th.NeuralController(P)
    assert net.net[0].in_features == 1
    with pytest.raises(TypeError):
        net(torch.zeros(3), 26.0)


def test_goal_conditioned_controller_shapes_and_range():
    torch.manual_seed(0)
    net = th.GoalConditionedController(P, hidden=8)
    temp = torch.linspace(12, 28, 6)
    for goal in (20.0, torch.tensor(20.0), torch.full((6,), 20.0)):
        out = net(temp, goal)
        assert out.shape == (6,) and out.min() >= 0 and out.max() <= P.max_power
    assert torch.equal(net(temp, 20.0), net(temp, torch.full((6,), 20.0)))
    grid = temp.reshape(2, 3)                                  # any batch shape
    assert net(grid, torch.tensor([15.0, 20.0, 25.0])).shape == (2, 3)
    assert net(grid, torch.full((2, 1), 18.0)).shape == (2, 3)
    assert net.features(temp, 20.0).shape == (6, 2)
    # the goal is an input: changing it changes the output
    assert not torch.equal(net(temp, 15.0), net(temp, 25.0))


def test_goal_conditioned_training_learns_to_follow_its_input():
    c1, l1 = th.train_goal_conditioned_controller((15.0, 25.0), steps=60, seed=0, n_rooms=32, horizon=8)
    c2, l2 = th.train_goal_conditioned_controller((15.0, 25.0), steps=60, seed=0, n_rooms=32, horizon=8)
    assert l1 == l2 and len(l1) == 60
    temp = torch.full((3,), 20.0)
    assert torch.equal(c1(temp, 22.0), c2(temp, 22.0))
    assert sum(l1[-10:]) < 0.5 * sum(l1[:10])
    # at the same temperature, a warmer goal asks for more power
    power = c1(temp, torch.tensor([16.0, 20.0, 24.0]))
    assert power[0] < power[1] < power[2]
    # and it holds rooms near a goal inside its training range
    init = th.initial_temps(64, seed=0)
    temps, _ = th.rollout(lambda t, k: c1(t, 23.0), init, n_steps=40, params=P, seed=0)
    assert th.mean_abs_error(temps, 23.0) < 0.6


def test_batched_training_equals_training_each_seed_alone():
    kw = dict(steps=12, n_rooms=16, horizon=5, hidden=8)
    run = th.train_controllers(seeds=[3, 0], checkpoints=[4, 12], **kw)
    assert run.losses.shape == (12, 2) and sorted(run.snapshots) == [4, 12]
    assert run.setpoint == 20.0 and run.setpoint_range is None and not run.goal_conditioned
    temp = torch.linspace(12, 28, 7)
    for i, seed in enumerate([3, 0]):
        alone, losses = th.train_neural_controller(20.0, seed=seed, **kw)
        torch.testing.assert_close(run.losses[:, i], torch.tensor(losses), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(run.members[i](temp), alone(temp), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(run.snapshots[12][i](temp), alone(temp), rtol=1e-5, atol=1e-6)
    assert not torch.equal(run.snapshots[4][0](temp), run.snapshots[12][0](temp))
    gc = th.train_controllers(seeds=[1, 2], goal_conditioned=True, setpoint_range=(16.0, 24.0), **kw)
    assert gc.goal_conditioned and gc.setpoint is None and gc.setpoint_range == (16.0, 24.0)
    for i, seed in enumerate([1, 2]):
        alone, _ = th.train_goal_conditioned_controller((16.0, 24.0), seed=seed, **kw)
        assert isinstance(gc.members[i], th.GoalConditionedController)
        torch.testing.assert_close(gc.members[i](temp, 21.0), alone(temp, 21.0), rtol=1e-5, atol=1e-6)


def test_training_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    th.train_controllers(seeds=[0, 1], steps=2, n_rooms=4, horizon=2, goal_conditioned=True)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("call", [
    lambda: th.initial_temps(4, seed=0, device="cuda"),
    lambda: th.train_neural_controller(20.0, steps=1, seed=0, device="cuda"),
    lambda: th.train_goal_conditioned_controller(steps=1, seed=0, device="cuda"),
    lambda: th.train_controllers(seeds=[0], steps=1, device="cuda"),
    lambda: th.random_shooting_planner(torch.zeros(2), 20.0, horizon=2, n_samples=2, params=P,
                                       seed=0, device="cuda"),
], ids=["initial_temps", "train_neural_controller", "train_goal_conditioned_controller",
        "train_controllers", "random_shooting_planner"])
def test_cuda_without_cuda_is_a_clear_value_error(call):
    with pytest.raises(ValueError, match="device='cuda' asks for CUDA"):
        call()


def test_neural_controller_training_is_deterministic_and_learns():
    c1, l1 = th.train_neural_controller(20.0, steps=25, seed=0, n_rooms=32, horizon=6)
    c2, l2 = th.train_neural_controller(20.0, steps=25, seed=0, n_rooms=32, horizon=6)
    assert l1 == l2
    temp = torch.linspace(12, 28, 9)
    assert torch.equal(c1(temp), c2(temp))
    assert sum(l1[-5:]) < 0.5 * sum(l1[:5])
    power = c1(temp)
    assert power.min() >= 0 and power.max() <= P.max_power


@pytest.mark.parametrize("call, name", [
    (lambda: th.ThermostatParams(leak=0.0), "leak"),
    (lambda: th.ThermostatParams(heat_gain=-1.0), "heat_gain"),
    (lambda: th.ThermostatParams(max_power=0.0), "max_power"),
    (lambda: th.ThermostatParams(noise_std=-0.1), "noise_std"),
    (lambda: th.step([20.0], torch.zeros(1), P), "temp"),
    (lambda: th.step(torch.zeros(2), torch.zeros(3), P), "power"),
    (lambda: th.step(torch.zeros(2), torch.zeros(2), "params"), "params"),
    (lambda: th.initial_temps(0, seed=0), "n_rooms"),
    (lambda: th.initial_temps(4, seed=-1), "seed"),
    (lambda: th.rollout("policy", torch.zeros(2), n_steps=3, params=P, seed=0), "policy"),
    (lambda: th.rollout(lambda t, k: t, torch.zeros(2), n_steps=0, params=P, seed=0), "n_steps"),
    (lambda: th.hand_controller(torch.zeros(2), P, gain=5.0), "gain"),
    (lambda: th.hand_controller(torch.zeros(2), P, setpoint="hot"), "setpoint"),
    (lambda: th.train_neural_controller(20.0, steps=0, seed=0), "steps"),
    (lambda: th.train_neural_controller(20.0, steps=1, seed=0, lr=-1.0), "lr"),
    (lambda: th.random_shooting_planner(torch.zeros(2, 2), 20.0, horizon=3, n_samples=4,
                                        params=P, seed=0), "temp"),
    (lambda: th.random_shooting_planner(torch.zeros(2), 20.0, horizon=0, n_samples=4,
                                        params=P, seed=0), "horizon"),
    (lambda: th.random_shooting_planner(torch.zeros(2), 20.0, horizon=3, n_samples=0,
                                        params=P, seed=0), "n_samples"),
    (lambda: th.random_shooting_planner(torch.zeros(2), torch.zeros(3), horizon=3,
                                        n_samples=4, params=P, seed=0), "setpoint"),
    (lambda: th.random_shooting_planner(torch.zeros(2), 20.0, horizon=3, n_samples=4,
                                        params=P, seed=0.5), "seed"),
    (lambda: th.fit_behavioral_setpoint(torch.zeros(2, 3), torch.zeros(2, 4), [20.0], P),
     "powers"),
    (lambda: th.fit_behavioral_setpoint(torch.zeros(2, 3), torch.zeros(2, 3), [], P),
     "candidates"),
    (lambda: th.mean_abs_error(torch.zeros(2, 3), 20.0, last_fraction=0.0), "last_fraction"),
    (lambda: th.GoalConditionedController(P)([20.0], 20.0), "temp"),
    (lambda: th.GoalConditionedController(P)(torch.zeros(3), torch.zeros(4)), "setpoint"),
    (lambda: th.GoalConditionedController(P)(torch.zeros(3), torch.zeros(3, dtype=torch.long)), "setpoint"),
    (lambda: th.GoalConditionedController(P)(torch.zeros(3), torch.tensor(float("nan"))), "setpoint"),
    (lambda: th.GoalConditionedController(P)(torch.zeros(3), "warm"), "setpoint"),
    (lambda: th.GoalConditionedController(P, hidden=0), "hidden"),
    (lambda: th.train_goal_conditioned_controller((25.0, 15.0), steps=1, seed=0), "setpoint_range"),
    (lambda: th.train_goal_conditioned_controller(20.0, steps=1, seed=0), "setpoint_range"),
    (lambda: th.train_goal_conditioned_controller(steps=1, seed=-2), "seed"),
    (lambda: th.train_goal_conditioned_controller(steps=1, seed=0, n_rooms=0), "n_rooms"),
    (lambda: th.train_controllers(seeds=[], steps=1), "seeds"),
    (lambda: th.train_controllers(seeds=[0, 1.5], steps=1), "seeds"),
    (lambda: th.train_controllers(seeds=3, steps=1), "seeds"),
    (lambda: th.train_controllers(seeds=[0], steps=5, checkpoints=[6]), "checkpoints"),
    (lambda: th.train_controllers(seeds=[0], steps=5, checkpoints=[0]), "checkpoints"),
    (lambda: th.train_controllers(seeds=[0], steps=1, goal_conditioned="yes"), "goal_conditioned"),
    (lambda: th.train_controllers(seeds=[0], steps=1, params="params"), "params"),
    (lambda: th.train_neural_controller(20.0, steps=1, seed=0, device="gpu0"), "device"),
    (lambda: th.initial_temps(4, seed=0, device=3.5), "device"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
