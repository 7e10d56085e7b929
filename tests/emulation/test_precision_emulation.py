"""Tests of the CPU emulation of an accelerator's default matmul precision (precision_emulation).

The rounding is checked against a NumPy transcription of round-to-nearest-even on the float32
bit pattern (itself checked against ml_dtypes' bfloat16 cast), the products against float64
NumPy products of the rounded inputs. Each check is also shown to fail without the emulation
(the exact product is farther from the rounded reference than the tolerance).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import precision_emulation as emu
import pytest
from jax import lax

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def round_mantissa(x, bits):
    """float32 -> float32 keeping ``bits`` mantissa bits, round to nearest even (NumPy)."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    drop = 23 - bits
    lsb = (u >> drop) & 1
    u = (u + (1 << (drop - 1)) - 1 + lsb) & ~np.uint64((1 << drop) - 1)
    return u.astype(np.uint32).view(np.float32)


def _mats(m, k, n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(m, k)).astype(np.float32),
            rng.normal(size=(k, n)).astype(np.float32))


def exact_matmul(a, b):
    """XLA's float32 product at 'highest' (the emulation's own exact path, same summation)."""
    return np.asarray(jnp.matmul(a, b, precision="highest"))


def far_apart(x, y, factor=100):
    """x and y differ by far more than float32 rounding of their size."""
    return np.abs(np.asarray(x, np.float64) - y).max() > factor * np.finfo(np.float32).eps * (
        np.abs(y).max())


def test_numpy_rounding_is_ml_dtypes_bfloat16_and_ties_go_to_even():
    x = np.random.default_rng(0).normal(size=10_000).astype(np.float32) * 1e3
    np.testing.assert_array_equal(round_mantissa(x, 7),
                                  x.astype(ml_dtypes.bfloat16).astype(np.float32))
    ties = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11], np.float32)
    np.testing.assert_array_equal(round_mantissa(ties[:2], 7), [1.0, 1 + 2 ** -6])
    np.testing.assert_array_equal(round_mantissa(ties[2:], 10), [1.0, 1 + 2 ** -9])


@pytest.mark.parametrize("mode,bits", [("bf16", 7), ("tf32", 10)])
def test_products_use_rounded_inputs(mode, bits):
    """Bit for bit the float32 product of the inputs rounded by NumPy."""
    a, b = _mats(40, 64, 48)  # 1,920 outputs: rounded in both modes
    ref = exact_matmul(round_mantissa(a, bits), round_mantissa(b, bits))
    assert far_apart(exact_matmul(a, b), ref)  # the reference tells the two apart
    with emu.emulated(mode):
        for f in (jnp.matmul, jax.jit(jnp.matmul), lambda x, y: jnp.einsum("ik,kj->ij", x, y)):
            np.testing.assert_array_equal(f(a, b), ref)
    with emu.emulated(None):   # off again (also when the whole run is emulated)
        np.testing.assert_array_equal(jnp.matmul(a, b), exact_matmul(a, b))


def test_ties_round_to_even_in_a_product():
    col = jnp.asarray([[1 + 2 ** -8], [1 + 3 * 2 ** -8]] * 16, jnp.float32)  # [32, 1]
    with emu.emulated("bf16"):
        got = np.asarray(col @ jnp.ones((1, 32), jnp.float32))
    np.testing.assert_array_equal(got[:2, 0], [1.0, 1 + 2 ** -6])


@pytest.mark.parametrize("mode,bits", [("bf16", 7), ("tf32", 10)])
def test_convolutions_use_rounded_inputs(mode, bits):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 40, 40, 3)).astype(np.float32)  # NHWC, 2 * 38 * 38 * 4 outputs
    w = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)    # HWIO

    def conv(x, w, precision=None):
        return lax.conv_general_dilated(x, w, (1, 1), "VALID", precision=precision,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    ref = np.asarray(conv(round_mantissa(x, bits), round_mantissa(w, bits), "highest"))
    exact = np.asarray(conv(x, w, "highest"))
    assert far_apart(exact, ref)
    with emu.emulated(mode):
        np.testing.assert_array_equal(conv(x, w), ref)
        np.testing.assert_array_equal(jax.jit(conv)(x, w), ref)
    with emu.emulated(None):
        np.testing.assert_array_equal(conv(x, w), exact)


def test_tf32_rounds_only_products_with_at_least_1024_outputs():
    x = 1 + 2 ** -12  # exact in float32; 1.0 in TF32 and in bfloat16
    one = jnp.ones((1, 1), jnp.float32)
    with emu.emulated("tf32"):
        for n_out, rounded in ((1023, False), (1024, True)):
            got = np.asarray(jnp.full((n_out, 1), x, jnp.float32) @ one)
            assert (got == (1.0 if rounded else np.float32(x))).all(), n_out
        # the threshold counts outputs, not inputs: a long reduction to one output is exact
        got = (jnp.full((1, 4096), x, jnp.float32) @ jnp.ones((4096, 1), jnp.float32))[0, 0]
        assert float(got) == pytest.approx(4096 * x, rel=1e-7)
    with emu.emulated("tf32", tf32_min_outputs=0):
        assert float((jnp.full((1, 1), x, jnp.float32) @ one)[0, 0]) == 1.0
    with emu.emulated("bf16"):  # the TPU rounds every product
        assert float((jnp.full((1, 1), x, jnp.float32) @ one)[0, 0]) == 1.0


@pytest.mark.parametrize("mode", emu.MODES)
def test_highest_stays_exact(mode):
    a, b = _mats(40, 64, 48)
    exact = exact_matmul(a, b)
    with emu.emulated(mode):
        np.testing.assert_array_equal(jnp.matmul(a, b, precision="highest"), exact)
        np.testing.assert_array_equal(lax.dot(a, b, precision=lax.Precision.HIGHEST), exact)
        for name in ("highest", "float32"):
            with jax.default_matmul_precision(name):
                np.testing.assert_array_equal(jax.jit(jnp.matmul)(a, b), exact)
        with jax.default_matmul_precision("bfloat16"):  # names the default: rounded
            assert far_apart(jax.jit(jnp.matmul)(a, b), exact)
        # an explicit algorithm is the caller's choice: left alone
        np.testing.assert_array_equal(
            lax.dot(a, b, precision=lax.DotAlgorithmPreset.F32_F32_F32), exact)


def test_high_is_three_bfloat16_passes_on_tpu_and_tf32_on_gpu():
    a, b = _mats(40, 64, 48)
    ah, bh = round_mantissa(a, 7), round_mantissa(b, 7)
    al, bl = round_mantissa(a - ah, 7), round_mantissa(b - bh, 7)
    three = (ah.astype(np.float64) @ bh + ah.astype(np.float64) @ bl
             + al.astype(np.float64) @ bh)
    exact, one_pass = exact_matmul(a, b), exact_matmul(ah, bh)
    with emu.emulated("bf16"):
        got = np.asarray(jnp.matmul(a, b, precision="high"))
    # three passes: as close as float32 summation allows to the float64 sum of the three,
    # much closer to float32 than one pass, and still not float32
    err = np.abs(got - three).max()
    assert err < 1e-3 * np.abs(one_pass - three).max(), err
    assert far_apart(got, exact, factor=1)
    with emu.emulated("tf32"):
        np.testing.assert_array_equal(jnp.matmul(a, b, precision="high"),
                                      exact_matmul(round_mantissa(a, 10), round_mantissa(b, 10)))


def test_other_dtypes_are_not_rounded():
    a, b = _mats(40, 64, 48)
    a16, b16 = jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16)
    with emu.emulated("bf16"):
        np.testing.assert_array_equal(a16 @ b16, jnp.matmul(a16, b16, precision="highest"))
        with jax.enable_x64():
            a64, b64 = jnp.asarray(a, jnp.float64), jnp.asarray(b, jnp.float64)
            np.testing.assert_array_equal(a64 @ b64, jnp.matmul(a64, b64, precision="highest"))
            assert not far_apart(a64 @ b64, a.astype(np.float64) @ b, factor=1e-6)


@pytest.mark.parametrize("mode,bits", [("bf16", 7), ("tf32", 10)])
def test_gradients_flow_through_rounded_products(mode, bits):
    """d/dw sum(c * (x @ w)) = x^T c: the backward product is rounded like the forward one."""
    x, w = _mats(64, 32, 40)
    c = np.random.default_rng(2).normal(size=(64, 40)).astype(np.float32)

    def f(w):
        return jnp.sum(c * (x @ w))

    ref = round_mantissa(x, bits).astype(np.float64).T @ round_mantissa(c, bits)
    exact = x.astype(np.float64).T @ c
    assert far_apart(exact, ref)
    with emu.emulated(mode):
        g = jax.grad(f)(jnp.asarray(w))
        g_jit = jax.jit(jax.grad(f))(jnp.asarray(w))
    # float32 summation of 64 terms: well inside 1e-5 of the largest entry
    tol = 1e-5 * np.abs(ref).max()
    assert np.abs(exact - ref).max() > 20 * tol
    np.testing.assert_allclose(g, ref, rtol=0, atol=tol)
    np.testing.assert_allclose(g_jit, ref, rtol=0, atol=tol)


def test_a_planted_tight_tolerance_fails_under_emulation_and_passes_without():
    """The kind of comparison the H200 run failed: a dense layer against float64 NumPy at
    float32 tolerances (rtol 1e-5)."""
    from functional.layers import dense

    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 32)).astype(np.float32)
    p = {"w": rng.normal(size=(32, 32)).astype(np.float32) / 6, "b": np.zeros(32, np.float32)}
    expected = x.astype(np.float64) @ p["w"]

    def check():
        np.testing.assert_allclose(dense(p, x), expected, rtol=1e-5, atol=1e-5)

    with emu.emulated(None):
        check()
    for mode in emu.MODES:
        with emu.emulated(mode), pytest.raises(AssertionError, match="Not equal to tolerance"):
            check()


def test_mode_from_env():
    assert emu.mode_from_env({}) is None
    assert emu.mode_from_env({emu.ENV: "none"}) is None
    assert emu.mode_from_env({emu.ENV: " BF16 "}) == "bf16"
    with pytest.raises(ValueError, match="JAXZOO_EMULATE_PRECISION='fp8'"):
        emu.mode_from_env({emu.ENV: "fp8"})
    with pytest.raises(ValueError, match="expected one of"):
        emu.set_mode("fp16")


CHILD = textwrap.dedent("""
    import jax
    jax.config.update("jax_num_cpu_devices", 2)   # still possible: nothing started the backend
    import jax.numpy as jnp
    import precision_emulation
    a = jnp.full((32, 1), 1 + 2 ** -12, jnp.float32)
    print(precision_emulation.mode(), jax.device_count(),
          float((a @ jnp.ones((1, 32), jnp.float32))[0, 0]))
""")


@pytest.mark.parametrize("mode,expected", [("bf16", "bf16 2 1.0"), ("none", "None 2 1.000244")])
def test_children_inherit_the_emulation_through_sitecustomize(mode, expected):
    env = {**os.environ, emu.ENV: mode, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[:2] == expected.split()[:2], proc.stdout
    assert float(proc.stdout.split()[2]) == pytest.approx(float(expected.split()[2]), abs=1e-6)


def _notebook_06_run_against_scan():
    """Notebook 06's first check before it was fixed (colab/src/06_recurrent.py at 8fc5056):
    ``recurrent.run`` (all steps' input projections in one product, 1,536 outputs) against a
    plain ``lax.scan`` of the cell (one 4x32 product per step), at the default precision, with
    the notebook's old tolerance. On the H200 this differed by 4.3e-4."""
    import functools

    from functional import recurrent

    key = jax.random.PRNGKey(0)
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, 12, 3))
    p = recurrent.lstm_init(key, 3, 8)
    _, ys = recurrent.run(recurrent.lstm_cell, p, xs)
    c0 = recurrent.init_carry(recurrent.lstm_cell, p, 4)
    _, ys_scan = jax.lax.scan(functools.partial(recurrent.lstm_cell, p), c0,
                              jnp.swapaxes(xs, 0, 1))
    np.testing.assert_allclose(ys, jnp.swapaxes(ys_scan, 0, 1), atol=1e-5)


def test_the_old_notebook_06_check_fails_under_tf32_emulation_as_on_the_h200():
    """Only the GPU-like mode finds it: the TPU-like mode rounds the inputs of the big and the
    small products alike, so the two spellings still agree to float32 summation order. That is
    why CI runs both modes."""
    with emu.emulated(None):
        _notebook_06_run_against_scan()   # CPU float32: passes, as it did in CI
    with emu.emulated("tf32"), pytest.raises(AssertionError, match="Not equal to tolerance"):
        _notebook_06_run_against_scan()
    with emu.emulated("bf16"):
        _notebook_06_run_against_scan()
