"""``fit``: epochs of the train step, with evaluation, history, early stopping and checkpoints.

``fit`` is a composition of named stages, read top to bottom:

1. check every argument (:func:`_settings`), before anything is traced;
2. put the data on the device (or take the stream as it comes) and build the initial state
   and the compiled functions (:class:`train.loop.runner.Runner`);
3. :meth:`train.loop.run.Run.restore` continues a checkpointed run, if asked;
4. each epoch: ``Run.device_epoch`` (scan or loop, each chunk of steps checked for NaN) or
   ``Run.stream_epoch``, then ``Run.end_epoch`` (logs, evaluation, history, early stopping,
   callbacks, checkpoint);
5. manifests next to the outputs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import jax
import numpy as np
import optax

from train import sharding as shd
from train.loop.evaluate import Evaluator
from train.loop.plan import (
    as_data,
    data_settings,
    is_streaming,
    n_rows,
)
from train.loop.run import (  # noqa: F401 (the errors are part of fit's interface)
    NonFiniteError,
    ResumeMismatchError,
    Run,
    Settings,
    call_callbacks,
)
from train.loop.runner import EXECUTABLES, NORMS, Runner
from train.loop.settings import (
    FAST_PATHS,
    SHUFFLES,
    CheckpointSettings,
    Monitor,
    check_choice,
    check_int,
    precision_scope,
)
from train.loop.step import (
    NAN_POLICIES,
    TrainState,
    as_raw_key,
    init_train_state,
)
from train.manifest import json_line


class FitResult(NamedTuple):
    """What ``fit`` returns.

    Attributes:
        state: the final ``TrainState``.
        history: one dict per epoch (``epoch``, ``step``, epoch-mean training metrics,
            ``val_``-prefixed evaluation metrics). Deterministic: no timings in it.
        timings: one dict per epoch run in this call (``epoch``, ``seconds``, ``path``), and
            the ``fast_path='auto'`` measurement if one was made.
    """

    state: TrainState
    history: list
    timings: list


def _settings(where, *, epochs, batch_size, shuffle, drop_last, fast_path, nan_policy, norms,
              eval_batch_size, early_stopping, keep_best, has_eval, callbacks, progress,
              history_path, checkpoint_dir, keep, checkpoint_every, checkpoint_every_epochs,
              resume) -> Settings:
    """Stage 1: check every argument; ValueError/TypeError name the argument and the value."""
    check_choice(where, "fast_path", fast_path, FAST_PATHS)
    check_choice(where, "nan_policy", nan_policy, NAN_POLICIES)
    check_choice(where, "shuffle", shuffle, SHUFFLES)
    check_choice(where, "norms", norms, NORMS)
    check_int(where, "epochs", epochs, low=0)
    check_int(where, "batch_size", batch_size, low=1, none_ok=True)
    check_int(where, "eval_batch_size", eval_batch_size, low=1, none_ok=True)
    check_int(where, "checkpoint_every", checkpoint_every, low=1, none_ok=True)
    check_int(where, "keep", keep, low=1)
    check_int(where, "checkpoint_every_epochs", checkpoint_every_epochs, low=1)
    if resume and checkpoint_dir is None:
        raise ValueError(f"{where}: resume=True needs a checkpoint_dir to resume from")
    es = Monitor.parse(early_stopping, where + " early_stopping")
    if es is not None and es.patience is None:
        raise ValueError(f"{where}: early_stopping needs (metric, patience[, mode]), "
                         f"got {early_stopping!r}")
    best = Monitor.parse(keep_best, where + " keep_best")
    for what, spec in (("early_stopping", es), ("keep_best", best)):
        if spec is not None and spec.metric.startswith("val_") and not has_eval:
            raise ValueError(f"{where}: {what} monitors {spec.metric!r}, a validation "
                             "metric, but no eval_data was given")
    checkpoints = None
    if checkpoint_dir is not None:
        checkpoints = CheckpointSettings(checkpoint_dir, keep=keep, best=best,
                                         every_steps=checkpoint_every,
                                         every_epochs=checkpoint_every_epochs, resume=resume)
    return Settings(epochs=epochs, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                     fast_path=fast_path, nan_policy=nan_policy, norms=norms,
                     eval_batch_size=eval_batch_size, early_stopping=es,
                     checkpoints=checkpoints, callbacks=tuple(callbacks), progress=progress,
                     history_path=history_path)


def _write_history_file(path: str | None, history: list) -> None:
    if path is None:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        for row in history:
            f.write(json_line(row))


def _write_manifests(run: Run, *, loss_fn, optimizer, key, fast_path, early_stopping,
                     keep_best, checkpoint_every, checkpoint_every_epochs, precision) -> None:
    """Stage 5: ``manifest.json`` next to the history file and in the checkpoint directory."""
    s = run.s
    outputs = [os.path.dirname(os.path.abspath(s.history_path))] if s.history_path else []
    outputs += [s.checkpoints.directory] if s.checkpoints is not None else []
    if not outputs:
        return
    from train.manifest import write_manifest

    config = {"loss_fn": loss_fn, "optimizer": optimizer, "epochs": s.epochs,
              "batch_size": s.batch_size, "shuffle": s.shuffle, "drop_last": s.drop_last,
              "fast_path": fast_path, "nan_policy": s.nan_policy, "norms": s.norms,
              "early_stopping": early_stopping, "keep_best": keep_best,
              "checkpoint_every": checkpoint_every,
              "checkpoint_every_epochs": checkpoint_every_epochs, "data": run.run_settings,
              "precision": precision}
    seed = int(key) if isinstance(key, (int, np.integer)) else None
    extra = {"epochs_run": len(run.history), "final": run.history[-1] if run.history else {},
             "timings": run.timings}
    for out_dir in dict.fromkeys(outputs):
        write_manifest(out_dir, config=config, seed=seed, params=run.state.params, extra=extra)


def fit(loss_fn: Callable, params, optimizer: optax.GradientTransformation, train_data, *,
        key, epochs: int = 1, batch_size: int | None = None, model_state=None,
        eval_data=None, eval_loss_fn: Callable | None = None,
        eval_batch_size: int | None = None, drop_last: bool = False, shuffle: bool = True,
        fast_path: str = "auto", nan_policy: str | None = "stop", norms: str | None = "last",
        early_stopping=None,
        callbacks: Iterable = (), progress: bool = True, history_path: str | None = None,
        checkpoint_dir: str | None = None, keep: int = 3, keep_best=None,
        checkpoint_every: int | None = None, checkpoint_every_epochs: int = 1,
        resume: bool = False, mesh=None, precision: str | None = None) -> FitResult:
    """Train ``params`` with ``optimizer`` on ``train_data`` for ``epochs`` epochs.

    Args:
        loss_fn: ``loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))``
            returning weighted means (rows with ``batch['weight'] == 0`` must not count).
        params: initial parameters (not modified: the state works on a copy).
        optimizer: any optax-compatible ``GradientTransformation``.
        train_data: either data held on the device, a dict of arrays with a common leading
            axis (``{'x': <f32>[n, ...], 'y': [n, ...]}``, an optional ``'weight': <f32>[n]``)
            or an ``(x, y)`` pair; or streaming data: an iterable of batch dicts (iterated once
            per epoch) or a callable ``train_data(epoch) -> iterable of batches``.
        key: the run's PRNG key or int seed. ``split(key)`` gives the step key (per-step keys
            ``fold_in(step_key, step)``) and the data-order key.
        epochs: number of epochs to run (in total, counting those of a resumed run).
        batch_size: ``None`` full-batch GD, ``1`` SGD, ``k`` mini-batch (device data only).
        model_state: initial model state (batch-norm statistics), ``{}`` when ``None``.
        eval_data: optional validation data (dict or ``(x, y)``) evaluated after each epoch;
            its metrics enter the history as ``val_<name>``.
        eval_loss_fn: loss used for evaluation (default ``loss_fn``; pass the model's loss
            with ``train=False`` bound for dropout/batch norm).
        eval_batch_size: evaluation batch (default ``min(n_eval, 1024)``, rounded up to a
            multiple of the device count); padded rows carry weight 0 so means are exact.
        drop_last: drop the last partial batch of an epoch; otherwise it is padded with
            weight-0 rows so the epoch mean is exact.
        shuffle: reshuffle mini-batches each epoch (``epoch_rng(data_key, epoch)``);
            ``'replacement'`` samples each batch with replacement instead (see
            :func:`train.loop.plan.epoch_plan`).
        fast_path: ``'scan'`` (one jitted ``lax.scan`` per epoch), ``'loop'`` (jitted step per
            batch) or ``'auto'``: with device data and more than one batch per epoch and at
            least two epochs to run, the first epoch runs the loop and the second the scan,
            each timed without compilation (a scan that loses is timed a second time, as its
            first execution carries one-time costs), and the faster path is kept. Both give
            bitwise the same numbers on CPU, so the choice does not change results.
        nan_policy: ``'stop'`` (raise ``NonFiniteError`` naming the step and the first
            non-finite leaf of the loss, gradients, parameters, optimizer state or model
            state; the state keeps the last finite values), ``'skip'`` (non-finite updates
            are not applied and counted as ``skipped_steps``; their loss and norms stay out
            of the epoch's means) or ``None`` (unchecked). ``'stop'`` costs nothing per step:
            each epoch (or chunk between mid-epoch checkpoints) is checked at its end and, if
            it failed, replayed step by step to find the first bad step
            (``train.loop.runner``); ``'skip'`` guards every step.
        norms: ``'last'`` (the global norms ``grad_norm``, ``param_norm`` and
            ``update_norm`` of each epoch's last step; the history's ``norm_steps`` says on
            how many steps they were measured), ``'every'`` (every step, the epoch mean; a
            few reductions more per step) or ``None`` (no norms).
        early_stopping: ``(metric, patience)`` or ``(metric, patience, 'min'|'max')``: stop
            once ``metric`` (e.g. ``'val_loss'``) has not improved on its best for
            ``patience`` consecutive epochs (Keras' rule; the best state is the best
            checkpoint when ``keep_best`` names the same metric).
            The mode defaults to ``'max'`` for names containing ``acc``, else ``'min'``.
        callbacks: objects with optional ``on_epoch_end(epoch, state, logs) -> bool`` (True
            stops training; ``state`` is a copy the callback may keep) and
            ``on_fit_end(state, history)``; a plain callable is used as ``on_epoch_end``.
        progress: show a ``tqdm.auto`` progress bar over epochs (False silences it).
        history_path: write the history as JSONL, one line per epoch (rewritten on resume);
            NaN and infinite values are written as ``null`` (strict JSON).
        checkpoint_dir: save checkpoints (``train.checkpoint``) at the end of epochs (see
            ``checkpoint_every_epochs``) and optionally inside them (``checkpoint_every``). A
            fresh run (``resume=False``) refuses a directory that already holds checkpoints.
            Checkpoints also record the data settings (number of rows, ``batch_size``,
            ``shuffle``, ``drop_last``, data key), and a resume with other settings is refused.
            They are written in the background while the next epochs run (an asynchronous
            ``CheckpointManager``); ``fit`` returns, or raises, only once the last one is
            complete, and a failed write raises ``CheckpointWriteError`` at the next save or
            at the end, the checkpoints before it kept.
            With ``history_path`` or ``checkpoint_dir``, a run that ends without an error
            writes ``manifest.json`` (``train.manifest``) into each of their directories.
        keep: number of most recent checkpoints kept.
        keep_best: also keep the best checkpoint by this metric (``'val_loss'``, or
            ``(metric, 'min'|'max')``).
        checkpoint_every_epochs: checkpoint at the end of every this many epochs (and of the
            last epoch, and of an epoch that stops the run); 1 saves every epoch. A resume
            starts from the newest checkpoint, so the epochs after it run again, exactly.
        checkpoint_every: also checkpoint every this many steps inside an epoch (with the
            epoch's partial metric sums, so a resumed run's history is unchanged); a scanned
            epoch then runs as scans over chunks of this many batches.
        resume: continue from the latest good checkpoint in ``checkpoint_dir`` (which it
            needs) if there is one, at the saved epoch and batch (streamed data: the first
            batches of the resumed epoch are drawn and skipped, so ``train_data(epoch)`` must
            be repeatable); a checkpoint with other data settings raises
            ``ResumeMismatchError``.
        mesh: ``None`` (one device), ``'auto'`` (all devices) or a ``jax.sharding.Mesh`` with
            a ``'data'`` axis: data parallel training, batch split over ``'data'``, state
            replicated. The global batch must divide by the number of devices.
        precision: float32 matrix products and convolutions at the backend's fast default
            (``None`` or ``'default'``: TF32 on NVIDIA GPUs, one bfloat16 pass on TPUs), or
            ``'high'`` / ``'highest'`` (``train.loop.settings.precision_scope``); recorded in
            the manifest. CPU computes float32 whatever the setting.

    Returns:
        ``FitResult(state, history, timings)``.

    Raises:
        NonFiniteError: under ``nan_policy='stop'`` when a step is non-finite.
        ValueError, TypeError: for bad arguments, before any compilation.
    """
    from tqdm.auto import tqdm

    where = "fit"
    # 1. settings
    scope = precision_scope(precision, where)
    # what the run computes at: its own setting, else the one in force around it
    precision = precision or jax.config.jax_default_matmul_precision or "default"
    s = _settings(where, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                  drop_last=drop_last, fast_path=fast_path, nan_policy=nan_policy,
                  norms=norms, eval_batch_size=eval_batch_size, early_stopping=early_stopping,
                  keep_best=keep_best, has_eval=eval_data is not None, callbacks=callbacks,
                  progress=progress, history_path=history_path, checkpoint_dir=checkpoint_dir,
                  keep=keep, checkpoint_every=checkpoint_every,
                  checkpoint_every_epochs=checkpoint_every_epochs, resume=resume)
    mesh = shd.make_mesh(mesh)
    data = as_data(train_data, where, "train_data")
    if data is None and not is_streaming(train_data):
        raise TypeError(f"{where}: train_data must be a dict of arrays, an (x, y) pair, an "
                        f"iterable of batches or a callable(epoch), got "
                        f"{type(train_data).__name__}")
    edata = as_data(eval_data, where, "eval_data") if eval_data is not None else None
    if eval_data is not None and edata is None:
        raise TypeError(f"{where}: eval_data must be a dict of arrays or an (x, y) pair, got "
                        f"{type(eval_data).__name__}")

    # 2. data on the device, the initial state, the compiled functions
    n = None
    if data is not None:
        n = n_rows(data)
        shd.check_batch_divisible(n if batch_size is None else int(batch_size), mesh,
                                  where=where)
        data = shd.put_data(data, mesh)
    if edata is not None:
        edata = shd.put_data(edata, mesh)
    step_key, data_key = jax.random.split(as_raw_key(key, where))
    data_key = np.asarray(data_key)   # read on the host every epoch (epoch_rng)
    state = shd.replicate(init_train_state(params, optimizer, key=step_key,
                                           model_state=model_state), mesh)
    runner = EXECUTABLES.get(
        "train", lambda: Runner(loss_fn, optimizer, mesh, nan_policy, norms),
        (loss_fn, optimizer), (nan_policy, mesh, norms, precision))
    eval_loss_fn = eval_loss_fn or loss_fn
    evaluator = None
    if edata is not None:
        evaluator = EXECUTABLES.get("eval", lambda: Evaluator(eval_loss_fn, mesh),
                                    (eval_loss_fn,), (mesh, precision))
    run = Run(s, state=state, runner=runner, evaluator=evaluator,
               eval_loss_fn=eval_loss_fn, data=data, edata=edata, data_key=data_key,
               run_settings=data_settings(n, batch_size, shuffle, drop_last, data_key),
               where=where)

    # 3. resume
    run.restore()
    _write_history_file(s.history_path, run.history)

    # 4. epochs, traced at the precision asked for
    bar = tqdm(total=epochs, initial=min(run.start_epoch, epochs), disable=not progress,
               desc="fit", unit="epoch", leave=True)
    try:
        with scope:
            for epoch in range(run.start_epoch, epochs):
                t0 = time.perf_counter()
                acc, paths, pending = (run.device_epoch(epoch) if data is not None
                                       else run.stream_epoch(train_data, epoch))
                stop = run.end_epoch(epoch, acc, paths, pending, t0)
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in run.history[-1].items()
                                 if k in ("loss", "accuracy", "val_loss", "val_accuracy")})
                if stop:
                    break
        run.finish_saves()   # the last checkpoint written before fit returns
    except BaseException:
        run.finish_saves(failing=True)
        raise
    finally:
        bar.close()

    # 5. manifests
    _write_manifests(run, loss_fn=loss_fn, optimizer=optimizer, key=key, fast_path=fast_path,
                     early_stopping=early_stopping, keep_best=keep_best,
                     checkpoint_every=checkpoint_every,
                     checkpoint_every_epochs=checkpoint_every_epochs, precision=precision)
    call_callbacks(s.callbacks, "on_fit_end", run.state, run.history)
    return FitResult(run.state, run.history, run.timings)
