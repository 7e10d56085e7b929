"""One ``fit`` call's progress, epoch by epoch: the epochs over device data or a stream, the
NaN check of each chunk of steps, the epoch's logs and evaluation, early stopping, callbacks
and checkpoints (``train.loop.fit`` composes these)."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from train import sharding as shd
from train.loop import metrics
from train.loop.plan import epoch_plan, gather, n_rows, stream_batches
from train.loop.runner import PathChooser, Runner
from train.loop.settings import CheckpointSettings, Monitor
from train.loop.step import TrainState, all_finite, make_eval_step, nonfinite_leaf_names
from train.manifest import json_line


class NonFiniteError(FloatingPointError):
    """Raised by ``fit`` under ``nan_policy='stop'`` when a step produced NaN or Inf.

    Attributes:
        step: the global step index whose update was non-finite.
        leaf: the first non-finite leaf: ``'loss'``, ``'grads[...]'``, ``'params[...]'`` or
            ``'model_state[...]'`` (paths as ``jax.tree_util.keystr`` writes them).
        state: the last finite ``TrainState`` (the update of ``step`` was not applied).
    """

    def __init__(self, message: str, *, step: int, leaf: str, state: TrainState | None = None):
        super().__init__(message)
        self.step, self.leaf, self.state = step, leaf, state


class ResumeMismatchError(ValueError):
    """``fit(resume=True)`` met a checkpoint written with other data settings (rows,
    batch_size, shuffle, drop_last, data key); continuing would silently mix two runs."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything ``fit`` was asked to do, checked (``train.loop.fit``'s first stage)."""

    epochs: int
    batch_size: int | None
    shuffle: Any
    drop_last: bool
    fast_path: str
    nan_policy: str | None
    norms: str | None
    eval_batch_size: int | None
    early_stopping: Monitor | None
    checkpoints: CheckpointSettings | None
    callbacks: tuple
    progress: bool
    history_path: str | None


def call_callbacks(callbacks, name, *args) -> bool:
    """Call ``name`` on each callback (a plain callable is an ``on_epoch_end``); True when one
    asks to stop."""
    stop = False
    for cb in callbacks:
        fn = getattr(cb, name, None)
        if fn is None and name == "on_epoch_end" and callable(cb):
            fn = cb
        if fn is not None:
            stop = bool(fn(*args)) or stop
    return stop


class Run:
    """The progress of one ``fit`` call: history, early-stopping state, checkpoints, the
    position to start from, and the epoch-by-epoch work."""

    def __init__(self, s: Settings, *, state, runner: Runner, evaluator, eval_loss_fn, data,
                 edata, data_key, run_settings, where: str):
        self.s, self.state, self.runner = s, state, runner
        self.evaluator, self.eval_loss_fn = evaluator, eval_loss_fn
        self.data, self.edata, self.data_key = data, edata, data_key
        self.run_settings, self.where = run_settings, where
        self.leaf_names = nonfinite_leaf_names(state)
        self.history: list[dict] = []
        self.es_state = {"best": None, "wait": 0}
        self.start_epoch, self.start_batch, self.resumed_acc = 0, 0, None
        self.steps = 0   # state.step, counted on the host (no device round trip per epoch)
        self.layout = None
        self.chooser = PathChooser(s.fast_path)
        self.timings: list[dict] = []
        self.ahead: dict = {}   # epoch -> (idx, w, (idx, w) on the device), drawn a step early
        self.manager = None
        if s.checkpoints is not None:
            self.manager = self._open_manager(s.checkpoints)

    # --- checkpoints

    def _open_manager(self, c: CheckpointSettings):
        from train import checkpoint as ckpt_lib

        manager = ckpt_lib.CheckpointManager(c.directory, keep=c.keep,
                                             best_metric=c.best and c.best.metric,
                                             best_mode=c.best and c.best.mode,
                                             asynchronous=True)
        if not c.resume and manager.latest_step() is not None:
            raise ValueError(
                f"{self.where}: checkpoint_dir {c.directory!r} already holds checkpoints "
                f"(steps {manager.steps()}) of an earlier run; pass resume=True to continue "
                "that run, or give a fresh run an empty directory (nothing was deleted)")
        return manager

    def finish_saves(self, *, failing: bool = False) -> None:
        """Wait for the checkpoint still being written in the background (the manager is
        asynchronous: an epoch's save overlaps the next epochs). A failed write raises its
        ``CheckpointWriteError``; with ``failing`` (another error is already on its way out)
        it is a warning instead."""
        if self.manager is None:
            return
        if not failing:
            self.manager.wait()
            return
        try:
            self.manager.wait()
        except Exception as e:   # the error in flight is the one to report
            warnings.warn(f"{self.where}: {e}", RuntimeWarning, stacklevel=2)

    def restore(self) -> None:
        """Stage 3: continue from the newest good checkpoint, if asked and there is one."""
        c = self.s.checkpoints
        if c is None or not c.resume or self.manager.latest_step() is None:
            return
        self.state, meta = self.manager.restore(self.state)
        saved = meta.get("run")
        if saved is not None and saved != self.run_settings:
            now = self.run_settings
            diff = ", ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}"
                             for k in sorted(set(saved) | set(now))
                             if saved.get(k) != now.get(k))
            raise ResumeMismatchError(
                f"{self.where}: resume=True, but the checkpoint in {c.directory!r} was "
                f"written by a run with other data settings ({diff}; data_key comes from "
                "key); resume with the same data, key, batch_size, shuffle and drop_last")
        self.start_epoch = int(meta["next_epoch"])
        self.start_batch = int(meta.get("next_batch", 0))
        self.resumed_acc = meta.get("acc")
        if meta.get("stopped"):   # early stopping or a callback ended that run
            self.start_epoch = self.s.epochs
        self.history = list(meta["history"])
        self.es_state = dict(meta.get("early_stopping", self.es_state))
        self.steps = int(jax.device_get(self.state.step))

    def save(self, epoch, next_batch, acc_host=None, logs=None, stopped=False) -> None:
        # under nan_policy='stop' the chunk's check has just shown the state finite
        if not self.runner.checks_chunks and not all_finite(self.state):
            warnings.warn(f"fit: the state at epoch {epoch} is non-finite; not checkpointed",
                          RuntimeWarning, stacklevel=3)
            return
        meta = {"next_epoch": epoch + (next_batch == 0), "next_batch": next_batch,
                "history": self.history, "early_stopping": self.es_state,
                "metrics": logs or {},
                "acc": None if acc_host is None else metrics.to_json(acc_host),
                "stopped": stopped, "run": self.run_settings}
        self.manager.save(self.steps, self.state, meta)

    # --- metrics and the NaN check

    def start_acc(self):
        """The accumulator an epoch starts from: ``None`` (zeros, made by the first chunk's
        program), or the partial sums of the epoch a mid-epoch checkpoint saved."""
        if self.resumed_acc is None:
            return None
        acc = metrics.from_json(self.runner.zeros(), self.resumed_acc)
        self.resumed_acc = None
        return acc

    def learn_metrics(self, batch) -> None:
        """Before the first step: the step's metrics (their accumulator's layout), and a check
        that the monitored metrics are ones the logs will hold."""
        self.layout = self.runner.prepare(self.state, batch)
        monitored = [m for m in (self.s.early_stopping,
                                 self.s.checkpoints and self.s.checkpoints.best) if m]
        if not monitored:
            return
        eval_names = ()
        if self.edata is not None and any(m.metric.startswith("val_") for m in monitored):
            probe = self.evaluator.first_batch(self.edata, self.s.eval_batch_size)
            eval_names = jax.eval_shape(make_eval_step(self.eval_loss_fn), self.state,
                                        probe).keys()
        known = metrics.log_keys(self.layout, eval_names)
        for what, m in (("early_stopping", self.s.early_stopping),
                        ("keep_best", self.s.checkpoints and self.s.checkpoints.best)):
            if m and m.metric not in known:
                raise ValueError(f"{self.where}: {what} monitors {m.metric!r}, which is not "
                                 f"in the epoch logs (they hold {sorted(known)})")

    def check_chunk(self, ok, start, batches: Callable, epoch) -> None:
        """Under ``nan_policy='stop'``: a chunk whose end state or loss sums are not finite is
        replayed from ``start`` to find its first non-finite step; raise ``NonFiniteError``
        there, with the last finite state. (A replay that stays finite from a finite end
        state was an overflow of the loss sums alone: training goes on.)"""
        if not self.runner.checks_chunks or bool(np.asarray(ok)):   # (host or device)
            return
        found = self.runner.replay(start, batches())
        if found is None:
            if all_finite(self.state):
                return
            step, leaf, last = int(jax.device_get(start.step)), None, start
        else:
            step, leaf, last = found
        self.state = last
        name = (self.leaf_names[leaf] if leaf is not None else
                "unknown (the data could not be replayed)")
        raise NonFiniteError(
            f"fit: non-finite value at step {step} (epoch {epoch}): the first non-finite "
            f"leaf is {name}; training stopped and the returned state is the last finite "
            f"one (nan_policy='stop'; use 'skip' to skip such updates)",
            step=step, leaf=name, state=last)

    # --- epochs

    def plan(self, epoch):
        s = self.s
        return epoch_plan(n_rows(self.data), s.batch_size, epoch=epoch, data_key=self.data_key,
                          shuffle=s.shuffle, drop_last=s.drop_last)

    def device_epoch(self, epoch) -> tuple[Any, list, tuple]:
        """One epoch over device data, in chunks between mid-epoch checkpoints; each chunk
        is checked (:meth:`check_chunk`) before anything uses its state: a mid-epoch one at
        once, the last one by :meth:`end_epoch` (``pending``: its check's arguments), which
        fetches its flag with the epoch's metrics in one transfer."""
        first, self.start_batch = self.start_batch, 0
        idx, w, on_device = (self.ahead.pop(epoch) if epoch in self.ahead
                             else self.plan(epoch) + (None,))
        if self.layout is None:
            self.learn_metrics(gather(self.data, idx[0], None if w is None else w[0]))
        acc = self.start_acc()
        nb = idx.shape[0]
        every = self.s.checkpoints and self.s.checkpoints.every_steps
        every = every if self.manager is not None and every else nb
        paths = []
        lo = first
        while lo < nb:
            hi = min((lo // every + 1) * every, nb)
            if on_device is not None and (lo, hi) == (0, nb):
                i_d, w_d = on_device
            else:
                i_d = jax.device_put(idx[lo:hi])
                w_d = None if w is None else jax.device_put(w[lo:hi])
            path = self.chooser.next_path(nb)
            decided = self.chooser.decided
            start = self.state
            self.state, acc, ok = self.runner.run_chunk(path, self.state, acc, self.data, i_d,
                                                        w_d, self.chooser, epoch_end=hi == nb)
            if not decided and self.chooser.report is not None:
                self.timings.append(self.chooser.report)
            paths.append(path)
            self.steps += hi - lo
            if hi == nb and epoch + 1 < self.s.epochs:
                # the device runs this epoch asynchronously: draw the next plan and send it
                # meanwhile
                nxt = self.plan(epoch + 1)
                self.ahead[epoch + 1] = nxt + ((jax.device_put(nxt[0]),
                                                None if nxt[1] is None
                                                else jax.device_put(nxt[1])),)
            pending = (ok, start, lambda c=(lo, hi): (
                gather(self.data, idx[b], None if w is None else w[b]) for b in range(*c)),
                epoch)
            if hi < nb and self.manager is not None:   # a mid-epoch checkpoint
                self.check_chunk(*pending)
                self.save(epoch, hi, jax.device_get(acc))
            lo = hi
        return acc, paths, pending

    def stream_epoch(self, train_data, epoch) -> tuple[Any, list, tuple]:
        """One epoch over streamed batches (a jitted step per batch, every step's norms);
        under ``'stop'`` the stream is checked at each checkpoint and at its end, and replayed
        from the chunk's start (the stream drawn again) to name the first non-finite step."""
        first, self.start_batch = self.start_batch, 0
        every = self.s.checkpoints and self.s.checkpoints.every_steps
        acc, start, start_b = None, self.state, first

        def redraw(b0, b1):
            for b, batch in enumerate(stream_batches(train_data, epoch)):
                if b >= b1:
                    return
                if b >= b0:
                    yield shd.shard_batch(dict(batch), self.runner.mesh)

        b = first - 1
        for b, batch in enumerate(stream_batches(train_data, epoch)):
            if b < first:
                continue   # resuming mid-epoch: these batches were used already
            if b > first and self.manager is not None and every and b % every == 0:
                self.check_chunk(self.runner.check(self.state, acc), start,
                                 lambda b0=start_b, b1=b: redraw(b0, b1), epoch)
                self.save(epoch, b, jax.device_get(acc))
                start, start_b = self.state, b
            if not isinstance(batch, Mapping):
                raise TypeError(f"{self.where}: streamed train_data must yield batches as "
                                f"dicts of arrays, got {type(batch).__name__} in epoch "
                                f"{epoch}")
            batch = shd.shard_batch(dict(batch), self.runner.mesh)
            if acc is None:
                if self.layout is None:
                    self.learn_metrics(batch)
                acc = self.start_acc()
                acc = self.runner.zeros() if acc is None else acc
            self.state, acc = self.runner.stream_step(self.state, acc, batch)
            self.steps += 1
        if acc is None:
            raise ValueError(f"{self.where}: train_data yielded no batch in epoch {epoch}")
        pending = (self.runner.check(self.state, acc), start, lambda: redraw(start_b, b + 1),
                   epoch)
        return acc, ["loop"], pending

    def end_epoch(self, epoch, acc, paths, pending, seconds_since) -> bool:
        """The epoch's NaN check (its last chunk's, ``pending``), logs, evaluation, history,
        early stopping, callbacks and checkpoint; returns whether to stop."""
        s = self.s
        acc_host, ok = metrics.to_host((acc, pending[0]))
        self.check_chunk(ok, *pending[1:])
        logs = {"epoch": epoch, "step": self.steps}
        logs.update(metrics.normalize(acc_host, self.layout))
        seconds = time.perf_counter() - seconds_since
        if self.edata is not None:
            logs.update(self.evaluator(self.state, self.edata, s.eval_batch_size, "val_"))
        self.timings.append({"epoch": epoch, "seconds": seconds,
                             "path": "+".join(dict.fromkeys(paths))})
        self.history.append(logs)
        if s.history_path is not None:
            with open(s.history_path, "a") as f:
                f.write(json_line(logs))
        stop = False
        es = s.early_stopping
        if es is not None:
            value = logs.get(es.metric)
            if value is None:
                raise ValueError(f"{self.where}: early_stopping metric {es.metric!r} is not "
                                 f"in the epoch logs {sorted(logs)}")
            if es.better(value, self.es_state["best"]):
                self.es_state = {"best": value, "wait": 0}
            else:
                self.es_state = {"best": self.es_state["best"], "wait": self.es_state["wait"] + 1}
                stop = self.es_state["wait"] >= es.patience
        if s.callbacks:   # a copy: the next epoch may donate (free) the state's buffers
            stop = call_callbacks(s.callbacks, "on_epoch_end", epoch,
                                   jax.device_put(self.state, may_alias=False), logs) or stop
        if self.manager is not None and s.checkpoints.at_epoch_end(epoch, s.epochs, stop):
            self.save(epoch, 0, logs=logs, stopped=stop)
        return stop
