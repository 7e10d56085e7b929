"""Argument checks for the constructors of ``functional.optim`` and ``functional.schedules``.

Every check raises a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, out of
range) whose message names the function the user called, the argument, what was expected and
what came: ``adagrad: eps must be in (0, inf), got 0.0``.

Each argument is checked once, by the building block that owns it, yet the error names the
function the user called. Every public constructor is decorated with :func:`names_errors`;
:func:`caller` is the name its errors carry, which is its own name unless another decorated
constructor is building it: ``adagrad`` builds ``scale_by_rss``, which checks ``eps`` and
reports ``adagrad: eps ...``. Where the caller passes an argument under another name
(``sgd``'s ``momentum`` is ``trace``'s ``decay``), it builds the block inside
:func:`renamed` and the error says ``sgd: momentum ...``.

A value traced by JAX (a constructor called inside ``jax.jit`` or by
``optax.inject_hyperparams`` under ``jit``) cannot be inspected, so numeric checks let it pass.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import numbers
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# (name of the function the user called, {block's argument name: the caller's name for it}),
# or None outside every decorated constructor.
_CALL: contextvars.ContextVar[tuple[str, dict[str, str]] | None] = contextvars.ContextVar(
    "jaxzoo_validate_call", default=None
)


def names_errors(f: Callable) -> Callable:
    """Decorator for a public constructor: the errors raised while it builds name it, unless
    another decorated constructor is building it (then they name that one)."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        if _CALL.get() is not None:
            return f(*args, **kwargs)
        token = _CALL.set((f.__name__, {}))
        try:
            return f(*args, **kwargs)
        finally:
            _CALL.reset(token)

    return wrapper


def caller() -> str:
    """The name errors raised now should carry: the outermost decorated constructor running.

    Read it once at construction to name errors raised later (at update time)."""
    call = _CALL.get()
    if call is None:
        raise RuntimeError("caller: called outside a function decorated with names_errors")
    return call[0]


@contextlib.contextmanager
def renamed(**names: str) -> Iterator[None]:
    """Inside, errors about a block's argument ``k`` name it ``names[k]``, the name under
    which the user passed it: ``with renamed(decay="momentum"): trace(momentum)``."""
    fn, old = _CALL.get()
    token = _CALL.set((fn, {**old, **names}))
    try:
        yield
    finally:
        _CALL.reset(token)


def _argument(name: str) -> str:
    """The user's name for a block's argument ``name`` (see :func:`renamed`)."""
    call = _CALL.get()
    return name if call is None else call[1].get(name, name)


def _scalar(value) -> float | str | None:
    """The value as a Python float; None when it is traced (nothing to check); "bad" when it
    is not a real scalar (bool, complex, string, non-scalar or object array, ...)."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, numbers.Real | np.ndarray | jax.Array
    ):
        return "bad"
    arr = np.asarray(value)
    real = jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)
    if arr.shape != () or not real:
        return "bad"
    return float(arr)


def real(fn: str, name: str, value: Any, *, low: float | None = None,
         high: float | None = None, low_open: bool = False, high_open: bool = False,
         noun: str = "real scalar") -> None:
    """A finite real scalar in the interval from ``low`` to ``high`` (closed ends unless
    ``*_open``; a missing end is infinity, which is never allowed, nor is NaN).

    Python and NumPy reals and 0-d real NumPy/JAX arrays pass; bools, complex numbers and
    anything else raise ``TypeError: {fn}: {name} must be a {noun}, got ...``.
    """
    v = _scalar(value)
    if v is None:
        return
    if v == "bad":
        raise TypeError(f"{fn}: {_argument(name)} must be a {noun}, got {value!r}")
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high or not np.isfinite(v):
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{fn}: {_argument(name)} must be in {lo}, {hi}, got {value!r}")


def positive(fn: str, name: str, value: Any) -> None:
    """A finite real scalar > 0 (step sizes, epsilons, clipping thresholds)."""
    real(fn, name, value, low=0.0, low_open=True)


def nonnegative(fn: str, name: str, value: Any) -> None:
    """A finite real scalar >= 0 (initial accumulators, weight decay, eps_root)."""
    real(fn, name, value, low=0.0)


def fraction(fn: str, name: str, value: Any) -> None:
    """A real scalar in [0, 1): a decay rate of a moving average or a momentum coefficient."""
    real(fn, name, value, low=0.0, high=1.0, high_open=True)


def integer(fn: str, name: str, value: Any, *, low: int) -> None:
    """A Python or NumPy integer (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {_argument(name)} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{fn}: {_argument(name)} must be an int >= {low}, got {value!r}")


def boolean(fn: str, name: str, value: Any) -> None:
    """A Python or NumPy bool (1, 0, None and strings are not)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{fn}: {_argument(name)} must be a bool, got {value!r}")


def one_of(fn: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    """One of a few strings: ``form must be 'optax' or 'notes', got 'pytorch'``."""
    if value not in choices:
        expected = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{fn}: {_argument(name)} must be {expected}, got {value!r}")


def function(fn: str, name: str, value: Any) -> None:
    """A callable (a schedule, say)."""
    if not callable(value):
        raise TypeError(f"{fn}: {_argument(name)} must be callable, got {value!r}")


def _is_bool_leaf(x) -> bool:
    """A concrete boolean: a Python or NumPy bool, or a 0-d bool array that is not traced."""
    if isinstance(x, bool | np.bool_):
        return True
    if isinstance(x, jax.core.Tracer) or not isinstance(x, np.ndarray | jax.Array):
        return False
    return x.shape == () and x.dtype == np.bool_


def mask_tree(fn: str, name: str, mask: Any) -> None:
    """A pytree whose leaves are concrete bools (a weight-decay mask, or what a mask function
    returned); None and callables are checked by the caller, which knows what they mean."""
    if not all(_is_bool_leaf(m) for m in jax.tree.leaves(mask)):
        raise TypeError(
            f"{fn}: {_argument(name)} must be None, a callable, or a pytree whose leaves are "
            f"bools, got {mask!r}"
        )
