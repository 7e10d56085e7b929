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


# --------------------------------------------------------------------------- boundaries, types

END_T = (3, 7, 10, 25, 1000)  # jitted, 1 - T * (1/T) is < 0 for 3, 7, 10 and > 0 for 25


def jitted_at(schedule, counts):
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(counts, jnp.int32)))


@pytest.mark.parametrize("T", END_T)
def test_schedules_reach_their_end_value_exactly_when_jitted(T):
    """At steps T, T+1 and 2T after the start of the transition, jitted: exactly the end
    value (float32), never NaN; before the end, optax's values bit for bit. Checked for
    polynomial / linear (the fraction 1 - s/T became -ulp or +ulp at s = T under XLA's
    reciprocal rewrite: NaN for power 0.5, -3e-9 for linear) and for the other schedules
    with an end value (cosine_decay, exponential_decay, warmup, join)."""
    settings = [(init, end, power, T, begin) for power in (0.5, 1.0, 2.0) for begin in (0, 5)
                for init, end in ((0.1, 0.0), (0.1, 0.01), (0.0, 0.1))]
    ours = [S.polynomial(*a) for a in settings]
    refs = [optax.polynomial_schedule(*a) for a in settings]
    every = lambda fns: lambda c: jnp.stack([f(c) for f in fns])  # noqa: E731 (one compile)
    counts = np.arange(5 + 2 * T + 1)
    v_ours, v_refs = jitted_at(every(ours), counts), jitted_at(every(refs), counts)
    for i, (_, end, power, _, begin) in enumerate(settings):
        at_end = v_ours[[begin + T, begin + T + 1, begin + 2 * T], i]
        assert not np.any(np.isnan(at_end)), (T, power, begin, at_end)
        np.testing.assert_array_equal(at_end, np.float32(end), f"{T} {power} {begin}")
        np.testing.assert_array_equal(v_ours[: begin + T, i], v_refs[: begin + T, i])
    np.testing.assert_array_equal(jitted_at(S.linear(0.1, 0.0, T), [T, T + 1, 2 * T]), 0.0)
    # The others, audited for the same failure: exact where the end value is a product of
    # two float32 numbers, 1 ulp otherwise (exponential_decay's clip returns end_value).
    for exponent in (0.5, 1.0, 2.0):
        v = jitted_at(S.cosine_decay(0.1, T, 0.2, exponent), [T, T + 1, 2 * T])
        np.testing.assert_array_equal(v, np.float32(0.1) * np.float32(0.2))
        v = jitted_at(S.warmup(S.cosine_decay(0.1, T, 0.0, exponent), 4), [T + 4, 2 * T + 4])
        np.testing.assert_array_equal(v, 0.0)
    v = jitted_at(S.exponential_decay(0.1, T, 0.5, staircase=True, end_value=0.01), [40 * T])
    np.testing.assert_array_equal(v, np.float32(0.01))
    v = jitted_at(S.join([S.constant(0.1), S.linear(0.1, 0.0, T)], [5]), [5 + T, 5 + 2 * T])
    np.testing.assert_array_equal(v, 0.0)


def test_sgd_with_polynomial_schedule_past_the_end_stays_finite_and_still():
    """Past the end of a decay to 0 the rate is exactly 0: no NaN (power 0.5) and no small
    negative rate (power 1) that would push the parameters uphill."""
    p = {"w": jnp.ones(())}
    for schedule in (S.polynomial(0.1, 0.0, 0.5, 10), S.linear(0.1, 0.0, 3)):
        opt = O.sgd(schedule)
        step = jax.jit(opt.update)
        s, updates = opt.init(p), []
        for _ in range(15):
            u, s = step({"w": jnp.ones(())}, s, p)
            updates.append(float(u["w"]))
        assert np.all(np.isfinite(updates)), updates
        assert np.all(np.asarray(updates) <= 0.0), updates  # gradient 1: never uphill
        assert updates[-1] == 0.0 and float(O.current_learning_rate(s)) == 0.0


def test_zero_d_array_hyperparameters_accepted_like_optax():
    """0-d NumPy / JAX real arrays are accepted (as by the optimizers and by optax) and give
    optax's values (rtol 1e-6); bools, complex numbers and non-scalars are still rejected
    with the named TypeError."""
    counts = np.arange(40)
    for wrap in (np.float32, np.array, jnp.array):
        w = lambda x, wrap=wrap: wrap(np.float32(x))  # noqa: E731
        pairs = [
            (S.constant(w(0.1)), optax.constant_schedule(w(0.1))),
            (S.exponential_decay(w(0.1), 10, w(0.5), end_value=w(0.01)),
             optax.exponential_decay(w(0.1), 10, w(0.5), end_value=w(0.01))),
            (S.cosine_decay(w(0.1), 20, w(0.1), w(2.0)),
             optax.cosine_decay_schedule(w(0.1), 20, w(0.1), w(2.0))),
            (S.polynomial(w(0.1), w(0.01), w(2.0), 20),
             optax.polynomial_schedule(0.1, 0.01, 2.0, 20)),
        ]
        for ours, ref in pairs:
            np.testing.assert_allclose(jitted_at(ours, counts), jitted_at(ref, counts),
                                       rtol=1e-6, err_msg=wrap.__name__)
        with pytest.raises(ValueError, match="constant: value"):  # and still validated
            S.constant(w(-0.1))
    for bad in (np.array(True), jnp.array(True), np.bool_(True), np.array(0.1 + 1j),
                jnp.array(0.1 + 0j), np.complex64(1), np.array([0.1]), jnp.array([0.1, 0.2]),
                "0.1", None):
        with pytest.raises(TypeError, match="constant: value must be a real number"):
            S.constant(bad)


@pytest.mark.parametrize("make,arg", [
    (lambda: S.constant(float("inf")), "value"),
    (lambda: S.exponential_decay(0.1, 10, float("inf")), "decay_rate"),
    (lambda: S.exponential_decay(0.1, 10, 0.5, end_value=jnp.array(np.inf)), "end_value"),
    (lambda: S.polynomial(0.1, 0.0, float("inf"), 10), "power"),
    (lambda: S.inverse_time_decay(np.float32(np.inf), 0.5), "init_value"),
    (lambda: S.warmup(S.constant(0.1), 5, float("inf")), "init_value"),
], ids=["constant", "exponential_decay", "end_value", "polynomial", "inverse_time", "warmup"])
def test_infinite_hyperparameters_rejected(make, arg):
    with pytest.raises(ValueError, match=f"{arg} must be in .*, got .*inf"):
        make()


def test_traced_hyperparameters_skip_the_check():
    f = jax.jit(lambda v: S.constant(v)(jnp.int32(3)))
    np.testing.assert_allclose(f(0.25), 0.25, rtol=0)


def test_join_needs_callables_and_staircase_a_bool():
    with pytest.raises(TypeError, match=r"join: schedules\[1\] must be callable, got 0.3"):
        S.join([S.constant(0.1), 0.3], [5])
    with pytest.raises(TypeError, match="exponential_decay: staircase must be a bool"):
        S.exponential_decay(0.1, 10, 0.5, staircase="no")
    with pytest.raises(TypeError, match="exponential_decay: staircase must be a bool"):
        S.exponential_decay(0.1, 10, 0.5, staircase=1)
    S.exponential_decay(0.1, 10, 0.5, staircase=np.bool_(True))  # a NumPy bool is a bool
