"""mesakit.evolution: the foraging world's dynamics, the forager, the genetic algorithm,
closed-form yardsticks, bad input and determinism."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MESAKIT_PROGRESS", "0")

from mesakit import evolution as ev  # noqa: E402

ANC = ev.ancestral_world()
NEW = ev.shifted_world(ANC, 0.3)


# ---------------------------------------------------------------- the world's dynamics
def test_candy_gives_zero_energy_and_is_sweet():
    m = ev.sample_meals(NEW, (2,), 500, 6, seed=0)
    assert m.features.shape == (2, 500, 6, 3) and m.kcal.shape == (2, 500, 6) and m.candy.dtype == torch.bool
    assert m.candy.any() and (~m.candy).any()
    assert (m.kcal[m.candy] == 0).all()
    assert (m.kcal[~m.candy] > 0).float().mean() > 0.99
    assert abs(m.candy.float().mean().item() - 0.3) < 0.02
    sweet = m.features[..., 0]
    assert abs(sweet[m.candy].mean().item() - NEW.candy_sweetness) < 0.05
    assert abs(sweet[~m.candy].mean().item()) < 0.05


def test_ancestral_world_has_no_candy_and_the_stated_correlations():
    m = ev.sample_meals(ANC, (), 20000, 4, seed=1)
    assert not m.candy.any()
    f, k = m.features.reshape(-1, 3), m.kcal.reshape(-1)
    for i, rho in enumerate(ANC.cue_correlation):
        r = torch.corrcoef(torch.stack([f[:, i], k]))[0, 1].item()
        assert abs(r - rho) < 0.02, (i, r, rho)
    assert abs(k.mean().item() - ANC.kcal_mean) < 1.0 and abs(k.std().item() - ANC.kcal_sd) < 1.0


def test_the_shift_adds_candy_and_leaves_natural_food_unchanged():
    a = ev.sample_meals(ANC, (3,), 100, 5, seed=7)
    b = ev.sample_meals(NEW, (3,), 100, 5, seed=7)
    keep = ~b.candy
    assert torch.equal(a.features[keep], b.features[keep]) and torch.equal(a.kcal[keep], b.kcal[keep])


def test_forager_eats_what_its_drive_rates_highest():
    m = ev.sample_meals(NEW, (2,), 300, 6, seed=3)
    w = ev.random_drives(2, 4, 3, seed=0)
    res = ev.forage(w, m)
    drive = torch.einsum("rpd,rmkd->rpmk", w, m.features)
    pick = drive.argmax(-1)
    kcal = m.kcal.unsqueeze(1).expand(-1, 4, -1, -1).gather(-1, pick.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(res.fitness, kcal.sum(-1))
    assert torch.allclose(res.satisfaction, drive.amax(-1).sum(-1), atol=1e-4)
    # the yardstick and the null bracket every drive
    assert (res.fitness <= ev.oracle_fitness(m).unsqueeze(1) + 1e-3).all()
    assert torch.allclose(ev.random_forager_fitness(m), m.kcal.mean(-1).sum(-1))


def test_a_pure_sweetness_drive_eats_candy_whenever_offered_and_gains_nothing_from_it():
    world = ev.shifted_world(ANC, 0.3, candy_sweetness=50.0, candy_sweetness_sd=0.0)
    m = ev.sample_meals(world, (1,), 400, 6, seed=4)
    sweet_tooth = torch.tensor([[[1.0, 0.0, 0.0]]])
    res = ev.forage(sweet_tooth, m)
    offered = m.candy.any(-1).float().mean()
    assert torch.allclose(res.candy_eaten[0, 0], offered)
    no_candy_meals = ~m.candy.any(-1)
    best_natural = m.kcal.gather(-1, m.features[..., 0].argmax(-1, keepdim=True)).squeeze(-1)
    assert torch.allclose(res.fitness[0, 0], (best_natural * no_candy_meals).sum())


def test_drive_calorie_correlation():
    m = ev.sample_meals(ANC, (1,), 5000, 4, seed=5)
    w = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    c = ev.drive_calorie_correlation(w, m)
    assert abs(c[0, 0].item() - 0.9) < 0.02 and abs(c[0, 1].item()) < 0.03


def test_calorie_weights_match_least_squares_on_samples():
    for world in (ANC, NEW):
        m = ev.sample_meals(world, (), 40000, 5, seed=6)
        X = torch.cat([m.features.reshape(-1, 3), torch.ones(m.kcal.numel(), 1)], 1).double()
        beta = torch.linalg.lstsq(X, m.kcal.reshape(-1, 1).double()).solution[:3, 0]
        assert torch.allclose(beta, ev.calorie_weights(world), atol=0.8), (beta, ev.calorie_weights(world))
    # without candy, conditionally independent cues: weights proportional to rho / (1 - rho^2)
    w = ev.calorie_weights(ev.ancestral_world((0.6, 0.3)))
    expected = torch.tensor([0.6 / 0.64, 0.3 / 0.91], dtype=torch.float64)
    assert torch.allclose(w / w.norm(), expected / expected.norm(), atol=1e-9)


# ---------------------------------------------------------------- the genetic algorithm
def test_ga_finds_the_closed_form_optimum_of_a_toy():
    """Fitness w . t over unit vectors has its maximum, 1, at w = t / |t|."""
    target = torch.tensor([0.3, -0.5, 0.2, 0.8])
    target = target / target.norm()
    res = ev.genetic_algorithm(lambda w, g: w @ target, 4, runs=3, population=32, generations=60,
                               mutation_sd=0.05, seed=0)
    first, last = res.fitness[0].mean(), res.fitness[-1].mean()
    assert first < 0.3 and last > 0.98
    assert (res.weights[:, 0] @ target > 0.99).all()
    assert torch.allclose(res.weights.norm(dim=-1), torch.ones(3, 32))
    assert torch.equal(res.history[-1], res.weights) and res.history.shape == (61, 3, 32, 4)


def test_ga_with_noisy_fitness_still_improves():
    target = torch.tensor([1.0, 0.0, 0.0])
    res = ev.genetic_algorithm(lambda w, g: w @ target + 0.3 * torch.randn(w.shape[:2], generator=g), 3,
                               runs=2, population=64, generations=80, seed=1)
    assert (res.weights.mean(1) @ target > 0.9).all()


def test_evolved_drive_approaches_the_closed_form_best_drive_and_improves_fitness():
    res = ev.evolve_drives(ANC, runs=3, population=32, generations=40, mutation_sd=0.05, seed=0)
    best = ev.calorie_weights(ANC).float()
    best = best / best.norm()
    mean_dir = res.weights.mean(1)
    mean_dir = mean_dir / mean_dir.norm(dim=-1, keepdim=True)
    assert (mean_dir @ best > 0.97).all(), mean_dir
    test = ev.sample_meals(ANC, (3,), 1000, 6, seed=9)
    start, end = ev.forage(res.history[0], test).fitness.mean(), ev.forage(res.weights, test).fitness.mean()
    assert end > start + 0.3 * (ev.oracle_fitness(test).mean() - start)


def test_same_seed_same_numbers_and_another_seed_differs():
    a = ev.evolve_drives(NEW, runs=2, population=16, generations=5, seed=3)
    b = ev.evolve_drives(NEW, runs=2, population=16, generations=5, seed=3)
    c = ev.evolve_drives(NEW, runs=2, population=16, generations=5, seed=4)
    assert torch.equal(a.history, b.history) and torch.equal(a.fitness, b.fitness)
    assert not torch.equal(a.history, c.history)
    assert torch.equal(ev.sample_meals(NEW, (2,), 3, 4, seed=2).features,
                       ev.sample_meals(NEW, (2,), 3, 4, seed=2).features)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, name", [
    (dict(cue_correlation=(1.5, 0.0)), "cue_correlation"),
    (dict(cue_correlation=()), "cue_correlation"),
    (dict(cue_correlation="abc"), "cue_correlation"),
    (dict(candy_fraction=1.0), "candy_fraction"),
    (dict(candy_fraction=-0.1), "candy_fraction"),
    (dict(candy_sweetness_sd=-1.0), "candy_sweetness_sd"),
    (dict(kcal_sd=0.0), "kcal_sd"),
    (dict(kcal_mean=float("nan")), "kcal_mean"),
])
def test_world_rejects_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ev.ForagingWorld(**kwargs)


def test_world_constructors_reject_bad_values():
    with pytest.raises(ValueError, match="candy_fraction"):
        ev.ancestral_world(candy_fraction=0.2)
    with pytest.raises(ValueError, match="candy_fraction"):
        ev.shifted_world(ANC, 0.0)
    with pytest.raises(ValueError, match="world"):
        ev.shifted_world("ancestral", 0.3)
    with pytest.raises(ValueError, match="world"):
        ev.calorie_weights(None)


@pytest.mark.parametrize("call, name", [
    (lambda: ev.sample_meals(ANC, (2,), 0, 6, seed=0), "meals"),
    (lambda: ev.sample_meals(ANC, (2,), 5, 0, seed=0), "items"),
    (lambda: ev.sample_meals(ANC, (0,), 5, 6, seed=0), "batch_shape"),
    (lambda: ev.sample_meals(ANC, "a", 5, 6, seed=0), "batch_shape"),
    (lambda: ev.sample_meals(ANC, (2,), 5, 6), "seed"),
    (lambda: ev.sample_meals(ANC, (2,), 5, 6, seed=-1), "seed"),
    (lambda: ev.sample_meals(ANC, (2,), 5, 6, seed=0, device="tpu"), "device"),
    (lambda: ev.sample_meals("world", (2,), 5, 6, seed=0), "world"),
    (lambda: ev.random_drives(0, 4, 3, seed=0), "runs"),
    (lambda: ev.forage(torch.ones(3), ev.sample_meals(ANC, (1,), 5, 6, seed=0)), "weights"),
    (lambda: ev.forage(torch.ones(1, 4, 2), ev.sample_meals(ANC, (1,), 5, 6, seed=0)), "features"),
    (lambda: ev.forage(torch.ones(2, 4, 3), ev.sample_meals(ANC, (1,), 5, 6, seed=0)), "features"),
    (lambda: ev.forage(torch.ones(1, 4, 3), "meals"), "meals"),
    (lambda: ev.forage(torch.full((1, 4, 3), float("nan")), ev.sample_meals(ANC, (1,), 5, 6, seed=0)), "weights"),
    (lambda: ev.genetic_algorithm(lambda w, g: w[..., 0], 3, population=4, elite=4), "elite"),
    (lambda: ev.genetic_algorithm(lambda w, g: w[..., 0], 3, population=4, parent_fraction=0.1), "parent_fraction"),
    (lambda: ev.genetic_algorithm(lambda w, g: w[..., 0], 3, mutation_sd=-0.1), "mutation_sd"),
    (lambda: ev.genetic_algorithm(lambda w, g: w[..., 0], 0), "dim"),
    (lambda: ev.genetic_algorithm(lambda w, g: w[..., 0], 3, generations=0), "generations"),
    (lambda: ev.genetic_algorithm(lambda w, g: w, 3, runs=1, population=8, generations=1), "fitness_fn"),
    (lambda: ev.genetic_algorithm("fit", 3), "fitness_fn"),
    (lambda: ev.genetic_algorithm(lambda w, g: w[..., 0], 3, runs=1, population=8, init=torch.ones(1, 5, 3)), "init"),
    (lambda: ev.genetic_algorithm(lambda w, g: w[..., 0], 3, runs=1, population=8, init=torch.zeros(1, 8, 3)), "init"),
    (lambda: ev.evolve_drives(ANC, items=1), "items"),
    (lambda: ev.evolve_drives(ANC, meals=0), "meals"),
    (lambda: ev.evolve_drives(ANC, device=3.5), "device"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_names_the_device_argument():
    with pytest.raises(ValueError, match="device"):
        ev.evolve_drives(ANC, device="cuda")


def test_same_numbers_at_one_and_two_threads():
    before = torch.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            res = ev.evolve_drives(NEW, runs=2, population=32, generations=5, seed=5)
            test = ev.sample_meals(NEW, (2,), 500, 6, seed=6)
            out.append((res.history, ev.forage(res.weights, test).fitness))
        assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    finally:
        torch.set_num_threads(before)
