"""The standard driver: minimize ``spec.module.loss`` with one optimizer (``train.loop.fit``).

``train`` loads and checks the data (``train.drivers.data``), sizes the model for it, trains
with the run's optimizer and schedule, validating after each epoch on the validation split
(on the test split when the dataset has none, as mnist1d and digits have none), then writes the
run folder (``train.runs``) with final train and test metrics. ``evaluate`` restores the
newest checkpoint of a run and reports the same metrics.
"""

from __future__ import annotations

import os
import time

import jax

from train import runs
from train.drivers.data import check_data, check_trace, load_data, model_config, split
from train.optimizers import optimizer_for
from train.runs import RunOptions

__all__ = ["train", "evaluate", "prepare", "model_fns", "run_optimizer", "entry_optimizer"]


def model_fns(spec, cfg):
    """``(loss_fn, eval_loss_fn)``: the entry's loss with ``cfg`` and ``train`` bound."""
    module = spec.module

    def loss_fn(params, model_state, batch, key):
        return module.loss(params, model_state, batch, key, cfg, train=True)

    def eval_loss_fn(params, model_state, batch, key):
        return module.loss(params, model_state, batch, key, cfg, train=False)

    return loss_fn, eval_loss_fn


def run_optimizer(opts: RunOptions, n_train: int):
    """The optimizer of a run: ``opts``' optimizer, rate, schedule (over ``opts.epochs`` epochs
    of ``n_train`` examples) and weight decay."""
    return optimizer_for(opts.optimizer, opts.lr, n_train=n_train, batch_size=opts.batch_size,
                         epochs=opts.epochs, schedule=opts.schedule,
                         weight_decay=opts.weight_decay)


def entry_optimizer(spec, n_train: int, epochs: int | None = None):
    """A registry entry's default optimizer (its optimizer, rate, schedule and weight decay) as
    ``zoo train`` builds it, the schedule stretched over ``epochs`` (default: the entry's)
    epochs of ``n_train`` examples."""
    return optimizer_for(spec.optimizer, spec.lr, n_train=n_train, batch_size=spec.batch_size,
                         epochs=spec.epochs if epochs is None else epochs,
                         schedule=spec.schedule, weight_decay=spec.weight_decay)


def prepare(spec, opts: RunOptions):
    """Data, config, initial params and model state, and the fit key of a standard run:
    ``(ds, cfg, params, model_state, k_fit)`` with ``(k_init, k_fit) = split(PRNGKey(seed))``."""
    ds = load_data(opts.dataset, opts.dataset_options)
    check_data(spec, opts.dataset, ds)
    cfg = model_config(spec, opts.dataset, ds)
    k_init, k_fit = jax.random.split(jax.random.PRNGKey(opts.seed))
    params = spec.module.init(k_init, cfg)
    init_state = getattr(spec.module, "init_state", None)
    model_state = init_state(cfg) if init_state is not None else {}
    check_trace(spec, opts.dataset, ds, cfg, params, model_state)
    return ds, cfg, params, model_state, k_fit


def _metrics(eval_loss_fn, state, ds, seed: int) -> dict:
    """``train_*``, ``val_*`` (when the dataset has a validation split) and ``test_*``
    metrics of ``state`` (exact means, evaluation key ``PRNGKey(seed + 1)``)."""
    from train.loop import TrainState, evaluate

    eval_state = TrainState(state.params, (), state.model_state, state.step * 0,
                            jax.random.PRNGKey(seed + 1))
    out = {}
    for which in ("train", "val", "test"):
        if split(ds, which) is None:
            continue
        m = evaluate(eval_loss_fn, eval_state, split(ds, which), prefix=f"{which}_")
        m.pop(f"{which}_count")
        out.update(m)
    return out


def train(spec, opts: RunOptions) -> dict:
    """``zoo train`` for standard entries: ``train.loop.fit``, then the run folder.

    Returns:
        The summary dict (also written to ``summary.json``).
    """
    from train.loop import fit

    ds, cfg, params, model_state, k_fit = prepare(spec, opts)
    optimizer = run_optimizer(opts, len(ds.x_train))
    loss_fn, eval_loss_fn = model_fns(spec, cfg)
    out = opts.out
    ckpt_dir = runs.prepare_run_dir(opts, data=ds)
    val = split(ds, "val") or split(ds, "test")
    t0 = time.perf_counter()
    result = fit(loss_fn, params, optimizer, split(ds, "train"), key=k_fit, epochs=opts.epochs,
                 batch_size=opts.batch_size, model_state=model_state, eval_data=val,
                 eval_loss_fn=eval_loss_fn, progress=not opts.quiet,
                 fast_path=spec.extra.get("fast_path", "auto"),
                 shuffle=spec.extra.get("sampling", True),
                 history_path=os.path.join(out, runs.HISTORY_FILE), checkpoint_dir=ckpt_dir,
                 checkpoint_every_epochs=runs.checkpoint_cadence(opts.epochs),
                 resume=opts.resume)
    seconds = time.perf_counter() - t0
    state = result.state
    extra = {}
    epoch_times = [t["seconds"] for t in result.timings if "epoch" in t]
    if epoch_times:
        extra["seconds_per_epoch"] = sum(epoch_times) / len(epoch_times)
        extra["epoch_path"] = result.timings[-1].get("path")
    summary = runs.summary(spec, opts, epochs=len(result.history),
                           steps=int(jax.device_get(state.step)), seconds=seconds,
                           params=state.params, **extra,
                           **_metrics(eval_loss_fn, state, ds, opts.seed))
    runs.write_run_files(out, opts=opts, summary=summary, history=result.history, cfg=cfg,
                         params=state.params, title=f"zoo train {spec.name} ({opts.dataset})")
    return summary


def evaluate(spec, opts: RunOptions) -> dict:
    """``zoo eval`` for standard entries: restore the newest checkpoint, evaluate the train,
    validation (when the dataset has one) and test sets.

    Returns:
        ``{'step', 'train_loss', 'train_<metric>', ..., 'val_...', 'test_loss',
        'test_<metric>', ...}``.
    """
    from train.loop import init_train_state

    ds, cfg, params, model_state, k_fit = prepare(spec, opts)
    optimizer = run_optimizer(opts, len(ds.x_train))
    _, ckpt_dir = runs.find_run(opts.checkpoint)
    target = init_train_state(params, optimizer, key=jax.random.split(k_fit)[0],
                              model_state=model_state)
    state, _ = runs.restore_latest(ckpt_dir, target)
    _, eval_loss_fn = model_fns(spec, cfg)
    return {"step": int(jax.device_get(state.step)),
            **_metrics(eval_loss_fn, state, ds, opts.seed)}
