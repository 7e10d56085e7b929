"""An accelerator's default float32 matmul precision, emulated on CPU (test infrastructure).

On a TPU a float32 matrix product or convolution at the default precision multiplies its inputs
as bfloat16 (one pass); on an Ampere-or-newer NVIDIA GPU as TF32 (10 mantissa bits). XLA on CPU
ignores ``jax.default_matmul_precision`` and always computes in float32, so a test that is
tight enough to pass on CPU can fail on the accelerators our users run. This module makes the CPU
behave like one of them:

- ``bf16`` (TPU-like): the float32 inputs of every ``dot_general`` and ``conv_general_dilated``
  at the default precision are rounded to bfloat16 (round to nearest even) before an exact
  float32 product (a product of two bfloat16 numbers is exact in float32, and the sums stay
  float32, as on the TPU's matrix unit). ``precision=HIGH`` becomes the TPU's three-pass
  bfloat16 product (``bfloat16_3x``).
- ``tf32`` (GPU-like): the inputs are rounded to TF32 (10 mantissa bits, round to nearest
  even), but only for products with at least ``JAXZOO_EMULATE_TF32_MIN_OUTPUTS`` outputs
  (default 1,024): small products run exactly on the GPU (XLA computes them with its own
  kernels, not with cuBLAS), which is what makes two spellings of one computation (a hoisted
  input projection against the per-step products of a ``lax.scan``) disagree there.
  Convolutions are rounded whatever their size (XLA hands every one to cuDNN, which uses
  TF32). ``precision=HIGH`` is TF32 too, as on the GPU.

``precision=HIGHEST`` on the op, or ``jax.default_matmul_precision('highest')`` /
``'float32'`` in force, stays exact; an explicit ``lax.DotAlgorithm``/``DotAlgorithmPreset``
is left alone; only float32 operands are rounded (bfloat16 ones already are, float64 and complex
products are not rounded by either accelerator's default).

How: a CPU lowering rule for ``dot_general_p`` and ``conv_general_dilated_p`` that wraps the
one jax registered, rounding the operands with ``lax.reduce_precision`` (lowered with
``mlir.lower_fun``) before calling it. Differentiation happens on jaxprs, before lowering, so
gradients flow unchanged; the products of the backward pass are rounded like any other, as on
the accelerator. The rule reads the mode when a function is lowered: ``emulated(mode)`` clears
jax's caches on entry and exit so that nothing compiled under another mode is reused.

Use: ``pytest --emulate-precision=bf16`` (or ``JAXZOO_EMULATE_PRECISION=bf16`` in the
environment). The conftest installs it in the test process and puts this folder on PYTHONPATH,
so that ``sitecustomize.py`` here installs it in every child Python (subprocesses, notebook
kernels) the moment it imports jax.

This reaches into jax internals (``jax._src``); ``install`` checks every name it uses and runs a
product it knows the answer to, and raises ``EmulationUnavailable`` naming what moved rather
than letting a test run silently unemulated.
"""

from __future__ import annotations

import contextlib
import functools
import os

ENV = "JAXZOO_EMULATE_PRECISION"
ENV_TF32_MIN_OUTPUTS = "JAXZOO_EMULATE_TF32_MIN_OUTPUTS"
MODES = ("bf16", "tf32")
MANTISSA_BITS = {"bf16": 7, "tf32": 10}
TF32_MIN_OUTPUTS = 1024
DESCRIPTIONS = {
    "bf16": "float32 products as one bfloat16 pass, like a TPU's default",
    "tf32": ("float32 products with TF32 inputs (products of >= {n} outputs, every "
             "convolution), like a GPU's default"),
}


class EmulationUnavailable(RuntimeError):
    """The jax internals this emulation hooks into are not where it expects them."""


_state = {"mode": None, "tf32_min_outputs": TF32_MIN_OUTPUTS, "installed": None}


def mode() -> str | None:
    """The mode in force in this process ('bf16', 'tf32') or None."""
    return _state["mode"]


def describe() -> str:
    """One line naming the emulated precision (for logs and the notebooks' setup cell)."""
    m = _state["mode"]
    if m is None:
        return "no precision emulation"
    return f"emulated on CPU: {DESCRIPTIONS[m].format(n=_state['tf32_min_outputs'])}"


def mode_from_env(environ=None) -> str | None:
    """Reads ``JAXZOO_EMULATE_PRECISION`` ('' or 'none' mean off); raises on anything else."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip().lower()
    if value in ("", "none", "off"):
        return None
    if value not in MODES:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(MODES)} or none")
    return value


def _min_outputs_from_env() -> int:
    raw = os.environ.get(ENV_TF32_MIN_OUTPUTS, "")
    if not raw:
        return TF32_MIN_OUTPUTS
    n = int(raw)
    if n < 0:
        raise ValueError(f"{ENV_TF32_MIN_OUTPUTS}={raw!r}: expected a count >= 0")
    return n


# --- the jax internals, checked once ---------------------------------------------------------

def _internals():
    """Returns (jax.interpreters.mlir, its jax._src module, {name: primitive}, jax._src.lax.lax)
    or raises EmulationUnavailable naming what is missing."""
    import jax

    where = f"jax {jax.__version__}"
    try:
        from jax._src.interpreters import mlir as mlir_internal
        from jax._src.lax import convolution as conv_mod
        from jax._src.lax import lax as lax_mod
        from jax.interpreters import mlir
    except ImportError as err:
        raise EmulationUnavailable(f"{where}: {err}") from err
    needed = {
        "jax._src.lax.lax.dot_general_p": (lax_mod, "dot_general_p"),
        "jax._src.lax.convolution.conv_general_dilated_p": (conv_mod, "conv_general_dilated_p"),
        "jax._src.lax.lax.Precision": (lax_mod, "Precision"),
        "jax._src.lax.lax.canonicalize_precision": (lax_mod, "canonicalize_precision"),
        "jax._src.lax.lax.DotAlgorithm": (lax_mod, "DotAlgorithm"),
        "jax._src.lax.lax.DotAlgorithmPreset": (lax_mod, "DotAlgorithmPreset"),
        "jax.interpreters.mlir.register_lowering": (mlir, "register_lowering"),
        "jax.interpreters.mlir.lower_fun": (mlir, "lower_fun"),
        "jax._src.interpreters.mlir._platform_specific_lowerings":
            (mlir_internal, "_platform_specific_lowerings"),
        "jax._src.interpreters.mlir._lowerings": (mlir_internal, "_lowerings"),
    }
    missing = [name for name, (mod, attr) in needed.items() if not hasattr(mod, attr)]
    if missing:
        raise EmulationUnavailable(f"{where} has no {', '.join(missing)}")
    prims = {"dot_general": lax_mod.dot_general_p,
             "conv_general_dilated": conv_mod.conv_general_dilated_p}
    for name, prim in prims.items():
        if getattr(prim, "name", None) != name:
            raise EmulationUnavailable(f"{where}: primitive {prim!r} is not named {name!r}")
    return mlir, mlir_internal, prims, lax_mod


def _current_cpu_rule(mlir_internal, prim):
    """The CPU lowering rule jax registered for ``prim`` (platform-specific or default)."""
    entry = (mlir_internal._platform_specific_lowerings["cpu"].get(prim)
             or mlir_internal._lowerings.get(prim))
    rule = getattr(entry, "rule", None)
    if not callable(rule):
        raise EmulationUnavailable(f"no CPU lowering rule registered for {prim}")
    return rule


# --- what a product does under the mode ------------------------------------------------------

def _plan(lax_mod, precision, n_outputs, *, conv=False):
    """'exact', ('round', mantissa_bits) or 'bf16_3x' for one product (``conv``: a
    convolution, which a GPU always hands to cuDNN, in TF32 whatever its size)."""
    m = _state["mode"]
    if m is None:
        return "exact"
    if isinstance(precision, (lax_mod.DotAlgorithm, lax_mod.DotAlgorithmPreset)):
        return "exact"  # an explicit algorithm: the caller chose, as on the accelerator
    P = lax_mod.Precision
    if precision is None:
        # The eqn carries the config's value from trace time (None: unset); read the config
        # again at lowering time, so that 'highest' in force now is exact too.
        precision = lax_mod.canonicalize_precision(None)
        if isinstance(precision, (lax_mod.DotAlgorithm, lax_mod.DotAlgorithmPreset)):
            return "exact"
    level = P.DEFAULT if precision is None else max(precision, key=lambda p: p.value)
    if level == P.HIGHEST:
        return "exact"
    if m == "tf32":
        if not conv and n_outputs < _state["tf32_min_outputs"]:
            return "exact"
        return ("round", MANTISSA_BITS["tf32"])
    if level == P.HIGH:
        return "bf16_3x"
    return ("round", MANTISSA_BITS["bf16"])


def _size(aval) -> int:
    n = 1
    for d in aval.shape:
        n *= int(d)
    return n


def _make_rule(prim, original, mlir, lax_mod):
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    f32 = np.dtype(np.float32)

    def rnd(x, bits):
        return lax.reduce_precision(x, exponent_bits=8, mantissa_bits=bits)

    def rounded_operand(ctx, value, aval, bits):
        if aval.dtype != f32:
            return value
        sub = ctx.replace(avals_in=[aval], avals_out=[aval])
        return mlir.lower_fun(functools.partial(rnd, bits=bits),
                              multiple_results=False)(sub, value)[0]

    def rule(ctx, lhs, rhs, **params):
        lhs_aval, rhs_aval = ctx.avals_in[:2]
        plan = _plan(lax_mod, params.get("precision"), _size(ctx.avals_out[0]),
                     conv=prim.name == "conv_general_dilated")
        if plan == "exact" or f32 not in (lhs_aval.dtype, rhs_aval.dtype):
            return original(ctx, lhs, rhs, **params)
        if plan == "bf16_3x":
            return mlir.lower_fun(functools.partial(_bf16_3x, params),
                                  multiple_results=False)(ctx, lhs, rhs)
        _, bits = plan
        lhs = rounded_operand(ctx, lhs, lhs_aval, bits)
        rhs = rounded_operand(ctx, rhs, rhs_aval, bits)
        return original(ctx, lhs, rhs, **params)

    def _bf16_3x(params, lhs, rhs):
        """The TPU's precision=HIGH: hi*hi + hi*lo + lo*hi with bfloat16 parts."""
        def split(x):
            if x.dtype != f32:
                return x, jnp.zeros_like(x)
            hi = rnd(x, MANTISSA_BITS["bf16"])
            return hi, rnd(x - hi, MANTISSA_BITS["bf16"])

        (lh, ll), (rh, rl) = split(lhs), split(rhs)
        exact = dict(params, precision=(lax.Precision.HIGHEST, lax.Precision.HIGHEST))
        parts = [prim.bind(a, b, **exact) for a, b in ((lh, rh), (lh, rl), (ll, rh))]
        return parts[1] + parts[2] + parts[0]

    rule.__name__ = f"emulated_{prim.name}_lowering"
    return rule


def _install_rules():
    """Registers the CPU rules once (they do nothing while the mode is None)."""
    if _state["installed"] is not None:
        return
    mlir, mlir_internal, prims, lax_mod = _internals()
    originals = {}
    for name, prim in prims.items():
        original = _current_cpu_rule(mlir_internal, prim)
        originals[name] = original
        mlir.register_lowering(prim, _make_rule(prim, original, mlir, lax_mod), platform="cpu")
    _state["installed"] = originals


def _self_check():
    """A product whose rounded and exact answers differ, checked in the mode in force."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    m = _state["mode"]
    if m is None:
        return
    if jax.default_backend() != "cpu":
        raise EmulationUnavailable(
            f"precision emulation is for CPU runs; the default backend is "
            f"{jax.default_backend()} (unset {ENV} there: the hardware does this itself)")
    n = max(_state["tf32_min_outputs"], 1)
    side = int(np.ceil(np.sqrt(n)))
    x = 1.0 + 2.0 ** -12  # exact in float32, rounds to 1.0 in bfloat16 and in TF32
    a = jnp.full((side, 1), x, jnp.float32)
    b = jnp.ones((1, side), jnp.float32)
    got = float(jax.jit(jnp.matmul)(a, b)[0, 0])
    with jax.default_matmul_precision("highest"):
        exact = float(jax.jit(jnp.matmul)(a, b)[0, 0])
    if got != 1.0 or exact != x:
        raise EmulationUnavailable(
            f"{m} emulation installed but a {side}x1 @ 1x{side} product of {x!r} gave {got!r} "
            f"(expected 1.0) and {exact!r} at 'highest' (expected {x!r}): the jax internals "
            f"it hooks into (jax {jax.__version__}) no longer do what it assumes")


def set_mode(new_mode: str | None, *, tf32_min_outputs: int | None = None,
             check: bool = True) -> None:
    """Turns the emulation on ('bf16', 'tf32') or off (None) in this process.

    Clears jax's caches (a function compiled under another mode would be reused otherwise) and,
    with ``check``, runs a product it knows the answer to (this starts jax's CPU backend, so
    ``sitecustomize`` passes ``check=False``: a child may still configure its devices).
    """
    import jax

    if new_mode is not None and new_mode not in MODES:
        raise ValueError(f"precision emulation mode {new_mode!r}: expected one of {MODES}")
    if new_mode is not None:
        _install_rules()
    _state["mode"] = new_mode
    _state["tf32_min_outputs"] = (TF32_MIN_OUTPUTS if tf32_min_outputs is None
                                  else int(tf32_min_outputs))
    jax.clear_caches()
    if check:
        _self_check()


def install_from_env(*, check: bool = True) -> str | None:
    """Installs the mode named by ``JAXZOO_EMULATE_PRECISION`` (if any); returns it."""
    m = mode_from_env()
    if m is not None:
        set_mode(m, tf32_min_outputs=_min_outputs_from_env(), check=check)
    return m


@contextlib.contextmanager
def emulated(new_mode: str | None, *, tf32_min_outputs: int | None = None):
    """``with emulated('bf16'): ...`` runs the block under that mode, then restores the old."""
    old = (_state["mode"], _state["tf32_min_outputs"])
    set_mode(new_mode, tf32_min_outputs=tf32_min_outputs)
    try:
        yield
    finally:
        set_mode(old[0], tf32_min_outputs=old[1])
