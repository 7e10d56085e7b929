"""functional.schedules against optax's schedules and against the formulas of seed 004
section 4.8, evaluated on every count 0..N-1 (jitted and vmapped, and eagerly)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from functional import optim as O
from functional import schedules as S

N = 400
COUNTS = np.arange(N)


def values(schedule, jit=True):
    """Schedule values on counts 0..N-1 as float64 NumPy (one vmapped, jitted call)."""
    f = jax.vmap(schedule)
    if jit:
        f = jax.jit(f)
    return np.asarray(f(jnp.arange(N, dtype=jnp.int32)), np.float64)


VS_OPTAX = {
    "constant": (S.constant(0.3), optax.constant_schedule(0.3)),
    "piecewise_constant": (S.piecewise_constant(0.1, {50: 0.5, 120: 0.1, 300: 2.0}),
                           optax.piecewise_constant_schedule(0.1, {50: 0.5, 120: 0.1, 300: 2.0})),
    "step_decay": (S.step_decay(0.2, 0.5, 3, steps_per_epoch=17),
                   optax.exponential_decay(0.2, 3 * 17, 0.5, staircase=True)),
    "exponential": (S.exponential_decay(0.1, 50, 0.8),
                    optax.exponential_decay(0.1, 50, 0.8)),
    "exponential_staircase_begin_end": (
        S.exponential_decay(0.1, 30, 0.5, transition_begin=40, staircase=True, end_value=0.01),
        optax.exponential_decay(0.1, 30, 0.5, transition_begin=40, staircase=True,
                                end_value=0.01)),
    "exponential_growth_capped": (S.exponential_decay(0.01, 50, 2.0, end_value=0.1),
                                  optax.exponential_decay(0.01, 50, 2.0, end_value=0.1)),
    "notes_exponential_vs_staircase": (
        S.epoch_exponential_decay(0.2, 0.95, steps_per_epoch=10),
        optax.exponential_decay(0.2 * 0.95, 10, 0.95, staircase=True)),
    "polynomial": (S.polynomial(0.1, 0.001, 2.0, 250, 30),
                   optax.polynomial_schedule(0.1, 0.001, 2.0, 250, 30)),
    "linear": (S.linear(0.0, 0.1, 100), optax.linear_schedule(0.0, 0.1, 100)),
    "cosine": (S.cosine_decay(0.1, 300, 0.05), optax.cosine_decay_schedule(0.1, 300, 0.05)),
    "cosine_exponent": (S.cosine_decay(0.1, 300, 0.0, 2.0),
                        optax.cosine_decay_schedule(0.1, 300, 0.0, 2.0)),
    "warmup_cosine": (S.warmup(S.cosine_decay(0.1, 350 - 50, 0.001 / 0.1), 50, 0.01),
                      optax.warmup_cosine_decay_schedule(0.01, 0.1, 50, 350, 0.001)),
    "warmup_exponential": (S.warmup(S.exponential_decay(0.1, 20, 0.9), 25),
                           optax.warmup_exponential_decay_schedule(0.0, 0.1, 25, 20, 0.9)),
    "join": (S.join([S.constant(0.1), S.linear(0.1, 0.02, 100), S.cosine_decay(0.02, 100)],
                    [60, 200]),
             optax.join_schedules([optax.constant_schedule(0.1),
                                   optax.linear_schedule(0.1, 0.02, 100),
                                   optax.cosine_decay_schedule(0.02, 100)], [60, 200])),
    "warmup_of_optax_schedule": (S.warmup(optax.cosine_decay_schedule(0.1, 200), 40, 0.0),
                                 optax.warmup_cosine_decay_schedule(0.0, 0.1, 40, 240)),
}


@pytest.mark.parametrize("name", list(VS_OPTAX))
def test_matches_optax(name):
    """rtol 1e-6, plus atol 1e-6 * peak for values near 0 (a linear ramp from 0 is a
    difference of nearly equal float32 numbers there)."""
    ours, ref = VS_OPTAX[name]
    picks = [0, 1, 7, 49, 50, 51, 199, N - 1]
    expected = np.asarray([ref(jnp.int32(t)) for t in picks], np.float64)  # eager optax
    reference = values(ref)
    atol = 1e-6 * np.max(np.abs(reference))
    np.testing.assert_allclose(values(ours)[picks], expected, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(values(ours), reference, rtol=1e-6, atol=atol)


def np_epoch(t, steps_per_epoch, first_epoch):
    return first_epoch + t // steps_per_epoch


# Seed 004 section 4.8, transcribed with NumPy in float64.
FORMULAS = {
    "inverse_time": (S.inverse_time_decay(0.2, 1.0),
                     lambda t: 0.2 / (1 + 1.0 * np_epoch(t, 1, 1))),
    "inverse_time_per_epoch": (
        S.inverse_time_decay(0.5, 0.3, steps_per_epoch=25, first_epoch=0),
        lambda t: 0.5 / (1 + 0.3 * np_epoch(t, 25, 0))),
    "notes_exponential": (S.epoch_exponential_decay(0.2, 0.95, steps_per_epoch=7),
                          lambda t: 0.95 ** np_epoch(t, 7, 1) * 0.2),
    "notes_exponential_from_0": (
        S.epoch_exponential_decay(0.2, 0.9, steps_per_epoch=7, first_epoch=0),
        lambda t: 0.9 ** np_epoch(t, 7, 0) * 0.2),
    "inverse_sqrt": (S.inverse_sqrt_decay(0.1, 2.0, steps_per_epoch=13),
                     lambda t: 2.0 / np.sqrt(np_epoch(t, 13, 1)) * 0.1),
    "inverse_sqrt_per_step": (S.inverse_sqrt_decay(0.1), lambda t: 1.0 / np.sqrt(t + 1) * 0.1),
    "step_decay": (S.step_decay(0.1, 0.5, 10, steps_per_epoch=4),
                   lambda t: 0.1 * 0.5 ** np.floor((t // 4) / 10)),
    "warmup_inverse_time": (
        S.warmup(S.inverse_time_decay(0.2, 0.5, steps_per_epoch=10), 30, 0.02),
        lambda t: np.where(t < 30, 0.02 + (0.2 / 1.5 - 0.02) * t / 30,
                           0.2 / (1 + 0.5 * np_epoch(np.maximum(t - 30, 0), 10, 1)))),
}


@pytest.mark.parametrize("name", list(FORMULAS))
def test_matches_formula(name):
    """1e-12 when evaluated in float64; 1e-5 in float32 (XLA's float32 pow and sqrt are a
    few ulps off the float64 formula)."""
    ours, formula = FORMULAS[name]
    with jax.enable_x64(True):
        np.testing.assert_allclose(values(ours), formula(COUNTS), rtol=1e-12)
    np.testing.assert_allclose(values(ours), formula(COUNTS), rtol=1e-5)


def test_notes_decay_numbers():
    """lr0 = 0.2, decay_rate = 1 gives 0.1, 0.067, 0.05, 0.04 in epochs 1-4 (the worked
    numbers of the course the notes follow)."""
    lr = values(S.inverse_time_decay(0.2, 1.0, steps_per_epoch=100))
    np.testing.assert_allclose(lr[[0, 100, 200, 300]], [0.1, 0.2 / 3, 0.05, 0.04], rtol=1e-6)
    assert np.all(lr[:100] == lr[0])  # constant within an epoch


def test_checker_fails_on_a_wrong_schedule():
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(values(S.inverse_time_decay(0.2, 1.0, first_epoch=0)),
                                   FORMULAS["inverse_time"][1](COUNTS), rtol=1e-6)


def test_eager_and_jitted_agree_and_dtype_follows_x64():
    for name in ("piecewise_constant", "exponential_staircase_begin_end", "warmup_cosine"):
        ours = VS_OPTAX[name][0]
        jitted = values(ours)  # atol: cosine's tail is a difference of nearly equal numbers
        np.testing.assert_allclose(values(ours, jit=False), jitted, rtol=1e-6,
                                   atol=1e-6 * np.max(jitted))
    assert S.cosine_decay(0.1, 10)(jnp.int32(3)).dtype == jnp.float32
    with jax.enable_x64(True):
        v = S.cosine_decay(0.1, 10)(jnp.int32(3))
        assert v.dtype == jnp.float64
        np.testing.assert_allclose(v, 0.1 * 0.5 * (1 + np.cos(np.pi * 0.3)), rtol=1e-14)


def test_schedule_drives_an_optimizer_like_optax():
    """Our schedule in our adam and optax's schedule in optax's adam: same updates."""
    ours = O.adam(S.warmup(S.cosine_decay(0.1, 80), 20))
    ref = optax.adam(optax.warmup_cosine_decay_schedule(0.0, 0.1, 20, 100))
    p = {"w": jnp.linspace(-1.0, 1.0, 5)}
    gs = jax.random.normal(jax.random.PRNGKey(0), (120, 5))

    def run(opt):
        def step(s, g):
            u, s = opt.update({"w": g}, s, p)
            return s, u["w"]
        return jax.jit(lambda: jax.lax.scan(step, opt.init(p), gs)[1])()

    np.testing.assert_allclose(run(ours), run(ref), rtol=1e-6, atol=1e-12)


BAD = [
    (S.constant, dict(value=-1.0), "value"),
    (S.step_decay, dict(init_value=0.1, drop=1.5), "drop"),
    (S.step_decay, dict(init_value=0.1, drop=0.5, steps_per_epoch=0), "steps_per_epoch"),
    (S.exponential_decay, dict(init_value=0.1, transition_steps=0, decay_rate=0.5),
     "transition_steps"),
    (S.exponential_decay, dict(init_value=-0.1, transition_steps=10, decay_rate=0.5),
     "init_value"),
    (S.inverse_time_decay, dict(init_value=0.1, decay_rate=-1.0), "decay_rate"),
    (S.epoch_exponential_decay, dict(init_value=0.1, base=0.0), "base"),
    (S.inverse_sqrt_decay, dict(init_value=0.1, first_epoch=0), "first_epoch"),
    (S.inverse_sqrt_decay, dict(init_value=0.1, k=0.0), "k"),
    (S.polynomial, dict(init_value=0.1, end_value=0.0, power=0.0, transition_steps=10), "power"),
    (S.cosine_decay, dict(init_value=0.1, decay_steps=0), "decay_steps"),
    (S.cosine_decay, dict(init_value=0.1, decay_steps=10, alpha=1.5), "alpha"),
    (S.warmup, dict(schedule=S.constant(0.1), warmup_steps=-1), "warmup_steps"),
    (S.piecewise_constant, dict(init_value=0.1, boundaries_and_scales={10: -0.5}), "scale"),
]


@pytest.mark.parametrize("fn,kwargs,arg", BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD])
def test_bad_arguments_raise_naming_argument_and_value(fn, kwargs, arg):
    with pytest.raises(ValueError) as err:
        fn(**kwargs)
    msg = str(err.value)
    assert fn.__name__ in msg and arg in msg, msg


def test_bad_types_and_join_lengths():
    with pytest.raises(TypeError, match="steps_per_epoch"):
        S.inverse_time_decay(0.1, 0.5, steps_per_epoch=2.5)
    with pytest.raises(ValueError, match="join"):
        S.join([S.constant(0.1)], [10])
    with pytest.raises(ValueError, match="increase"):
        S.join([S.constant(0.1)] * 3, [20, 10])
