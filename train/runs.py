"""Run folders: what a ``zoo train`` run writes, and how a later command finds and restores it.

A run folder (``--out``, default ``runs/NAME``) holds:

- ``run.json``: the run's :class:`RunOptions`, read back by ``zoo eval``, ``zoo sample`` and
  ``--resume``;
- ``metrics.jsonl``: one line per epoch (``train.loop.fit``'s history);
- ``checkpoints/``: ``train.checkpoint`` checkpoints, every :func:`checkpoint_cadence`
  epochs and after the last;
- ``summary.json``: final train and test metrics (:func:`summary`), ``loss.png`` (the loss
  curve) and ``manifest.json`` (versions, config, parameter hash; ``train.manifest``).

Every function here is public so that a driver (``train.drivers``) for a model with its own
training loop writes the same folder the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from typing import Any

from train.errors import UsageError

__all__ = ["RUN_FILE", "SUMMARY_FILE", "HISTORY_FILE", "CURVE_FILE", "CHECKPOINT_DIR",
           "RunOptions", "prepare_run_dir", "write_run_json", "write_run_files",
           "checkpoint_cadence", "summary", "find_run", "read_run_json", "restore_latest",
           "checkpoint_message"]

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "metrics.jsonl"
CURVE_FILE = "loss.png"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass
class RunOptions:
    """Resolved options of one ``zoo`` invocation (command-line values over registry defaults).

    Attributes:
        name: model name in ``zoo.registry``.
        dataset: dataset name; ``dataset_options`` apply to it.
        dataset_options: loader options (the registry's, when the dataset is the default).
        optimizer, lr, batch_size, epochs, seed: training settings (batch_size None = full
            batch).
        schedule: learning-rate schedule name (``train.optimizers.SCHEDULES``), stretched
            over ``epochs``.
        weight_decay: decoupled weight decay of optimizers that take one (adamw, lamb,
            adadelta); None keeps the optimizer's default.
        out: output directory.
        resume: continue from the latest checkpoint in ``out``.
        quiet: no progress bar and no summary table.
        precision: float32 products at the backend's fast default (``'default'``) or
            ``'high'`` / ``'highest'`` (``train.loop.settings.precision_scope``).
        checkpoint: run directory (or its ``checkpoints/``) for ``zoo eval`` / ``zoo sample``.
        extra: further subcommand-specific values (e.g. for ``zoo sample``).
    """

    name: str
    dataset: str
    dataset_options: Mapping[str, Any]
    optimizer: str
    lr: float
    batch_size: int | None
    epochs: int
    seed: int = 0
    schedule: str = "constant"
    weight_decay: float | None = None
    out: str | None = None
    resume: bool = False
    quiet: bool = False
    precision: str = "default"
    checkpoint: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["dataset_options"] = dict(self.dataset_options)
        return d

    @classmethod
    def from_json(cls, saved: Mapping) -> RunOptions:
        """The options a ``run.json`` holds (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})


# --------------------------------------------------------------------------------------------
# Writing a run folder


def write_run_json(out: str, opts: RunOptions) -> None:
    """Write ``run.json`` (the options) into ``out``."""
    with open(os.path.join(out, RUN_FILE), "w") as f:
        json.dump(opts.to_json(), f, indent=2, sort_keys=True)
        f.write("\n")


def prepare_run_dir(opts: RunOptions) -> str:
    """Create ``opts.out``, write its ``run.json`` and return its checkpoint directory.

    A fresh run (not ``--resume``) deletes old checkpoints first, so it never continues from
    an earlier run's steps. A resumed run keeps the ``run.json`` it continues (written anew by
    :func:`write_run_files` once it succeeds), so a resume that fails, e.g. with other data
    options, leaves the run as it was. An ``out`` that is a file or cannot be written is a
    :class:`UsageError`.
    """
    out = opts.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out!r} is an existing file, not a directory")
    ckpt_dir = os.path.join(out, CHECKPOINT_DIR)
    try:
        os.makedirs(out, exist_ok=True)
        if not opts.resume and os.path.isdir(ckpt_dir):
            shutil.rmtree(ckpt_dir)
        if not (opts.resume and os.path.isfile(os.path.join(out, RUN_FILE))):
            write_run_json(out, opts)
    except OSError as e:
        raise UsageError(f"cannot write the run directory --out {out!r}: "
                         f"{e.strerror or e}") from e
    return ckpt_dir


def checkpoint_cadence(epochs: int) -> int:
    """Epochs between the checkpoints of a ``zoo train`` run: ``max(1, epochs // 5)`` (plus
    one after the last epoch), so that saving (0.1-0.3 s per checkpoint with orbax here)
    stays a small part of a long run."""
    return max(1, int(epochs) // 5)


def summary(spec, opts: RunOptions, *, epochs: int, steps: int, seconds: float,
            params=None, **metrics) -> dict:
    """The summary of a finished run, as every driver writes it: ``model``, ``dataset``,
    ``task``, ``epochs``, ``steps``, ``param_count`` (with ``params``), ``seconds``,
    ``expected`` (the registry's measured result for this dataset), then ``metrics``."""
    from train.manifest import param_count

    out = {"model": spec.name, "dataset": opts.dataset, "task": spec.task,
           "epochs": int(epochs), "steps": int(steps)}
    if params is not None:
        out["param_count"] = param_count(params)
    out.update({"seconds": float(seconds), "expected": spec.expected_for(opts.dataset)})
    out.update(metrics)
    return out


def write_run_files(out: str, *, opts: RunOptions, summary: dict, history, cfg, params,
                    title: str = "") -> None:
    """Write ``summary.json``, ``loss.png``, ``manifest.json`` and ``run.json`` of a finished
    run."""
    from train import plots
    from train.manifest import finite_or_none, write_manifest

    write_run_json(out, opts)
    with open(os.path.join(out, SUMMARY_FILE), "w") as f:
        json.dump(finite_or_none(summary), f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
    if history:
        plots.plot_history(history, os.path.join(out, CURVE_FILE), title=title)
    write_manifest(out, config=cfg, seed=opts.seed, params=params,
                   extra={"options": opts.to_json(), "summary": summary})


# --------------------------------------------------------------------------------------------
# Finding and restoring a run


def find_run(checkpoint: str) -> tuple[str, str]:
    """``(run dir, checkpoints dir)`` from a run directory or its checkpoints directory."""
    path = os.path.abspath(checkpoint)
    if os.path.isfile(os.path.join(path, RUN_FILE)):
        return path, os.path.join(path, CHECKPOINT_DIR)
    parent = os.path.dirname(path)
    if os.path.isfile(os.path.join(parent, RUN_FILE)):
        return parent, path
    raise UsageError(f"no {RUN_FILE} found in {checkpoint!r} or its parent; pass the --out "
                     "directory of a 'zoo train' run")


def read_run_json(run_dir: str) -> dict:
    """The options saved in ``run_dir/run.json``, as a dict.

    Raises:
        UsageError: the file is missing, unreadable, not JSON, or not an object.
    """
    path = os.path.join(run_dir, RUN_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"no {RUN_FILE} in {run_dir!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path} is damaged ({type(e).__name__}: {e}); it holds the "
                         "run's options") from None
    if not isinstance(saved, dict):
        raise UsageError(f"{path} is damaged: expected a JSON object of the run's options, "
                         f"got {type(saved).__name__}")
    return saved


def checkpoint_message(e: BaseException) -> str | None:
    """One line for a checkpoint that cannot be restored (``train.checkpoint``'s errors), or
    None for any other error."""
    from train.checkpoint import CheckpointMismatchError

    text = str(e)
    if isinstance(e, CheckpointMismatchError):
        return f"the checkpoint does not fit this model and data: {text.splitlines()[0]}"
    if isinstance(e, FileNotFoundError) and text.startswith("CheckpointManager.restore:"):
        head = text.splitlines()[0].split(" See full TensorStore details")[0]
        directory = head.split(" no readable checkpoint in ", 1)[-1].split(": ", 1)
        detail = f" ({directory[1][:200]})" if len(directory) > 1 else ""
        return (f"no readable checkpoint in {directory[0]!r}: its files are damaged or "
                f"incomplete{detail}")
    return None


def restore_latest(ckpt_dir: str, target):
    """The newest readable checkpoint of ``ckpt_dir`` restored into ``target``:
    ``(state, meta)``. No checkpoint, or a damaged or mismatching one, is one
    :class:`UsageError` naming the directory; the warnings about skipped damaged checkpoints
    are shown only when an older one could be restored."""
    from train.checkpoint import CheckpointManager

    if not os.path.isdir(ckpt_dir):
        raise UsageError(f"no checkpoints in {ckpt_dir!r}")
    manager = CheckpointManager(ckpt_dir)
    if manager.latest_step() is None:
        raise UsageError(f"no complete checkpoint in {ckpt_dir!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            restored = manager.restore(target)
        except (FileNotFoundError, ValueError) as e:
            message = checkpoint_message(e)
            if message is None:
                raise
            raise UsageError(message) from e
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return restored
