"""Tolerances derived from the precision of float32 matrix products in force.

At the default precision a TPU multiplies float32 inputs as bfloat16 (8 significant bits), an
Ampere-or-newer GPU as TF32 (11 bits); a CPU keeps float32 (24 bits), and so does any backend
under ``jax.default_matmul_precision('highest')``. On CPU the test suite can emulate either
accelerator (``--emulate-precision``, tests/emulation). A comparison with an independent
reference either runs at 'highest' (``@pytest.mark.highest``; the reference and our code are
then both float32) or takes its tolerance from here.

The error model: rounding an input to ``p`` significant bits changes it by at most ``u = 2^-p``
of itself, so one product of two rounded inputs is off by at most ``2u`` of ``|a| |b|``, and a
sum of such products by ``2u`` times the sum of ``|a_i| |b_i|``. A test states ``k``, its error
budget in units of ``u``: 2 per rounded product a compared value goes through, times how much
the sums cancel and the later layers amplify (a few, for the random data of these tests).
``scale`` is the size of the compared values (``|a| |b|`` summed), for the absolute tolerance.
"""

from __future__ import annotations

import os
import sys

import jax

# u: the unit roundoff of a float32 product's inputs (round to nearest)
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "tf32": 2.0 ** -11, "bf16": 2.0 ** -8}


def product_precision() -> str:
    """'float32', 'tf32' or 'bf16': what a float32 dot or convolution at the default
    precision rounds its inputs to here, now."""
    if jax.config.jax_default_matmul_precision in ("highest", "float32"):
        return "float32"
    emulation = sys.modules.get("precision_emulation")
    if emulation is not None and emulation.mode() is not None:
        return emulation.mode()
    backend = jax.default_backend()
    if backend == "tpu":
        return "bf16"
    if backend == "gpu":
        capability = getattr(jax.devices()[0], "compute_capability", None)
        try:
            return "tf32" if capability is not None and float(capability) >= 8.0 else "float32"
        except ValueError:  # a ROCm device names its architecture instead: assume TF32-like
            return "tf32"
    return "float32"


def unit_roundoff() -> float:
    return UNIT_ROUNDOFF[product_precision()]


def rtol_for(float32_rtol: float, k: float) -> float:
    """``float32_rtol`` where products are float32, else at least ``k`` unit roundoffs."""
    if product_precision() == "float32":
        return float32_rtol
    return max(float32_rtol, k * unit_roundoff())


def atol_for(float32_atol: float, k: float, scale: float = 1.0) -> float:
    """``float32_atol`` where products are float32, else at least ``k * u * scale``."""
    if product_precision() == "float32":
        return float32_atol
    return max(float32_atol, k * unit_roundoff() * scale)


def tols(rtol: float = 0.0, atol: float = 0.0, *, k: float, scale: float = 1.0) -> dict:
    """``dict(rtol=..., atol=...)`` for ``np.testing.assert_allclose``: the float32 tolerances
    given, widened to ``k`` unit roundoffs (times ``scale`` for atol) of the precision in
    force."""
    return {"rtol": rtol_for(rtol, k), "atol": atol_for(atol, k, scale)}


def assert_same_arithmetic(actual, desired, *, ulps: int = 4, err_msg: str = "") -> None:
    """Arrays (or pytrees of them) from two differently compiled programs that do the same
    float32 arithmetic in the same order
    (a trial trained alone and inside a sweep with ``vmap=False``; ``fit`` and the seed
    trainer): bitwise equal on CPU, where this is checked. On a GPU or TPU, XLA may fuse the
    two programs' elementwise work differently (a multiply-add contracted into one FMA in one
    of them), which can change a result in its last place, with or without
    ``--xla_gpu_deterministic_ops`` (that flag fixes the order of reductions within one
    program, not the fusion of two). There they agree within ``ulps`` units in the last place
    of float32 (relative ``ulps * 2^-23``)."""
    import numpy as np

    la, lb = jax.tree.leaves(actual), jax.tree.leaves(desired)   # arrays or pytrees of them
    assert len(la) == len(lb), (len(la), len(lb), err_msg)
    for a, b in zip(la, lb, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if jax.default_backend() == "cpu":
            np.testing.assert_array_equal(a, b, err_msg=err_msg)
        else:
            np.testing.assert_allclose(a, b, rtol=ulps * 2.0 ** -23,
                                       atol=ulps * float(np.finfo(np.float32).tiny),
                                       err_msg=err_msg)


def children_env() -> tuple[dict, str]:
    """``(environment, backend)`` for child processes whose runs a test compares bitwise with
    each other or with this process: they run on the backend this process uses (a run on a GPU
    is not bitwise a run on a CPU). A TPU belongs to one process (this one), so there the
    children use the CPU, and the backend returned says so. On a GPU the children share the
    device (no preallocation) and use XLA's deterministic kernels
    (``--xla_gpu_deterministic_ops``): two separately compiled and autotuned programs are
    bitwise equal only when every kernel's order of summation is fixed."""
    backend = jax.default_backend()
    env = dict(os.environ)
    if backend == "tpu":
        env["JAX_PLATFORMS"] = "cpu"
    if backend == "gpu":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_gpu_deterministic_ops=true".strip()
    return env, "cpu" if backend == "tpu" else backend
