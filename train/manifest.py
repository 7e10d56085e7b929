"""Run manifests: what produced a run's outputs, written next to them as ``manifest.json``.

A manifest records the configuration, the seed, the versions of the numerical stack, where the
run ran (backend, devices, processes) and a hash of the final parameters, so two runs can be
compared without loading their checkpoints: same seed and same code on CPU must give the same
``params_hash`` (the loop is bitwise reproducible there), different seeds must not.

The hash covers every leaf's path, dtype, shape and raw bytes in a fixed order, so it changes
when a value, a dtype, a shape or a key name changes, and not when the same tree is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from typing import Any

import jax
import numpy as np

MANIFEST_NAME = "manifest.json"

_VERSIONED = ("jax", "jaxlib", "optax", "flax", "numpy", "orbax-checkpoint")


def _host_value(leaf: Any) -> np.ndarray:
    """One leaf as a host NumPy array, gathering it across processes when it is sharded."""
    if isinstance(leaf, jax.Array):
        if leaf.is_fully_replicated:
            # Every device holds all of it; any local copy will do (no collective needed).
            return np.asarray(leaf.addressable_data(0))
        if not leaf.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    return np.asarray(leaf)


def _leaf_records(params: Any) -> list[tuple[str, np.ndarray]]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    records = [(jax.tree_util.keystr(path), _host_value(leaf)) for path, leaf in leaves]
    # Sort by path so the hash does not depend on how a container orders its children.
    records.sort(key=lambda r: r[0])
    return records


def params_hash(params: Any) -> str:
    """SHA-256 of a parameter pytree: leaf paths, dtypes, shapes and bytes, in path order.

    Args:
        params: any pytree of arrays (``jax.Array``, NumPy arrays or Python scalars), e.g.
            ``{'fc1': {'w': <f32>[n_in, n_out], 'b': <f32>[n_out]}}``. Arrays sharded over
            several processes are gathered first (every process must call this then).

    Returns:
        The hex digest (64 characters). Equal trees give equal digests across processes and
        machines (bytes are hashed little-endian in C order); changing one bit of one leaf,
        a dtype, a shape or a key changes it.

    Raises:
        TypeError: if a leaf is not array-like (e.g. a string or an object).
    """
    digest = hashlib.sha256()
    for path, value in _leaf_records(params):
        if value.dtype == object or value.dtype.kind in "USV":
            raise TypeError(
                f"params_hash: expected numeric array leaves, got dtype {value.dtype} at {path}"
            )
        value = np.ascontiguousarray(value)
        if value.dtype.byteorder == ">":
            value = value.astype(value.dtype.newbyteorder("<"))
        header = f"{path}|{value.dtype.str}|{value.shape}\n".encode()
        digest.update(len(header).to_bytes(8, "little"))
        digest.update(header)
        digest.update(value.tobytes())
    return digest.hexdigest()


def param_count(params: Any) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of python and the numerical stack (``None`` for a package not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in _VERSIONED:
        out[dist] = _version(dist)
    out["jax"] = jax.__version__  # the imported one, which is what ran
    return out


def json_line(row: Any) -> str:
    """One JSONL line of strict JSON: NaN and infinities, which JSON lacks, become ``null``
    (Python's ``json`` would write the non-standard ``NaN``), at any depth."""
    return json.dumps(finite_or_none(row), allow_nan=False) + "\n"


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by ``None``, recursively
    through dicts, lists and tuples (tuples become lists): ready for strict JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    """Config values as JSON: dataclasses and mappings recursively, arrays as lists, else repr;
    NaN and infinities as ``null``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (np.generic, np.ndarray, jax.Array)):
        return finite_or_none(np.asarray(value).tolist())
    if callable(value):
        return getattr(value, "__qualname__", None) or getattr(value, "__name__", repr(value))
    return repr(value)


def runtime() -> dict[str, Any]:
    """Where this process runs: backend, global and local device counts, process index/count."""
    return {
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "process_index": jax.process_index(),
        "platform": platform.platform(),
    }


def build_manifest(*, config: Any, seed: int | None, params: Any, extra: dict | None = None):
    """The manifest as a dict (what :func:`write_manifest` writes); see there for fields."""
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"build_manifest: extra must be a dict or None, got {type(extra).__name__}")
    manifest = {
        "config": _jsonable(config),
        "seed": None if seed is None else int(seed),
        "versions": versions(),
        **runtime(),
        "param_count": param_count(params),
        "params_hash": params_hash(params),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": list(sys.argv),
    }
    if extra:
        manifest["extra"] = _jsonable(extra)
    return manifest


def write_manifest(
    out_dir: str | os.PathLike, *, config: Any, seed: int | None, params: Any,
    extra: dict | None = None,
) -> dict:
    """Write ``manifest.json`` into a run's output directory (issue 4, part 9).

    Fields: ``config`` (dataclasses and dicts as JSON, callables by name, anything else by
    ``repr``), ``seed``, ``versions`` (python, jax, jaxlib, optax, flax, numpy,
    orbax-checkpoint), ``backend``, ``device_kind``, ``device_count``, ``local_device_count``,
    ``process_count``, ``process_index``, ``platform``, ``param_count``, ``params_hash`` (see
    :func:`params_hash`), ``created``, ``argv`` and, when given, ``extra``.

    In a multi-process run every process must call this (sharded parameters are gathered
    collectively); only process 0 writes the file. The write is atomic (temporary file, then
    rename), so a reader never sees half a manifest.

    Args:
        out_dir: directory of the run's outputs; created if missing.
        config: the run's configuration (dataclass, dict, or anything with a useful repr).
        seed: the run's seed, or None.
        params: the final parameter pytree.
        extra: optional JSON-able dict of more facts (final metrics, wall time, ...).

    Returns:
        The manifest dict (on every process).
    """
    manifest = build_manifest(config=config, seed=seed, params=params, extra=extra)
    if jax.process_index() == 0:
        os.makedirs(out_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=out_dir)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(manifest, fh, indent=2, sort_keys=True, allow_nan=False)
                fh.write("\n")
            os.replace(tmp, os.path.join(out_dir, MANIFEST_NAME))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return manifest


def read_manifest(out_dir: str | os.PathLike) -> dict:
    """Read the ``manifest.json`` of a run directory (raises FileNotFoundError if absent)."""
    with open(os.path.join(out_dir, MANIFEST_NAME)) as fh:
        return json.load(fh)
