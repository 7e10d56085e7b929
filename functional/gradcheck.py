"""Numerical gradients and gradient checking (seed 004 sections 5.5-5.7).

One-sided ("单边误差") differences ``(f(x + eps) - f(x)) / eps`` have error O(eps); two-sided
("双边误差", central) differences ``(f(x + eps) - f(x - eps)) / (2 eps)`` have error
O(eps^2), which is why gradient checking uses them. The per-leaf error is the notes'
gradient-check ratio ``||g_num - g|| / (||g_num|| + ||g||)`` (Euclidean norms).

The perturbed evaluations run inside one compiled loop per chunk of flat parameter indices
(``lax.map``; ``vectorize=True`` uses ``vmap``), so checking a model with a few thousand
parameters costs a handful of compiled calls, not thousands of Python dispatches.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = ["numerical_grad", "relative_error", "check_grads", "GradCheckReport"]

_TINY = 1e-30


def relative_error(a, b, *, floor=_TINY):
    """The gradient-check ratio ``||a - b|| / max(||a|| + ||b||, floor)`` as a float.

    Seed 004 section 5.6. 0 when both are zero; near 1 when they are unrelated.

    Args:
      a: array (or scalar).
      b: array of the same shape.
      floor: smallest denominator; raise it to stop two near-zero gradients that differ only
        by rounding noise from counting as a large relative error.

    Returns:
      Python float in [0, 1] (or larger only if ``floor`` dominates).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error: shapes differ: {a.shape} vs {b.shape}")
    num = float(np.linalg.norm((a - b).ravel()))
    den = float(np.linalg.norm(a.ravel()) + np.linalg.norm(b.ravel()))
    return num / max(den, floor)


def _path_str(path):
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        else:
            parts.append(str(k))
    return "/".join(parts) if parts else "<root>"


def _check_method(method):
    if method not in ("central", "forward"):
        raise ValueError(f"numerical_grad: method must be 'central' or 'forward', got {method!r}")


def _scalar_fn(f, has_aux, args, kwargs):
    def g(p):
        out = f(p, *args, **kwargs)
        if has_aux:
            out = out[0]
        out = jnp.asarray(out)
        if out.shape != ():
            raise ValueError(f"gradcheck: f must return a scalar, got shape {out.shape}")
        return out

    return g


def _check_float_leaves(params):
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.asarray(leaf).dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"gradcheck: every params leaf must be floating, got {dtype} at {_path_str(path)}"
            )


def _numerical_at(g, params, indices, eps, method, chunk, vectorize):
    """Numerical partial derivatives of scalar ``g`` at the flat ``indices`` of ``params``."""
    flat, unravel = ravel_pytree(params)
    n_idx = len(indices)
    if n_idx == 0:
        return np.zeros((0,), dtype=np.float64)
    chunk = max(1, min(chunk, n_idx))
    signs = (1.0, -1.0) if method == "central" else (1.0,)

    def at(i):  # one row: g at flat + s * eps * e_i for each sign s
        return jnp.stack([g(unravel(flat.at[i].add(s * eps))) for s in signs])

    # lax.map runs the perturbations one after another inside one compiled loop; vmap runs
    # them as one batch, which is faster for dense layers but turns a convolution with a
    # perturbed kernel into a grouped convolution that XLA on CPU runs ~10x slower.
    mapper = jax.vmap(at) if vectorize else (lambda idx: jax.lax.map(at, idx))
    batched = jax.jit(mapper)
    out = []
    for start in range(0, n_idx, chunk):
        idx = np.asarray(indices[start:start + chunk])
        pad = chunk - len(idx)
        if pad:  # keep one compiled shape
            idx = np.concatenate([idx, np.repeat(idx[-1:], pad)])
        vals = np.asarray(batched(jnp.asarray(idx)), dtype=np.float64)
        out.append(vals[: chunk - pad])
    vals = np.concatenate(out, axis=0)
    if method == "central":
        return (vals[:, 0] - vals[:, 1]) / (2 * eps)
    f0 = float(jax.jit(g)(params))
    return (vals[:, 0] - f0) / eps


def numerical_grad(f, params, *args, eps=1e-6, method="central", has_aux=False, chunk=512,
                   vectorize=False, **kwargs):
    """Finite-difference gradient of scalar ``f(params, *args, **kwargs)`` w.r.t. ``params``.

    Runs in the precision of ``params`` (use float64 / ``jax.enable_x64`` for real checks;
    ``check_grads`` does that for you). ``args`` and ``kwargs`` are held fixed (closed over,
    not traced), so they may be any Python objects.

    Args:
      f: function returning a scalar (or ``(scalar, aux)`` with ``has_aux=True``); must be
        traceable by ``jax.jit`` / ``jax.vmap``.
      params: pytree of floating arrays.
      *args: further positional arguments of ``f``.
      eps: step size.
      method: ``'central'`` (two-sided, error O(eps^2)) or ``'forward'`` (one-sided, O(eps)).
      has_aux: whether ``f`` returns ``(scalar, aux)``.
      chunk: perturbations evaluated per compiled call.
      vectorize: evaluate a chunk with ``jax.vmap`` instead of a sequential ``lax.map``
        (faster for dense-only models, much slower for convolutions on CPU).
      **kwargs: keyword arguments of ``f``.

    Returns:
      A pytree like ``params`` holding the numerical gradient.
    """
    _check_method(method)
    _check_float_leaves(params)
    g = _scalar_fn(f, has_aux, args, kwargs)
    flat, unravel = ravel_pytree(params)
    num = _numerical_at(g, params, np.arange(flat.size), eps, method, chunk, vectorize)
    return unravel(jnp.asarray(num, dtype=flat.dtype))


@dataclasses.dataclass(frozen=True)
class GradCheckReport:
    """Result of ``check_grads``.

    Attributes:
      ok: whether every leaf's error is within ``rtol``.
      worst_leaf: path of the leaf with the largest error, e.g. ``'fc1/w'``.
      worst_error: that error (the gradient-check ratio of ``relative_error``).
      errors: path -> error for every leaf.
      checked: path -> number of entries compared (fewer than the leaf's size when
        ``max_entries`` subsampled it).
    """

    ok: bool
    worst_leaf: str
    worst_error: float
    errors: dict
    checked: dict


def _to_f64(tree):
    # Only array leaves are cast; Python scalars stay weakly typed and other objects
    # (configs, PRNG keys, flags) pass through untouched.
    def cast(x):
        if isinstance(x, (jax.Array, np.ndarray)) and jnp.issubdtype(x.dtype, jnp.floating):
            return jnp.asarray(x, dtype=jnp.float64)
        return x

    return jax.tree_util.tree_map(cast, tree)


def check_grads(f, params, *args, eps=1e-6, rtol=1e-6, atol=1e-9, max_entries=None, subset_seed=0,
                has_aux=False, chunk=512, vectorize=False, **kwargs):
    """Checks ``jax.grad(f)`` against central differences, leaf by leaf, in float64.

    Inside ``jax.enable_x64(True)`` every floating leaf of ``params`` and ``args`` is cast to
    float64; the analytic gradient ``jax.grad(f)`` is compared with central differences
    (step ``eps``) per leaf using the notes' ratio ``||num - ana|| / (||num|| + ||ana||)``
    (seed 004 section 5.6), with the denominator floored at ``atol * sqrt(entries)`` so that
    an exactly-zero gradient and rounding noise around it do not count as a mismatch.
    Functions that cast to float32 internally cannot be checked this tightly.

    Args:
      f: ``f(params, *args, **kwargs) -> scalar`` (or ``(scalar, aux)`` with ``has_aux``);
        must be traceable by ``jax.jit`` and ``jax.vmap``.
      params: pytree of floating arrays (nested dicts keyed by meaning).
      *args: further positional arguments (batches, keys, configs): held fixed.
      eps: finite-difference step.
      rtol: largest allowed per-leaf error.
      atol: per-entry scale below which gradients count as zero (see above).
      max_entries: if set, compare at most this many randomly chosen entries per leaf
        (chosen with ``numpy.random.default_rng(subset_seed)``) to bound the cost on big models.
      subset_seed: seed for that subset.
      has_aux: whether ``f`` returns ``(scalar, aux)``.
      chunk: perturbations per compiled call.
      vectorize: see ``numerical_grad``.
      **kwargs: keyword arguments of ``f`` (held fixed).

    Returns:
      A ``GradCheckReport`` with ``ok=True``.

    Raises:
      AssertionError: naming the worst leaf and its error when it exceeds ``rtol``.
      TypeError: when a params leaf is not floating.
    """
    _check_float_leaves(params)
    if max_entries is not None and max_entries < 1:
        raise ValueError(f"check_grads: max_entries must be >= 1 or None, got {max_entries}")
    with jax.enable_x64(True):
        params64 = _to_f64(params)
        args64 = _to_f64(args)
        kwargs64 = _to_f64(kwargs)
        g = _scalar_fn(f, has_aux, args64, kwargs64)
        analytic = jax.jit(jax.grad(g))(params64)

        leaves_with_path = jax.tree_util.tree_leaves_with_path(params64)
        sizes = [int(np.size(leaf)) for _, leaf in leaves_with_path]
        offsets = np.cumsum([0] + sizes)
        rng = np.random.default_rng(subset_seed)
        chosen = []
        for size in sizes:
            if max_entries is None or size <= max_entries:
                chosen.append(np.arange(size))
            else:
                chosen.append(np.sort(rng.choice(size, max_entries, replace=False)))
        flat_idx = np.concatenate(
            [off + c for off, c in zip(offsets[:-1], chosen, strict=True)] + [np.zeros(0, int)]
        ).astype(np.int64)
        numeric = _numerical_at(g, params64, flat_idx, eps, "central", chunk, vectorize)

    ana_leaves = jax.tree_util.tree_leaves(analytic)
    errors, checked = {}, {}
    start = 0
    for (path, _), ana, idx in zip(leaves_with_path, ana_leaves, chosen, strict=True):
        name = _path_str(path)
        num = numeric[start:start + len(idx)]
        start += len(idx)
        ana_sel = np.asarray(ana, dtype=np.float64).ravel()[idx]
        errors[name] = relative_error(num, ana_sel, floor=atol * math.sqrt(max(len(idx), 1)))
        checked[name] = len(idx)
    if not errors:
        raise ValueError("check_grads: params has no leaves")
    worst = max(errors, key=errors.get)
    report = GradCheckReport(
        ok=errors[worst] <= rtol,
        worst_leaf=worst,
        worst_error=errors[worst],
        errors=errors,
        checked=checked,
    )
    if not report.ok:
        ranked = sorted(errors.items(), key=lambda kv: -kv[1])
        listed = ", ".join(f"{k}: {v:.2e}" for k, v in ranked[:8])
        more = f" and {len(ranked) - 8} more" if len(ranked) > 8 else ""
        raise AssertionError(
            f"check_grads: gradient mismatch at leaf {worst!r}: relative error "
            f"{errors[worst]:.3e} > rtol {rtol:.1e} (leaves by error: {listed}{more})"
        )
    return report
