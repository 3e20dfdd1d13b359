"""Unit tests for mesakit.mesacontrol (Chapter 2, lesson 5: adaptation without search)."""
import itertools

import pytest
import torch

from mesakit import mesacontrol as mc
from mesakit import thermostat as th

P = th.ThermostatParams()
QUIET = th.ThermostatParams(noise_std=0.0)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, name", [
    (dict(leak=(0.2, 0.1)), "leak"),
    (dict(leak=(0.0, 0.1)), "leak"),
    (dict(leak=(0.1, 1.5)), "leak"),
    (dict(heat_gain=(-1.0, 2.0)), "heat_gain"),
    (dict(setpoint=5.0), "setpoint"),
    (dict(start_offset=-1.0), "start_offset"),
])
def test_room_ranges_reject_bad_fields(kwargs, name):
    with pytest.raises(ValueError, match=name):
        mc.RoomRanges(**kwargs)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="n_rooms"):
        mc.sample_rooms(0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        mc.sample_rooms(4)
    with pytest.raises(ValueError, match="ranges"):
        mc.sample_rooms(4, ranges=(0.1, 0.2), seed=0)
    with pytest.raises(ValueError, match="leak"):
        mc.make_rooms(0.0, 2.0, 20.0)
    with pytest.raises(ValueError, match="leak"):
        mc.make_rooms(1.5, 2.0, 20.0)
    with pytest.raises(ValueError, match="heat_gain"):
        mc.make_rooms(0.1, torch.tensor([1.0, -2.0]), 20.0)
    with pytest.raises(ValueError, match="setpoint"):
        mc.make_rooms(0.1, 2.0, float("nan"))
    with pytest.raises(ValueError, match="broadcast"):
        mc.make_rooms(torch.rand(3) * 0.1 + 0.01, torch.ones(4), 20.0)
    with pytest.raises(ValueError, match="device"):
        mc.make_rooms(0.1, 2.0, 20.0, device="tpu")
    rooms = mc.sample_rooms(4, seed=0)
    with pytest.raises(ValueError, match="rooms"):
        mc.room_step(torch.zeros(4), torch.zeros(4), (0.1, 2.0), P)
    with pytest.raises(ValueError, match="params"):
        mc.oracle_power(torch.zeros(4), rooms, params=None)
    with pytest.raises(ValueError, match="temp"):
        mc.oracle_power([20.0] * 4, rooms, P)
    with pytest.raises(ValueError, match="kind"):
        mc.train_controllers("lstm", seeds=[0], steps=1)
    with pytest.raises(ValueError, match="seeds"):
        mc.train_controllers("recurrent", seeds=[], steps=1)
    with pytest.raises(ValueError, match="seeds"):
        mc.RecurrentControllers([-1])
    with pytest.raises(ValueError, match="steps"):
        mc.train_controllers("recurrent", seeds=[0], steps=0)
    with pytest.raises(ValueError, match="lr"):
        mc.train_controllers("recurrent", seeds=[0], steps=1, lr=0)
    with pytest.raises(ValueError, match="checkpoints"):
        mc.train_controllers("recurrent", seeds=[0], steps=2, checkpoints=[3])
    with pytest.raises(ValueError, match="device"):
        mc.train_controllers("recurrent", seeds=[0], steps=1, device="quantum")
    ctrl = mc.RecurrentControllers([0, 1], hidden=4)
    with pytest.raises(ValueError, match="n_steps"):
        mc.run_episodes(ctrl, rooms, n_steps=0, seed=0)
    with pytest.raises(ValueError, match="controllers"):
        mc.run_episodes(lambda t: t, rooms, n_steps=3, seed=0)
    with pytest.raises(ValueError, match="temp"):
        ctrl.step(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(2, 4), ctrl.initial_state(4))
    with pytest.raises(ValueError, match="state"):
        ctrl.step(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4, 5))


def test_probe_and_least_squares_reject_bad_shapes():
    with pytest.raises(ValueError, match="states_train"):
        mc.probe_r2_by_step(torch.zeros(5, 3), torch.zeros(5), torch.zeros(5, 3, 2), torch.zeros(5))
    with pytest.raises(ValueError, match="target_test"):
        mc.probe_r2_by_step(torch.zeros(5, 3, 2), torch.zeros(5), torch.zeros(6, 3, 2), torch.zeros(5))
    with pytest.raises(ValueError, match="lam"):
        mc.probe_r2_by_step(torch.zeros(5, 3, 2), torch.zeros(5), torch.zeros(5, 3, 2), torch.zeros(5), lam=-1)
    with pytest.raises(ValueError, match="powers"):
        mc.least_squares_physics(torch.zeros(4, 6), torch.zeros(4, 6), P, prior_leak=0.1, prior_gain=3.0)


# ----------------------------------------------------------------------------- dynamics

def test_room_step_is_chapter_ones_step_when_all_rooms_share_the_physics():
    temp = torch.tensor([5.0, 15.0, 20.0, 28.0])
    power = torch.tensor([-1.0, 0.3, 0.7, 2.0])   # clamped alike by both
    for params in (P, th.ThermostatParams(leak=0.25, heat_gain=1.5, outside_temp=0.0)):
        rooms = mc.make_rooms(params.leak, params.heat_gain, torch.full((4,), 20.0))
        assert torch.allclose(mc.room_step(temp, power, rooms, params), th.step(temp, power, params))


def test_each_room_follows_its_own_physics_and_holding_power_holds_it():
    rooms = mc.make_rooms(torch.tensor([0.05, 0.1, 0.2]), torch.tensor([2.0, 3.0, 4.0]),
                          torch.tensor([18.0, 20.0, 22.0]))
    hold = mc.holding_power(rooms, QUIET)
    assert torch.allclose(hold, torch.tensor([0.05 * 8 / 2, 0.1 * 10 / 3, 0.2 * 12 / 4]))
    temp = rooms.setpoint.clone()
    for _ in range(50):
        temp = mc.room_step(temp, hold, rooms, QUIET)
    assert torch.allclose(temp, rooms.setpoint, atol=1e-4)
    cold = torch.full((3,), 20.0)
    for _ in range(400):   # no heating: every room relaxes to the outside temperature
        cold = mc.room_step(cold, torch.zeros(3), rooms, QUIET)
    assert torch.allclose(cold, torch.full((3,), QUIET.outside_temp), atol=1e-3)


def test_sample_rooms_ranges_shapes_and_seeding():
    ranges = mc.RoomRanges()
    assert ranges.all_reachable(P)
    assert not mc.RoomRanges(leak=(0.04, 0.5)).all_reachable(P)
    r = mc.sample_rooms(5000, ranges, seed=3)
    for field, (lo, hi) in (("leak", ranges.leak), ("heat_gain", ranges.heat_gain), ("setpoint", ranges.setpoint)):
        v = getattr(r, field)
        assert v.shape == (5000,) and v.min() >= lo and v.max() <= hi
        assert abs(v.mean().item() - (lo + hi) / 2) < 0.02 * (hi - lo) + 1e-3
    assert (r.init_temp - r.setpoint).abs().max() <= ranges.start_offset
    again = mc.sample_rooms(5000, ranges, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(r, again))
    assert mc.sample_rooms(7, seed=1, members=3).shape == (3, 7)


# ----------------------------------------------------------------------------- the oracle

def test_oracle_equals_chapter_ones_best_one_step_power():
    temp = torch.linspace(8.0, 30.0, 23)
    for params in (P, th.ThermostatParams(leak=0.05, heat_gain=3.0)):
        rooms = mc.make_rooms(params.leak, params.heat_gain, torch.full((23,), 19.0))
        assert torch.allclose(mc.oracle_power(temp, rooms, params), th.best_one_step_power(temp, 19.0, params))


def test_oracle_matches_brute_force_over_powers():
    g = torch.Generator().manual_seed(0)
    rooms = mc.make_rooms(0.02 + 0.3 * torch.rand(50, generator=g), 0.5 + 4 * torch.rand(50, generator=g),
                          15 + 10 * torch.rand(50, generator=g))
    temp = 8 + 25 * torch.rand(50, generator=g)
    grid = torch.linspace(0.0, 1.0, 20001)
    nxt = mc.room_step(temp[:, None], grid[None, :], mc.Rooms(*(f[:, None] for f in rooms)), QUIET)
    brute = grid[((nxt - rooms.setpoint[:, None]) ** 2).argmin(1)]
    assert torch.allclose(mc.oracle_power(temp, rooms, QUIET), brute, atol=1e-4)


def test_greedy_oracle_is_optimal_over_two_steps():
    """On this monotone first-order plant, two greedy steps do as well as the best pair of
    powers found by brute force (noise-free)."""
    grid = torch.linspace(0.0, 1.0, 201)
    pairs = torch.tensor(list(itertools.product(grid.tolist(), repeat=2)))
    for leak, gain, sp, t0 in [(0.1, 3.0, 20.0, 12.0), (0.15, 2.5, 22.0, 25.0), (0.04, 3.5, 16.0, 17.0)]:
        room = mc.make_rooms(leak, gain, sp, t0)
        rooms = mc.make_rooms(torch.full((len(pairs),), leak), gain, sp)
        t1 = mc.room_step(torch.full((len(pairs),), t0), pairs[:, 0], rooms, QUIET)
        t2 = mc.room_step(t1, pairs[:, 1], rooms, QUIET)
        best = ((t1 - sp) ** 2 + (t2 - sp) ** 2).min()
        temps, _ = mc.run_oracle(room, n_steps=2, seed=0, params=QUIET)
        greedy = ((temps[0, 1:] - sp) ** 2).sum()
        assert greedy <= best + 1e-4


def test_oracle_steady_state_error_is_the_noise_closed_form():
    """Reachable rooms started at their setpoint: every step's error is exactly the step's
    noise, so the mean squared error is noise_std**2 and the mean |error| is
    noise_std * sqrt(2 / pi)."""
    params = th.ThermostatParams(noise_std=0.05)   # small enough that the power is never clamped
    rooms = mc.sample_rooms(4000, mc.RoomRanges(start_offset=0.0), seed=1)
    temps, powers = mc.run_oracle(rooms, n_steps=30, seed=2, params=params)
    assert (powers > 0).all() and (powers < params.max_power).all()
    err = temps[:, 1:] - rooms.setpoint[:, None]
    assert abs((err ** 2).mean().item() / params.noise_std ** 2 - 1) < 0.02
    import math
    mae = mc.error_by_step(temps, rooms.setpoint).mean().item()
    assert abs(mae / (params.noise_std * math.sqrt(2 / math.pi)) - 1) < 0.02


# ----------------------------------------------------------------------------- controllers

def test_controllers_shapes_and_power_bounds():
    rooms = mc.sample_rooms(6, seed=0)
    for cls, h in ((mc.RecurrentControllers, 8), (mc.MemorylessControllers, 8)):
        ctrl = cls([0, 1, 2], hidden=h)
        ep = mc.run_episodes(ctrl, rooms, n_steps=5, seed=1, record_states=True)
        assert ep.temps.shape == (3, 6, 6) and ep.powers.shape == (3, 6, 5)
        assert ep.powers.min() >= 0 and ep.powers.max() <= P.max_power
        hidden = h if cls is mc.RecurrentControllers else 0
        assert ep.states.shape == (3, 6, 5, hidden)
        assert torch.equal(ep.temps[:, :, 0], rooms.init_temp.expand(3, 6))


def test_recurrent_cell_is_pytorchs_gru_cell():
    ctrl = mc.RecurrentControllers([5, 6], hidden=7)
    torch.manual_seed(6)
    plain = torch.nn.ModuleDict({"cell": torch.nn.GRUCell(3, 7), "head": torch.nn.Linear(7, 1)})
    temp, sp, prev = 18 + 4 * torch.rand(2, 4), 16 + 6 * torch.rand(2, 4), torch.rand(2, 4)
    state = torch.randn(2, 4, 7)
    power, new = ctrl.step(temp, sp, prev, state)
    x = torch.stack([(temp[1] - sp[1]) / 2, (sp[1] - 20) / 5, prev[1]], -1)
    ref = plain["cell"](x, state[1])
    assert torch.allclose(new[1], ref, atol=1e-6)
    assert torch.allclose(power[1], torch.sigmoid(plain["head"](ref)).squeeze(-1), atol=1e-6)


def test_replay_of_own_trajectory_gives_the_same_states():
    ctrl = mc.RecurrentControllers([0, 1], hidden=6)
    rooms = mc.sample_rooms(5, seed=3)
    ep = mc.run_episodes(ctrl, rooms, n_steps=7, seed=4, record_states=True)
    replayed = mc.replay_states(ctrl, ep.temps, ep.powers, rooms.setpoint)
    assert torch.allclose(replayed, ep.states, atol=1e-6)


def test_training_is_deterministic_batched_equals_alone_and_learns():
    kw = dict(steps=40, n_rooms=16, horizon=10, hidden=8)
    a = mc.train_controllers("recurrent", seeds=[0, 1], **kw)
    b = mc.train_controllers("recurrent", seeds=[0, 1], **kw)
    alone = mc.train_controllers("recurrent", seeds=[1], **kw)
    assert torch.equal(a.losses, b.losses)
    assert torch.allclose(a.losses[:, 1], alone.losses[:, 0], rtol=1e-4, atol=1e-5)
    assert (a.losses[-5:].mean(0) < 0.5 * a.losses[:5].mean(0)).all()
    m = mc.train_controllers("memoryless", seeds=[0, 1], checkpoints=[20], **kw)
    assert set(m.snapshots) == {20} and (m.losses[-5:].mean(0) < m.losses[:5].mean(0)).all()
    assert not any(p.requires_grad for p in m.controllers.parameters())


def test_run_episodes_uses_common_random_numbers():
    rooms = mc.sample_rooms(8, seed=0)
    ctrl = mc.MemorylessControllers([0, 1], hidden=4)
    e1 = mc.run_episodes(ctrl, rooms, n_steps=6, seed=9)
    e2 = mc.run_episodes(ctrl, rooms, n_steps=6, seed=9)
    assert torch.equal(e1.temps, e2.temps)
    # the noise run_episodes adds is the noise run_oracle adds for the same seed
    t, p = mc.run_oracle(rooms, n_steps=6, seed=9)
    noise_oracle = t[:, 1:] - mc.room_step(t[:, :-1], p, mc.Rooms(*(f[:, None] for f in rooms)), QUIET)
    noise_ctrl = e1.temps[0, :, 1:] - mc.room_step(e1.temps[0, :, :-1], e1.powers[0],
                                                   mc.Rooms(*(f[:, None] for f in rooms)), QUIET)
    assert torch.allclose(noise_oracle, noise_ctrl, atol=1e-5)


# ----------------------------------------------------------------------------- probing

def test_probe_r2_is_one_for_a_linear_target_and_near_zero_for_noise():
    g = torch.Generator().manual_seed(0)
    f_tr, f_te = torch.randn(400, 3, 5, generator=g), torch.randn(300, 3, 5, generator=g)
    w = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])
    y_tr, y_te = f_tr[:, 1] @ w + 4.0, f_te[:, 1] @ w + 4.0
    r2 = mc.probe_r2_by_step(f_tr, y_tr, f_te, y_te, lam=1e-6)
    assert r2.shape == (3,) and abs(r2[1].item() - 1.0) < 1e-6
    assert r2[0] < 0.1 and r2[2] < 0.1          # other steps' features are unrelated
    noise = mc.probe_r2_by_step(f_tr, torch.randn(400, generator=g), f_te, torch.randn(300, generator=g))
    assert noise.abs().max() < 0.1


def test_least_squares_recovers_the_physics_from_an_exciting_trajectory():
    rooms = mc.make_rooms(torch.tensor([0.05, 0.12]), torch.tensor([2.7, 3.3]), torch.tensor([17.0, 21.0]),
                          torch.tensor([15.0, 24.0]))
    g = torch.Generator().manual_seed(1)
    powers = torch.rand(2, 12, generator=g)
    temps = [rooms.init_temp]
    for t in range(12):
        temps.append(mc.room_step(temps[-1], powers[:, t], rooms, QUIET))
    temps = torch.stack(temps, -1)
    leak, gain = mc.least_squares_physics(temps, powers, QUIET, prior_leak=0.1, prior_gain=3.0, prior_weight=1e-9)
    assert torch.allclose(leak[:, -1].float(), rooms.leak, atol=1e-4)
    assert torch.allclose(gain[:, -1].float(), rooms.heat_gain, atol=1e-4)
    # before any data the estimate is the prior
    l0, g0 = mc.least_squares_physics(temps, powers * 0, QUIET, prior_leak=0.1, prior_gain=3.0, prior_weight=1e9)
    assert torch.allclose(l0, torch.full_like(l0, 0.1), atol=1e-3)
