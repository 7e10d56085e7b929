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

**What a step costs beyond the bare step.** On a small model every extra kernel in the scanned
step is a visible share of it (on an H200 the MNIST-1D MLP's bare Adam step takes about 42 us;
the step with per-step norms, a per-step NaN guard, a ``lax.cond`` and a dozen scalar
accumulators took 106 us). So a step here adds one fused kernel: its metrics become one row
added to one accumulator vector (:mod:`train.loop.metrics`). The rest is paid per chunk of
steps, not per step:

- ``nan_policy='stop'`` (the default) checks the chunk's final state and loss sums once, at
  its end (a NaN or Inf in the parameters or optimizer state persists, and a non-finite loss
  shows in the sums); only when that fails does :meth:`Runner.replay` rerun the chunk step by
  step from its start (kept: the chunk does not donate its input then) with the fully guarded
  step, to find the first non-finite step and leaf and the last finite state. ``'skip'``
  guards every step, as it must to skip one.
- ``norms='last'`` (the default) measures the global norms on the epoch's last step only (the
  history says ``norm_steps``); ``'every'`` measures every step (the epoch mean), ``None``
  never.

Compiled functions are reused across ``fit`` calls that pass the same ``loss_fn`` and optimizer
objects (:class:`ExecutableCache`), so repeated runs over seeds, or a resume, do not recompile.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from train import sharding as shd
from train.loop import metrics
from train.loop.plan import gather
from train.loop.step import finite_flag, make_train_step, norms_of

NORMS = ("last", "every", None)


def stepper(step: Callable, layout: metrics.Layout, *, last: bool):
    """How a chunk of steps accumulates its metrics: ``(one, finish, start)``.

    ``one(state, acc, carry, batch) -> (state, acc, carry)`` takes one step and adds its
    metrics; ``finish(state, acc, carry) -> acc`` ends the chunk; ``start(state) -> carry``
    begins it. With ``last`` (``norms='last'``; ``step`` made ``with_grads``), the carry holds
    the latest step's gradients and updates (and whether the guard applied it), and
    ``finish`` adds their norms and the parameters' once: the norms of the chunk's last step,
    measured with no second copy of the step in the program and no work on the other steps.
    Without ``last`` the carry is empty and ``finish`` adds nothing.
    """
    if not last:
        def one(state, acc, carry, batch):
            new, m = step(state, batch)
            return new, metrics.add(acc, m, layout), carry
        return one, (lambda state, acc, carry: acc), (lambda state: ())

    def one(state, acc, carry, batch):
        new, m, (grads, updates) = step(state, batch)
        applied = 1.0 - jnp.asarray(m.get("nonfinite", 0.0), jnp.float32)
        return new, metrics.add(acc, m, layout), (grads, updates, applied)

    def finish(state, acc, carry):
        grads, updates, applied = carry
        return metrics.add_norms(acc, norms_of(grads, state.params, updates), layout, applied)

    def start(state):
        zeros = lambda: jax.tree.map(jnp.zeros_like, state.params)   # noqa: E731
        return zeros(), zeros(), jnp.zeros((), jnp.float32)
    return one, finish, start


class Runner:
    """Jitted chunk, step and streamed-step functions for one loss, optimizer, mesh, NaN
    policy and norms mode. Each takes and returns ``(state, acc)``, the metric accumulator of
    :mod:`train.loop.metrics` (``acc`` is always donated; the state only when no replay may
    need it: ``nan_policy`` other than ``'stop'``). An epoch's first chunk takes ``acc=None``
    and starts from zero sums made inside its program: a separate dispatch for them cost a
    tiny model's scanned epoch about 5% on this CPU.

    Args:
        loss_fn, optimizer: as for ``make_train_step``.
        mesh: ``None`` or the data-parallel mesh (``train.sharding``).
        policy: the NaN policy (see the module doc).
        norms: ``'last'``, ``'every'`` or ``None`` (see the module doc).
    """

    def __init__(self, loss_fn: Callable, optimizer, mesh, policy, norms):
        self.mesh, self.policy, self.norms = mesh, policy, norms
        guard = "skip" if policy == "skip" else None
        self.step = make_train_step(loss_fn, optimizer, nan_policy=guard,
                                    norms=norms == "every", name_leaf=False,
                                    with_grads=norms == "last")
        # streamed batches measure every step's norms (no chunk end to measure at)
        self.stream_step_fn = make_train_step(loss_fn, optimizer, nan_policy=guard,
                                              norms=norms is not None, name_leaf=False)
        self.reference = make_train_step(loss_fn, optimizer, nan_policy="stop", norms=False)
        self.layout = None
        self.compiled_scan = {}   # argument signature -> AOT-compiled scanned chunk

    @property
    def checks_chunks(self) -> bool:
        """Whether chunks are checked at their end (and replayed when they fail)."""
        return self.policy == "stop"

    def prepare(self, state, batch) -> metrics.Layout:
        """Learn the metrics' layout from one batch and build the jitted functions (once)."""
        if self.layout is not None:
            return self.layout
        names = jax.eval_shape(self.step, state, batch)[1]
        self.layout = metrics.Layout.of(names, norms=self.norms is not None)
        mesh, layout = self.mesh, self.layout
        one, finish, start = stepper(lambda st, b: self.step(st, shd.constrain_batch(b, mesh)),
                                     layout, last=self.norms == "last")

        def check(state, acc):
            if not self.checks_chunks:
                return np.True_
            return finite_flag((state.params, state.opt_state, state.model_state)) & \
                metrics.finite(acc, layout)

        def scan_chunk(state, acc, data, idx, w, epoch_end=True):
            if acc is None:   # a fresh epoch: its zero sums made here, not by a dispatch
                acc = metrics.init(layout)

            def body(carry, xs):
                i, wi = xs
                return one(*carry, gather(data, i, wi)), None

            state, acc, last = jax.lax.scan(body, (state, acc, start(state)), (idx, w))[0]
            if epoch_end:   # norms='last' measures the epoch's last step
                acc = finish(state, acc, last)
            return state, acc, check(state, acc)

        def step_at(state, acc, carry, data, idx, w, b):
            return one(state, acc, carry, gather(data, idx[b], None if w is None else w[b]))

        donate = (1,) if self.checks_chunks else (0, 1)
        self.scan_chunk = jax.jit(scan_chunk, donate_argnums=donate, static_argnums=5)
        self.step_at = jax.jit(step_at, donate_argnums=donate)
        self.start, self.finish = jax.jit(start), jax.jit(finish)
        self.zeros = jax.jit(lambda: metrics.init(layout))
        stream_one, _, _ = stepper(
            lambda st, b: self.stream_step_fn(st, shd.constrain_batch(b, mesh)), layout,
            last=False)
        self.stream_step = jax.jit(lambda st, acc, b: stream_one(st, acc, (), b)[:2],
                                   donate_argnums=donate)
        self.check = jax.jit(check)
        self.reference_step = jax.jit(lambda st, b: self.reference(
            st, shd.constrain_batch(b, mesh)))
        return layout

    def loop(self, state, acc, data, idx, w, *, timed=False, epoch_end=True):
        """Per-step loop over device data; with ``timed`` also seconds/step after step 0."""
        t = None
        acc = self.zeros() if acc is None else acc
        carry = self.start(state)
        for b in range(idx.shape[0]):
            state, acc, carry = self.step_at(state, acc, carry, data, idx, w, np.int32(b))
            if timed and b == 0:
                jax.block_until_ready(acc)
                t = time.perf_counter()
        if epoch_end:
            acc = self.finish(state, acc, carry)
        per = None
        if timed and idx.shape[0] > 1:
            jax.block_until_ready(acc)
            per = (time.perf_counter() - t) / (idx.shape[0] - 1)
        return state, acc, self.check(state, acc), per

    @staticmethod
    def _signature(*args):
        leaves, treedef = jax.tree.flatten(args)
        return treedef, tuple((np.shape(x), str(x.dtype)) for x in leaves)

    def compile_scan(self, state, acc, data, idx, w, epoch_end=True):
        """Compile the scan over ``idx.shape[0]`` batches ahead of time (so the choice can time
        its execution alone); one executable per argument signature."""
        sig = (self._signature(state, acc, data, idx, w), epoch_end)
        if sig not in self.compiled_scan:
            self.compiled_scan[sig] = self.scan_chunk.lower(state, acc, data, idx, w,
                                                            epoch_end).compile()
        return self.compiled_scan[sig]

    def run_chunk(self, path: str, state, acc, data, idx, w, chooser: PathChooser, *,
                  epoch_end: bool = True):
        """Run the batches ``idx`` (``<i32>[batches, batch]``, on the device) by ``path``,
        timing them for ``chooser`` while it is still undecided; ``epoch_end``: the chunk
        ends its epoch (where ``norms='last'`` measures). Returns ``(state, acc, finite)``,
        ``finite`` a device ``<bool>[]`` (always true unless chunks are checked)."""
        if path == "loop":
            state, acc, ok, per = self.loop(state, acc, data, idx, w,
                                            timed=not chooser.decided, epoch_end=epoch_end)
            if per is not None:
                chooser.record("loop", per)
            return state, acc, ok
        if chooser.decided:
            return self.scan_chunk(state, acc, data, idx, w, epoch_end)
        # compiled first, to time the execution alone; afterwards jit's own dispatch reuses
        # that executable
        scan = self.compile_scan(state, acc, data, idx, w, epoch_end)
        t = time.perf_counter()
        state, acc, ok = scan(state, acc, data, idx, w)
        jax.block_until_ready(acc)
        chooser.record("scan", (time.perf_counter() - t) / idx.shape[0])
        return state, acc, ok

    def replay(self, state, batches: Iterable):
        """Rerun ``batches`` one by one from ``state`` with the fully guarded step.

        Returns:
            ``(step, leaf index, last finite state)`` of the first non-finite step (leaf
            indices as ``nonfinite_leaf_names``), or None when every step stays finite.
        """
        for batch in batches:
            new, m = self.reference_step(state, batch)
            if float(m["nonfinite"]) > 0:
                return int(state.step), int(m["nonfinite_leaf"]), state
            state = new
        return None


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
    ``values`` (policy, mesh, norms) compare by equality.
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
