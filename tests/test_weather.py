"""Weather worlds: generator statistics, Bayes predictors against brute force, errors,
determinism."""
import itertools
import math

import pytest
import torch

from mesakit import weather as W
from mesakit.nets import CausalTransformer, GRUSequenceModel

CFG = W.DEFAULT_CONFIG


# ----------------------------------------------------------------------------- brute force


def _beta_grid(a, b, n=20000):
    """Midpoint grid on (0, 1) with normalized Beta(a, b) weights, for numerical integrals."""
    p = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    w = p ** (a - 1) * (1 - p) ** (b - 1)
    return p, w / w.sum()


def _joint_coin(seq, cfg=CFG):
    p, w = _beta_grid(*cfg.coin_prior)
    k = sum(seq)
    return float((w * p ** k * (1 - p) ** (len(seq) - k)).sum())


def _joint_sticky(seq, cfg=CFG):
    if not seq:
        return 1.0
    s, w = _beta_grid(*cfg.sticky_prior)
    lik = torch.full_like(s, 0.5)
    for prev, cur in zip(seq, seq[1:]):
        lik = lik * (s if cur == prev else 1 - s)
    return float((w * lik).sum())


def _joint_rain_twice(seq, cfg=CFG):
    p, w = _beta_grid(*cfg.twice_prior)
    lik = torch.ones_like(p)
    phase = 0  # 0 free, 1 forced rain, 2 forced sun
    for day in seq:
        if phase == 0:
            lik = lik * (p if day == 1 else 1 - p)
            phase = 1 if day == 1 else 0
        elif phase == 1:
            if day == 0:
                return 0.0
            phase = 2
        else:
            if day == 1:
                return 0.0
            phase = 0
    return float((w * lik).sum())


def _joint_streak(seq, cfg=CFG):
    total, grid = 0.0, list(itertools.product(cfg.streak_a, cfg.streak_b))
    for a, b in grid:
        prob, streak = 1.0, 0
        for day in seq:
            p = 1 / (1 + math.exp(-(a + b * min(streak, cfg.streak_cap))))
            prob *= p if day == 1 else 1 - p
            streak = streak + 1 if day == 1 else 0
        total += prob / len(grid)
    return total


def _joint_drifting(seq, cfg=CFG):
    """Sum over every path of regimes (K^T paths): no filtering."""
    if not seq:
        return 1.0
    regimes = cfg.drift_regimes().tolist()
    K, h = len(regimes), cfg.drift_hazard
    total = 0.0
    for path in itertools.product(range(K), repeat=len(seq)):
        prob = 1.0 / K * 0.5  # first regime, first day
        for t in range(1, len(seq)):
            stay = (1 - h) + h / K if path[t] == path[t - 1] else h / K
            p = regimes[path[t]][seq[t - 1]]
            prob *= stay * (p if seq[t] == 1 else 1 - p)
        total += prob
    return total


def _joint_pattern(seq, cfg=CFG):
    total, eps = 0.0, cfg.pattern_noise
    for P in cfg.pattern_periods:
        for bits in itertools.product((0, 1), repeat=P):
            prob = 1.0 / len(cfg.pattern_periods) / 2 ** P
            for t, day in enumerate(seq):
                prob *= (1 - eps) if day == bits[t % P] else eps
            total += prob
    return total


JOINTS = {"coin": _joint_coin, "rain_twice": _joint_rain_twice, "sticky": _joint_sticky,
          "streak": _joint_streak, "drifting": _joint_drifting, "pattern": _joint_pattern}


def _brute_predictive(joint, seq):
    """P(day t = 1 | days < t) = joint(prefix + [1]) / joint(prefix) (nan if the prefix is impossible)."""
    out = []
    for t in range(len(seq)):
        prefix = list(seq[:t])
        out.append(joint(prefix + [1]) / joint(prefix) if joint(prefix) > 0 else float("nan"))
    return torch.tensor(out, dtype=torch.float64)


def _assert_close_where_possible(got, want, atol):
    """Compare where the prefix is possible; elsewhere the predictors answer 1/2 or the
    state-machine reset, which brute force leaves undefined."""
    ok = ~torch.isnan(want)
    assert ok.any()
    assert torch.allclose(got[ok], want[ok], atol=atol), (got - want)[ok].abs().max()


def _all_sequences(T):
    return torch.tensor(list(itertools.product((0, 1), repeat=T)), dtype=torch.long)


# ----------------------------------------------------------------------------- generators


def test_coin_rate_matches_its_parameter():
    x, prm = W.sample_world("coin", 300, 2000, seed=1, return_params=True)
    rate = x.double().mean(1)
    assert (rate - prm["p"]).abs().max() < 0.05
    assert abs(prm["p"].mean().item() - 0.5) < 0.05   # Beta(1, 1) prior mean


def test_rain_twice_spells_have_two_days_and_start_rate():
    x, prm = W.sample_world("rain_twice", 200, 1500, seed=2, return_params=True)
    # every completed run of rain lasts exactly two days
    for row in x[:20].tolist():
        s = "".join(map(str, row)).strip("1")  # drop runs touching either end
        runs = [len(r) for r in s.split("0") if r]
        assert runs and all(r == 2 for r in runs)
    assert x[:, 0].sum() > 0   # a spell may start on day 0
    # the rate at which spells start on free days is the sequence's parameter
    phase = torch.zeros(200, dtype=torch.long)
    starts = torch.zeros(200)
    n_free = torch.zeros(200)
    for t in range(x.shape[1]):
        free = phase == 0
        n_free += free.float()
        starts += (free & (x[:, t] == 1)).float()
        phase = torch.where(free & (x[:, t] == 1), 1, torch.where(phase == 1, 2, 0))
    assert ((starts / n_free).double() - prm["p"]).abs().max() < 0.08
    assert x.double().mean() < 0.5   # usually sunny


def test_sticky_repeat_rate_matches_stickiness():
    x, prm = W.sample_world("sticky", 300, 2000, seed=3, return_params=True)
    repeat = (x[:, 1:] == x[:, :-1]).double().mean(1)
    assert (repeat - prm["s"]).abs().max() < 0.05
    assert abs(x[:, 0].double().mean().item() - 0.5) < 0.1


def test_streak_conditional_rates():
    cfg = W.WeatherConfig(streak_a=(-1.0,), streak_b=(0.8,))
    x = W.sample_world("streak", 400, 500, seed=4, config=cfg)
    streak = torch.zeros(400, dtype=torch.long)
    counts = torch.zeros(3)
    rains = torch.zeros(3)
    for t in range(x.shape[1]):
        for k in range(3):
            m = streak == k
            counts[k] += m.sum()
            rains[k] += x[m, t].sum()
        streak = (streak + 1) * x[:, t]
    expect = torch.sigmoid(torch.tensor([-1.0, -0.2, 0.6]))
    assert (rains / counts - expect).abs().max() < 0.02


def test_drifting_regimes_and_hazard():
    x, prm = W.sample_world("drifting", 500, 400, seed=5, return_params=True)
    z = prm["regime"]
    changed = (z[:, 1:] != z[:, :-1]).double().mean().item()
    K = CFG.drift_regimes().shape[0]
    assert abs(changed - CFG.drift_hazard * (K - 1) / K) < 0.005
    R = CFG.drift_regimes()
    prev, cur, reg = x[:, :-1].reshape(-1), x[:, 1:].reshape(-1), z[:, 1:].reshape(-1)
    for k in (0, 2, 6):
        for y in (0, 1):
            m = (reg == k) & (prev == y)
            assert abs(cur[m].double().mean().item() - R[k, y].item()) < 0.03


def test_pattern_is_periodic_up_to_noise():
    noisy = W.WeatherConfig(pattern_noise=0.05, pattern_periods=(2, 3, 4, 5))
    x, prm = W.sample_world("pattern", 300, 200, seed=6, config=noisy, return_params=True)
    assert set(prm["period"].tolist()) == {2, 3, 4, 5}
    flip_rate = (x != prm["clean"]).double().mean().item()
    assert abs(flip_rate - 0.05) < 0.01
    P = prm["period"]
    later = (torch.arange(200)[None] + P[:, None]).clamp(max=199)
    ok = torch.arange(200)[None] + P[:, None] <= 199
    assert (prm["clean"].gather(1, later)[ok] == prm["clean"][ok]).all()
    # the default world repeats its pattern exactly
    x, prm = W.sample_world("pattern", 300, 40, seed=6, return_params=True)
    assert set(prm["period"].tolist()) == set(CFG.pattern_periods)
    assert torch.equal(x, prm["clean"])


def test_mixture_world_frequencies_and_weights():
    x, ids = W.sample_mixture(6000, 16, seed=7)
    freq = torch.bincount(ids, minlength=len(W.WORLDS)).double() / 6000
    assert (freq - 1 / len(W.WORLDS)).abs().max() < 0.025
    x, ids = W.sample_mixture(100, 16, seed=7, worlds=("sticky", "pattern"), weights=(0.0, 1.0))
    assert (ids == 1).all()
    assert x.dtype == torch.long and set(x.unique().tolist()) <= {0, 1}


def test_determinism():
    a = W.sample_mixture(64, 32, seed=11)
    b = W.sample_mixture(64, 32, seed=11)
    c = W.sample_mixture(64, 32, seed=12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for w in W.WORLDS:
        assert torch.equal(W.sample_world(w, 8, 20, generator=g1), W.sample_world(w, 8, 20, generator=g2))


# ----------------------------------------------------------------------------- Bayes predictors


@pytest.mark.parametrize("world", W.WORLDS)
def test_bayes_predictor_matches_brute_force(world):
    T = 4 if world == "drifting" else 5
    xs = _all_sequences(T)
    got = W.bayes_predictor(world, xs)
    want = torch.stack([_brute_predictive(JOINTS[world], s.tolist()) for s in xs])
    tol = 1e-4 if world in ("coin", "rain_twice", "sticky") else 1e-10   # numerical integrals
    _assert_close_where_possible(got, want, tol)
    assert torch.isfinite(got).all() and ((got >= 0) & (got <= 1)).all()


def test_noisy_pattern_bayes_matches_brute_force():
    cfg = W.WeatherConfig(pattern_noise=0.1, pattern_periods=(1, 3))
    xs = _all_sequences(6)
    got = W.pattern_bayes_predictor(xs, config=cfg)
    want = torch.stack([_brute_predictive(lambda s: _joint_pattern(s, cfg), s.tolist()) for s in xs])
    assert torch.allclose(got, want, atol=1e-10)


def test_mixture_bayes_matches_brute_force():
    T = 4
    xs = _all_sequences(T)
    weights = (0.1, 0.2, 0.3, 0.1, 0.2, 0.1)

    def joint(seq):
        return sum(w * JOINTS[name](seq) for w, name in zip(weights, W.WORLDS))

    got, post = W.mixture_bayes_predictor(xs, weights=weights, return_posterior=True)
    want = torch.stack([_brute_predictive(joint, s.tolist()) for s in xs])
    assert not torch.isnan(want).any()   # the coin world makes every sequence possible
    assert torch.allclose(got, want, atol=1e-4)
    assert torch.allclose(post.sum(0), torch.ones_like(got))
    assert torch.allclose(post[:, :, 0], torch.tensor(weights, dtype=torch.float64)[:, None].expand(-1, len(xs)))
    # a sunny day right after a spell starts rules out the rain-twice world
    p, post = W.mixture_bayes_predictor(torch.tensor([[1, 0, 1, 1]]), return_posterior=True)
    assert post[1, 0, 1] > 0
    assert post[1, 0, 2] == 0 and torch.isfinite(p).all()


def test_sticky_reference_semantics():
    p = W.sticky_bayes_predictor(torch.tensor([0, 0, 1, 1, 1]))
    # day 0: 1/2; after 0 transitions q = 1/2; after one repeat q = 2/3 (sunny again: rain 1/3);
    # after repeat+switch q = 1/2; after 1 switch and 2 repeats ... q = (2+1)/(3+2)
    expect = torch.tensor([0.5, 0.5, 1 / 3, 0.5, 3 / 5], dtype=torch.float64)
    assert torch.allclose(p, expect)
    batch = torch.tensor([[1, 1, 0], [1, 0, 0]])
    pb = W.sticky_bayes_predictor(batch, prior_a=2.0, prior_b=1.0)
    assert pb.shape == (2, 3) and pb.dtype == torch.float64
    assert torch.allclose(pb[:, 2], torch.tensor([3 / 4, 1 - 2 / 4], dtype=torch.float64))
    assert torch.allclose(W.sticky_bayes_predictor(torch.tensor([1])), torch.tensor([0.5], dtype=torch.float64))


def test_bayes_beats_wrong_predictors_on_its_world():
    x = W.sample_world("sticky", 2000, 64, seed=8)
    bayes = W.cross_entropy(W.sticky_bayes_predictor(x), x).mean()
    coin = W.cross_entropy(W.coin_bayes_predictor(x), x).mean()
    assert bayes < coin - 0.05
    x = W.sample_world("pattern", 500, 64, seed=9)
    lp = W.loss_by_position(W.pattern_bayes_predictor(x), x)
    assert lp[16:].max() < 1e-6 and lp[:4].mean() > 0.3   # exact once the pattern is pinned down


# ----------------------------------------------------------------------------- models and losses


def test_model_inputs_and_predict_rain():
    x = torch.tensor([[1, 0, 1], [0, 0, 1]])
    inp = W.model_inputs(x)
    assert inp.shape == (2, 3, 3)
    assert torch.equal(inp[:, 0], torch.tensor([[1.0, 0, 0], [1.0, 0, 0]]))    # start token
    assert torch.equal(inp[0, 1:], torch.tensor([[0, 0, 1.0], [0, 1.0, 0]]))   # yesterday
    torch.manual_seed(0)
    model = GRUSequenceModel(3, 8, 1)
    p = W.predict_rain(model, W.sample_world("coin", 5, 7, seed=0))
    assert p.shape == (5, 7) and ((p > 0) & (p < 1)).all()
    loss = W.next_day_loss(model(inp), x)
    assert loss.dim() == 0 and loss > 0


def test_sinusoidal_positions():
    pe = W.sinusoidal_positions(10, 8)
    assert pe.shape == (10, 8)
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0] * 4))
    assert torch.allclose(pe[3, :2], torch.tensor([math.sin(3.0), math.cos(3.0)]))
    with pytest.raises(ValueError, match="dim"):
        W.sinusoidal_positions(10, 7)


def test_cross_entropy_values():
    p = torch.tensor([[0.5, 0.9, 1.0]], dtype=torch.float64)
    x = torch.tensor([[1, 0, 0]])
    ce = W.cross_entropy(p, x)
    assert torch.allclose(ce[0, :2], torch.tensor([math.log(2), -math.log(0.1)], dtype=torch.float64))
    assert torch.isfinite(ce).all() and ce[0, 2] > 10
    assert W.loss_by_position(p, x).shape == (3,)


# ----------------------------------------------------------------------------- several seeds as one program


def _inputs(E, B=5, T=12, seed=0):
    x = W.sample_mixture(B, T, seed=seed)[0]
    return x, W.model_inputs(x).expand(E, -1, -1, -1)


def test_gru_forecasters_members_are_the_plain_models():
    seeds = [3, 8]
    ens = W.GRUForecasters(seeds, hidden=6)
    x, inp = _inputs(len(seeds))
    out = ens(inp)
    assert out.shape == (2, 5, 12)
    for i, s in enumerate(seeds):
        torch.manual_seed(s)
        plain = GRUSequenceModel(3, 6, 1)
        assert torch.allclose(out[i], plain(inp[i]).squeeze(-1), atol=1e-6)
        member = ens.member(i)
        assert isinstance(member, GRUSequenceModel)
        assert torch.allclose(W.predict_rain(member, x), W.predict_rain_members(ens, x)[i])


def test_transformer_forecasters_members_are_the_plain_models():
    seeds = [1, 4, 9]
    ens = W.TransformerForecasters(seeds, d_model=8, n_heads=2, n_layers=2, max_len=16)
    x, inp = _inputs(len(seeds))
    out = ens(inp)
    assert out.shape == (3, 5, 12)
    for i, s in enumerate(seeds):
        torch.manual_seed(s)
        plain = CausalTransformer(3, 1, d_model=8, n_heads=2, n_layers=2, max_len=16)
        with torch.no_grad():
            plain.pos.copy_(W.sinusoidal_positions(16, 8))
        assert torch.allclose(out[i], plain(inp[i]).squeeze(-1), atol=1e-5)
        assert torch.allclose(W.predict_rain(ens.member(i), x), W.predict_rain_members(ens, x)[i], atol=1e-6)
    # without the sinusoidal start the positions are the plain model's random ones
    torch.manual_seed(1)
    plain = CausalTransformer(3, 1, d_model=8, n_heads=2, n_layers=2, max_len=16)
    rand = W.TransformerForecasters([1], d_model=8, max_len=16, sinusoidal_init=False)
    assert torch.equal(rand.member(0).pos, plain.pos)


@pytest.mark.parametrize("make", [lambda s: W.GRUForecasters(s, hidden=6),
                                  lambda s: W.TransformerForecasters(s, d_model=8, max_len=12)])
def test_members_train_independently_and_learn(make):
    # constant weather (period-1 patterns): tomorrow is today, learnable in a few steps
    pool = W.sample_world("pattern", 512, 12, seed=1, config=W.WeatherConfig(pattern_periods=(1,)))
    a, b = make([3, 5]), make([3, 7])
    seen = []
    la = W.train_forecasters(a, pool, steps=40, lr=1e-2, batch=16, warmup=5, seed=2,
                             checkpoints=(20, 40), on_checkpoint=lambda m, s: seen.append((s, m.training)))
    lb = W.train_forecasters(b, pool, steps=40, lr=1e-2, batch=16, warmup=5, seed=2)
    assert seen == [(20, False), (40, False)]
    assert la.shape == (40, 2)
    # member 0 has the same seed and batches in both runs: its other member does not touch it
    assert torch.allclose(la[:, 0], lb[:, 0], atol=1e-5)
    for name, p in a.named_parameters():
        assert torch.allclose(p[0], dict(b.named_parameters())[name][0], atol=1e-5), name
    assert not torch.allclose(la[:, 1], lb[:, 1])
    # the same call twice gives the same numbers
    again = W.train_forecasters(make([3, 5]), pool, steps=40, lr=1e-2, batch=16, warmup=5, seed=2)
    assert torch.equal(la, again)
    # and they learn: the loss falls well below the coin flip's log 2
    assert la[-5:].mean() < 0.5 * la[:3].mean()


def test_train_forecasters_schedules():
    pool = W.sample_world("coin", 64, 8, seed=1)
    first = {}
    for schedule in ("constant", "cosine"):
        m = W.GRUForecasters([0], hidden=4)
        snap = {}
        W.train_forecasters(m, pool, steps=10, lr=1e-2, batch=4, warmup=2, schedule=schedule,
                            checkpoints=(1, 10),
                            on_checkpoint=lambda model, step: snap.update({step: model.head__bias.clone()}))
        first[schedule] = snap
    # the same first step (warm-up), then the cosine decay takes smaller steps
    assert torch.equal(first["constant"][1], first["cosine"][1])
    assert not torch.equal(first["constant"][10], first["cosine"][10])


def test_device_arguments_are_validated():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    pool = W.sample_world("coin", 8, 4)
    calls = [lambda: W.sample_world("coin", 2, 3, device="cuda"),
             lambda: W.sample_mixture(2, 3, device="cuda"),
             lambda: W.train_forecasters(W.GRUForecasters([0], hidden=4), pool, steps=1, device="cuda")]
    for call in calls:
        with pytest.raises(ValueError, match="device.*CUDA"):
            call()


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("call, name", [
    (lambda: W.sample_world("hail", 2, 3), "world"),
    (lambda: W.sample_world("coin", 0, 3), "batch"),
    (lambda: W.sample_world("coin", 2, 2.5), "length"),
    (lambda: W.sample_world("coin", 2, 3, seed=-1), "seed"),
    (lambda: W.sample_world("coin", 2, 3, generator="g"), "generator"),
    (lambda: W.sample_world("coin", 2, 3, device="moon"), "device"),
    (lambda: W.sample_world("coin", 2, 3, config={}), "config"),
    (lambda: W.sample_mixture(2, 3, weights=(1, 2)), "weights"),
    (lambda: W.sample_mixture(2, 3, weights=(1, 1, 1, 1, 1, -1)), "weights"),
    (lambda: W.sample_mixture(2, 3, worlds=("coin", "snow")), "worlds"),
    (lambda: W.sample_mixture(2, 3, worlds="coin"), "worlds"),
    (lambda: W.sticky_bayes_predictor(torch.tensor([0, 2])), "x"),
    (lambda: W.sticky_bayes_predictor([0, 1]), "x"),
    (lambda: W.sticky_bayes_predictor(torch.zeros(2, 0)), "x"),
    (lambda: W.sticky_bayes_predictor(torch.tensor([0, 1]), prior_a=0), "prior_a"),
    (lambda: W.coin_bayes_predictor(torch.tensor([0, 1]), prior_b=-1.0), "prior_b"),
    (lambda: W.bayes_predictor("fog", torch.tensor([0, 1])), "world"),
    (lambda: W.mixture_bayes_predictor(torch.tensor([0, 1]), weights=(1, 1)), "weights"),
    (lambda: W.model_inputs(torch.tensor([0, 1])), "x"),
    (lambda: W.predict_rain(GRUSequenceModel(3, 4, 1), torch.tensor([[0, 1]]), batch_size=0), "batch_size"),
    (lambda: W.sinusoidal_positions(0, 8), "length"),
    (lambda: W.WeatherConfig(drift_hazard=1.5), "drift_hazard"),
    (lambda: W.WeatherConfig(pattern_periods=(2, 2)), "pattern_periods"),
    (lambda: W.WeatherConfig(pattern_noise=-0.1), "pattern_noise"),
    (lambda: W.WeatherConfig(sticky_prior=(1.0, 0.0)), "sticky_prior"),
    (lambda: W.WeatherConfig(streak_a=()), "streak_a"),
    (lambda: W.WeatherConfig(streak_cap=0), "streak_cap"),
    (lambda: W.GRUForecasters([]), "seeds"),
    (lambda: W.GRUForecasters([0, -1]), "seeds"),
    (lambda: W.GRUForecasters(3), "seeds"),
    (lambda: W.GRUForecasters([0], hidden=0), "hidden"),
    (lambda: W.TransformerForecasters([0], d_model=10, n_heads=4), "d_model"),
    (lambda: W.TransformerForecasters([0], d_model=9, n_heads=3), "d_model"),
    (lambda: W.TransformerForecasters([0], n_layers=0), "n_layers"),
    (lambda: W.GRUForecasters([0, 1], hidden=4)(torch.zeros(1, 2, 3, 3)), "inputs"),
    (lambda: W.TransformerForecasters([0], max_len=4)(torch.zeros(1, 2, 5, 3)), "max_len"),
    (lambda: W.GRUForecasters([0], hidden=4).member(1), "i"),
    (lambda: W.train_forecasters(GRUSequenceModel(3, 4, 1), torch.zeros(4, 3, dtype=torch.long), steps=1), "model"),
    (lambda: W.train_forecasters(W.GRUForecasters([0], hidden=4), torch.zeros(4, dtype=torch.long), steps=1),
     "train_days"),
    (lambda: W.train_forecasters(W.GRUForecasters([0], hidden=4), torch.zeros(4, 3, dtype=torch.long), steps=0),
     "steps"),
    (lambda: W.train_forecasters(W.GRUForecasters([0], hidden=4), torch.zeros(4, 3, dtype=torch.long), steps=1,
                                 lr=-1.0), "lr"),
    (lambda: W.train_forecasters(W.GRUForecasters([0], hidden=4), torch.zeros(4, 3, dtype=torch.long), steps=1,
                                 schedule="linear"), "schedule"),
    (lambda: W.train_forecasters(W.GRUForecasters([0], hidden=4), torch.zeros(4, 3, dtype=torch.long), steps=1,
                                 device="moon"), "device"),
    (lambda: W.train_forecasters(W.GRUForecasters([0], hidden=4), torch.zeros(4, 3, dtype=torch.long), steps=1,
                                 clip_grad=0), "clip_grad"),
    (lambda: W.predict_rain_members(GRUSequenceModel(3, 4, 1), torch.zeros(2, 3, dtype=torch.long)), "model"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
