"""The transfer driver: the transfer-learning experiment behind ``zoo train transfer``.

1. Train the digits LeNet (``zoo.cnn``) on the source classes (default 0-4), all their
   training images; save the params (``train.checkpoint``) under ``OUT/source``.
2. Load them back, replace the head by a fresh 5-way layer, and fine-tune on only ``shots``
   training images per target class (default 10 of each of 5-9), feature layers frozen --
   once by optimizer masking and once by stop-gradient (the two must agree).
3. Train the same network from scratch on the same few images, same optimizer and steps.
4. Report test accuracy on all test images of the target classes for the three runs.

``zoo train transfer`` writes the files of every zoo run (``train.runs``): ``metrics.jsonl``,
``loss.png`` and ``checkpoints/`` cover step 1, the pretraining (``val_*`` = the test images
of the source classes), which ``--resume`` continues from its latest checkpoint to
``--epochs``; steps 2-4 (a few hundred full-batch steps on 50 images) are short and always
run again in full. ``summary.json`` holds the fine-tuned (masked) model's ``train_*`` metrics
on the few-shot images and ``test_*`` metrics on the target classes' test images, next to
the whole experiment's results (also in ``transfer.json``, which ``zoo eval transfer`` prints).
"""

from __future__ import annotations

import functools
import json
import os
import time

import jax
import numpy as np

from train import runs
from train.checkpoint import restore_checkpoint, save_checkpoint
from train.drivers.data import check_data, load_data
from train.errors import UsageError
from train.loop import fit
from train.optimizers import make_optimizer
from zoo import transfer

__all__ = ["few_shot", "run_experiment", "train", "evaluate"]


def few_shot(x, y, shots: int, *, seed: int = 0):
    """The first ``shots`` examples of each class after a seeded shuffle: (x, y) NumPy arrays."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    keep = np.concatenate([order[y[order] == c][:shots] for c in np.unique(y)])
    return np.asarray(x)[keep], np.asarray(y)[keep]


def _loss(cfg):
    return lambda p, s, b, k: transfer.loss(p, s, b, k, cfg, train=True)


def _metrics(params, cfg, x, y) -> tuple[float, float]:
    """(loss, accuracy) of the whole set in one batch (digits are small)."""
    loss, accuracy = _jit_metrics(params, cfg, x, y)
    return float(loss), float(accuracy)


@functools.partial(jax.jit, static_argnums=1)
def _jit_metrics(params, cfg, x, y):
    # one compiled graph per (config, shapes) instead of every op dispatched on its own
    loss, (_, m) = transfer.loss(params, {}, {"x": x, "y": y}, None, cfg, train=False)
    return loss, m["accuracy"]


def run_experiment(ds, *, out: str, make_optimizer, seed: int = 0, epochs: int = 30,
                   batch_size: int = 32, finetune_epochs: int = 100,
                   source_classes=(0, 1, 2, 3, 4), target_classes=(5, 6, 7, 8, 9),
                   shots: int = 10, progress: bool = False, return_params: bool = False,
                   history_path: str | None = None, checkpoint_dir: str | None = None,
                   resume: bool = False, checkpoint_every_epochs: int = 1, callbacks=()):
    """Pretrain on the source classes, save, load, fine-tune frozen features, compare.

    Args:
        ds: a ``train.datasets.Dataset`` of images (e.g. ``load('digits')``).
        out: directory for the pretrained checkpoint (``out/source``) and ``transfer.json``.
        make_optimizer: ``lr_free_factory() -> optax-compatible optimizer``.
        seed: seed of initializations, data order and the few-shot draw.
        epochs: pretraining epochs on the source classes (in total, with ``resume``).
        batch_size: pretraining batch size (fine-tuning uses the full few-shot batch).
        finetune_epochs: full-batch steps for fine-tuning and for the from-scratch baseline.
        source_classes, target_classes: label values of the two tasks.
        shots: training images per target class.
        progress: show progress bars.
        return_params: also return the fine-tuned (masked) params.
        history_path, checkpoint_dir, resume, checkpoint_every_epochs, callbacks: passed to
            the pretraining's ``train.loop.fit`` (its per-epoch log, checkpoints and
            continuation; its validation data are the source classes' test images).

    Returns:
        ``{'source_test_accuracy', '<run>_test_accuracy', '<run>_test_loss',
        '<run>_train_accuracy', '<run>_train_loss' (on the few-shot images) for run in mask,
        stop_gradient, scratch, 'features_unchanged', 'mask_equals_stop_gradient',
        'pretrain_epochs', 'pretrain_steps', ...}`` (written to ``out/transfer.json``); with
        ``return_params`` a pair (that, params).
    """
    result, runs, _ = _experiment(
        ds, out=out, make_optimizer=make_optimizer, seed=seed, epochs=epochs,
        batch_size=batch_size, finetune_epochs=finetune_epochs, source_classes=source_classes,
        target_classes=target_classes, shots=shots, progress=progress,
        history_path=history_path, checkpoint_dir=checkpoint_dir, resume=resume,
        checkpoint_every_epochs=checkpoint_every_epochs, callbacks=callbacks)
    return (result, runs["mask"]) if return_params else result


def _experiment(ds, *, out, make_optimizer, seed, epochs, batch_size, finetune_epochs,
                source_classes, target_classes, shots, progress, history_path,
                checkpoint_dir, resume, checkpoint_every_epochs, callbacks):
    """:func:`run_experiment`'s work: (result, {run: params}, the pretraining's FitResult)."""
    k_pre, k_head, k_scratch, k_fit = jax.random.split(jax.random.PRNGKey(seed), 4)
    input_shape = tuple(np.shape(ds.x_train)[1:])
    from zoo import cnn

    base = cnn.lenet_config(input_shape, n_out=len(source_classes))
    cfg = transfer.Config(cnn=base)
    xs, ys = transfer.split_classes(ds.x_train, ds.y_train, source_classes)
    xs_test, ys_test = transfer.split_classes(ds.x_test, ds.y_test, source_classes)
    t0 = time.perf_counter()
    pre = fit(_loss(cfg), transfer.init(k_pre, cfg), make_optimizer(), {"x": xs, "y": ys},
              key=k_fit, epochs=epochs, batch_size=batch_size, fast_path="loop",
              progress=progress, eval_data={"x": xs_test, "y": ys_test},
              eval_loss_fn=lambda p, s, b, k: transfer.loss(p, s, b, k, cfg, train=False),
              history_path=history_path, checkpoint_dir=checkpoint_dir, resume=resume,
              checkpoint_every_epochs=checkpoint_every_epochs, callbacks=callbacks)
    _, source_acc = _metrics(pre.state.params, cfg, xs_test, ys_test)
    path = os.path.join(os.path.abspath(out), "source")
    save_checkpoint(path, pre.state.params, {"classes": list(source_classes)})

    # Load: the template only fixes the tree's structure, shapes and dtypes.
    template = transfer.init(jax.random.PRNGKey(0), cfg)
    loaded, _ = restore_checkpoint(path, template)
    new_params, new_cnn = transfer.replace_head(k_head, loaded, base, len(target_classes))
    xt, yt = transfer.split_classes(ds.x_train, ds.y_train, target_classes)
    xt, yt = few_shot(xt, yt, shots, seed=seed)
    xt_test, yt_test = transfer.split_classes(ds.x_test, ds.y_test, target_classes)
    few = {"x": xt, "y": yt}

    runs = {}
    masked_cfg = transfer.Config(cnn=new_cnn, freeze="mask")
    opt = transfer.freeze_optimizer(make_optimizer(), new_params)
    runs["mask"] = fit(_loss(masked_cfg), new_params, opt, few, key=k_fit,
                       epochs=finetune_epochs, progress=progress).state.params
    sg_cfg = transfer.Config(cnn=new_cnn, freeze="stop_gradient")
    runs["stop_gradient"] = fit(_loss(sg_cfg), new_params, make_optimizer(), few, key=k_fit,
                                epochs=finetune_epochs, progress=progress).state.params
    scratch_cfg = transfer.Config(cnn=new_cnn, freeze="none")
    runs["scratch"] = fit(_loss(scratch_cfg), transfer.init(k_scratch, scratch_cfg),
                          make_optimizer(), few, key=k_fit, epochs=finetune_epochs,
                          progress=progress).state.params
    seconds = time.perf_counter() - t0

    conv = [k for k in new_params if k.startswith("conv")]
    same = lambda a, b: all(np.array_equal(x, y) for x, y in
                            zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    result = {
        "source_classes": list(source_classes), "target_classes": list(target_classes),
        "shots": shots, "finetune_examples": len(yt), "seconds": seconds,
        "pretrain_epochs": len(pre.history), "pretrain_steps": int(pre.state.step),
        "source_test_accuracy": source_acc,
        "features_unchanged": all(same(runs[m][k], loaded[k]) for m in ("mask", "stop_gradient")
                                  for k in conv),
        "mask_equals_stop_gradient": same(runs["mask"], runs["stop_gradient"]),
    }
    for name, params in runs.items():
        eval_cfg = transfer.Config(cnn=new_cnn)
        loss, acc = _metrics(params, eval_cfg, xt_test, yt_test)
        result[f"{name}_test_loss"], result[f"{name}_test_accuracy"] = loss, acc
        loss, acc = _metrics(params, eval_cfg, xt, yt)
        result[f"{name}_train_loss"], result[f"{name}_train_accuracy"] = loss, acc
    with open(os.path.join(out, "transfer.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result, runs, pre


def train(spec, opts) -> dict:
    """``zoo train transfer``: :func:`run_experiment` with the CLI options, plus the run files
    of every zoo run (``run.json``, ``metrics.jsonl`` and ``loss.png`` of the pretraining,
    ``checkpoints/``, ``summary.json``, ``manifest.json``); ``--resume`` continues the
    pretraining from its latest checkpoint, then runs the fine-tuning again."""
    ds = load_data(opts.dataset, opts.dataset_options)
    check_data(spec, opts.dataset, ds)
    if np.ndim(ds.x_train) != 4:
        raise UsageError(f"transfer needs image data [n, h, w, c]; dataset {opts.dataset!r} "
                         f"has x of shape {np.shape(ds.x_train)}")
    ckpt_dir = runs.prepare_run_dir(opts, data=ds)
    extra = spec.extra
    result, outcomes, pre = _experiment(
        ds, out=opts.out, make_optimizer=lambda: make_optimizer(opts.optimizer, opts.lr),
        seed=opts.seed, epochs=opts.epochs, batch_size=opts.batch_size or 32,
        source_classes=extra["source_classes"], target_classes=extra["target_classes"],
        shots=extra["shots"], finetune_epochs=extra["finetune_epochs"],
        progress=not opts.quiet, history_path=os.path.join(opts.out, runs.HISTORY_FILE),
        checkpoint_dir=ckpt_dir, resume=opts.resume,
        checkpoint_every_epochs=runs.checkpoint_cadence(opts.epochs), callbacks=())
    params = outcomes["mask"]
    summary = runs.summary(spec, opts, epochs=result["pretrain_epochs"],
                           steps=result["pretrain_steps"], seconds=result["seconds"],
                           params=params,
                           **{k: v for k, v in result.items() if k != "seconds"},
                           train_accuracy=result["mask_train_accuracy"],
                           train_loss=result["mask_train_loss"],
                           test_accuracy=result["mask_test_accuracy"],
                           test_loss=result["mask_test_loss"])
    classes = ", ".join(map(str, extra["source_classes"]))
    runs.write_run_files(opts.out, opts=opts, summary=summary, history=pre.history,
                         cfg=spec.config, params=params,
                         title=f"zoo train transfer ({opts.dataset}): pretraining on {classes}")
    return summary


def evaluate(spec, opts) -> dict:
    """``zoo eval transfer``: the saved experiment's results (``transfer.json``)."""
    run_dir, _ = runs.find_run(opts.checkpoint)
    path = os.path.join(run_dir, "transfer.json")
    if not os.path.isfile(path):
        raise UsageError(f"no transfer.json in {run_dir!r}; run 'zoo train transfer' first")
    with open(path) as f:
        return json.load(f)
