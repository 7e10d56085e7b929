"""Running an epoch: one jitted ``lax.scan``, or a Python loop over a jitted step.

Two ways to run an epoch over data held on the device give bitwise the same result on CPU:

- ``'scan'``: the whole epoch is one jitted ``lax.scan`` over batch indices, gathering each
  batch inside; no Python per step. This removes dispatch cost, which dominates small models.
- ``'loop'``: a Python loop calls the same jitted step body once per batch.

Which is faster depends on the model: on the project's CPU an MLP ran about 1.9x faster in a
scan while a small CNN ran about 4x slower (``/work/shared/perf-notes.md``). The cause: XLA's
CPU backend runs a convolution with its fast Eigen kernel only in the canonical layout (input
``N...C``, kernel ``...IO``), and its ConvCanonicalization pass, which transposes other layouts
into that one, visits only the entry computation. The backward convolutions ``jax.grad`` emits
(``b0f_0oi``, ``f0b_i0o``) therefore stay non-canonical inside a ``while`` body (``lax.scan``)
and run as a generic loop nest; ``unroll`` does not help because the body stays a loop body.
Writing the convolution's VJP with explicitly canonical backward convolutions (or as
im2col + dot) makes the scanned CNN faster than the loop; see
``benchmarks/bench_conv_in_scan.py``. :class:`PathChooser` measures instead of assuming.
Streaming data always uses the loop.

Compiled functions are reused across ``fit`` calls that pass the same ``loss_fn`` and optimizer
objects (:class:`ExecutableCache`), so repeated runs over seeds, or a resume, do not recompile.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from train import sharding as shd
from train.loop import metrics
from train.loop.plan import gather


class Runner:
    """Jitted step, scanned-chunk and streamed-step functions for one ``train_step``, mesh
    and NaN policy. Each takes and returns ``(state, acc)`` (the metric accumulator of
    :mod:`train.loop.metrics`) and donates both.

    Args:
        train_step: ``train_step(state, batch) -> (state, metrics)`` (``make_train_step``).
        mesh: ``None`` or the data-parallel mesh (``train.sharding``).
        policy: the step's NaN policy; under ``'stop'`` everything after the first
            non-finite step is frozen, so the state returned is the last finite one.
    """

    def __init__(self, train_step: Callable, mesh, policy):
        self.mesh, self.policy = mesh, policy
        self.compiled_scan = {}   # argument signature -> AOT-compiled scanned chunk

        def body(state, acc, batch):
            batch = shd.constrain_batch(batch, mesh)
            new, m = train_step(state, batch)
            acc = metrics.add(acc, m, state.step)
            if policy == "stop":   # freeze everything after the first non-finite step
                stopped = acc["bad_step"] >= 0
                new = jax.tree.map(lambda a, b: jnp.where(stopped, a, b), state, new)
            return new, acc

        def step_at(state, acc, data, idx, w, b):
            return body(state, acc, gather(data, idx[b], None if w is None else w[b]))

        def scan_epoch(state, acc, data, idx, w):
            def f(carry, xs):
                i, wi = xs
                return body(*carry, gather(data, i, wi)), None
            return jax.lax.scan(f, (state, acc), (idx, w))[0]

        self.step_at = jax.jit(step_at, donate_argnums=(0, 1))
        self.scan_epoch = jax.jit(scan_epoch, donate_argnums=(0, 1))
        self.stream_step = jax.jit(body, donate_argnums=(0, 1))

    def loop(self, state, acc, data, idx, w, *, timed=False):
        """Per-step loop over device data; with ``timed`` also seconds/step after step 0."""
        t = None
        for b in range(idx.shape[0]):
            state, acc = self.step_at(state, acc, data, idx, w, np.int32(b))
            if timed and b == 0:
                jax.block_until_ready(acc)
                t = time.perf_counter()
        per = None
        if timed and idx.shape[0] > 1:
            jax.block_until_ready(acc)
            per = (time.perf_counter() - t) / (idx.shape[0] - 1)
        return state, acc, per

    @staticmethod
    def _signature(*args):
        leaves, treedef = jax.tree.flatten(args)
        return treedef, tuple((np.shape(x), str(x.dtype)) for x in leaves)

    def compile_scan(self, state, acc, data, idx, w):
        """Compile the scan over ``idx.shape[0]`` batches ahead of time (so the choice can time
        its execution alone); one executable per argument signature."""
        sig = self._signature(state, acc, data, idx, w)
        if sig not in self.compiled_scan:
            self.compiled_scan[sig] = self.scan_epoch.lower(state, acc, data, idx, w).compile()
        return self.compiled_scan[sig]

    def run_chunk(self, path: str, state, acc, data, idx, w, chooser: PathChooser):
        """Run the batches ``idx`` (``<i32>[batches, batch]``, on the device) by ``path``,
        timing them for ``chooser`` while it is still undecided."""
        if path == "loop":
            state, acc, per = self.loop(state, acc, data, idx, w, timed=not chooser.decided)
            if per is not None:
                chooser.record("loop", per)
            return state, acc
        if chooser.decided:
            return self.scan_epoch(state, acc, data, idx, w)
        # compiled first, to time the execution alone; afterwards jit's own dispatch reuses
        # that executable
        scan = self.compile_scan(state, acc, data, idx, w)
        t = time.perf_counter()
        state, acc = scan(state, acc, data, idx, w)
        jax.block_until_ready(acc)
        chooser.record("scan", (time.perf_counter() - t) / idx.shape[0])
        return state, acc


class PathChooser:
    """``fast_path='auto'``: the measured choice between a loop and a scanned epoch.

    The first epoch runs the loop, the next the scan, each timed without compilation; the
    faster is kept. A first execution carries one-time costs (about a millisecond here), which
    for a small model can exceed the whole epoch, so a scan that loses is timed once more
    before it is dropped. A fixed ``'scan'`` or ``'loop'`` is decided from the start, and an
    epoch of one batch (nothing to fuse) decides for the loop.
    """

    def __init__(self, fast_path: str):
        self.chosen = None if fast_path == "auto" else fast_path
        self.measured: dict[str, float] = {}
        self.scan_runs = 0
        self.report: dict | None = None   # {'auto_seconds_per_step': ..., 'chosen': ...}

    @property
    def decided(self) -> bool:
        return self.chosen is not None

    def next_path(self, n_batches: int) -> str:
        """The path for the next chunk of an epoch of ``n_batches`` batches."""
        if self.chosen is None and n_batches < 2:
            self.chosen = "loop"
        if self.chosen is not None:
            return self.chosen
        return "loop" if "loop" not in self.measured else "scan"

    def record(self, path: str, seconds_per_step: float) -> None:
        """Note a timing; decide once the scan has won, or lost twice."""
        if path == "loop":
            self.measured["loop"] = seconds_per_step
            return
        self.scan_runs += 1
        self.measured["scan"] = min(self.measured.get("scan", math.inf), seconds_per_step)
        if self.measured["scan"] < self.measured["loop"] or self.scan_runs >= 2:
            self.chosen = min(self.measured, key=self.measured.get)
            self.report = {"auto_seconds_per_step": dict(self.measured), "chosen": self.chosen}


class ExecutableCache:
    """A small LRU of jitted functions keyed by the identity of the objects they close over.

    ``jax.jit`` caches executables per function object, so rebuilding the step closures in
    every ``fit`` call would recompile; repeated runs (seeds, resumes, sweeps that share an
    optimizer object) hit this cache instead. ``objects`` (functions, optimizers) compare by
    identity and are held by the cache, so an id cannot be reused while its entry lives;
    ``values`` (policy, mesh) compare by equality.
    """

    def __init__(self, size: int = 8):
        self.size = size
        self._entries: collections.OrderedDict = collections.OrderedDict()

    def get(self, kind: str, build: Callable, objects: tuple, values: tuple):
        key = (kind, *map(id, objects), *values)
        hit = self._entries.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], objects, strict=True)):
            self._entries.move_to_end(key)
            return hit[1]
        value = build()
        self._entries[key] = (objects, value)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value


EXECUTABLES = ExecutableCache()
