"""Run folders: what a ``zoo train`` run writes, and how a later command finds and restores it.

A run folder (``--out``, default ``runs/NAME``) holds:

- ``run.json``: the run's :class:`RunOptions`, read back by ``zoo eval``, ``zoo sample`` and
  ``--resume``;
- ``metrics.jsonl``: one line per epoch (``train.loop.fit``'s history);
- ``checkpoints/``: ``train.checkpoint`` checkpoints, every :func:`checkpoint_cadence`
  epochs and after the last;
- ``summary.json``: final train and test metrics (:func:`summary`), ``loss.png`` (the loss
  curve) and ``manifest.json`` (versions, config, parameter hash; ``train.manifest``);
- ``fingerprint.json``: what makes the run this run (:func:`fingerprint`): the options that
  change its result and a hash of its data's contents. ``--resume`` continues the run only
  when both are the same (:func:`resume_changes`), or records the differences it was allowed
  (``--allow-changes``) in ``fingerprint.json`` and the manifest;
- ``run.lock`` while a ``zoo train`` writes it (:func:`writing`, ``train.lock``): one writer
  per folder.

Every function here is public so that a driver (``train.drivers``) for a model with its own
training loop writes the same folder the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from train.errors import UsageError
from train.lock import LOCK_FILE, RunLock

__all__ = ["RUN_FILE", "SUMMARY_FILE", "HISTORY_FILE", "CURVE_FILE", "CHECKPOINT_DIR",
           "FINGERPRINT_FILE", "LOCK_FILE", "RESULT_OPTIONS", "SEED_LIMIT", "RunOptions",
           "prepare_run_dir", "write_run_json", "write_run_files", "checkpoint_cadence",
           "summary", "find_run", "read_run_json", "check_run_options", "restore_latest",
           "checkpoint_message", "fingerprint", "data_fingerprint", "resume_changes",
           "writing"]

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "metrics.jsonl"
CURVE_FILE = "loss.png"
CHECKPOINT_DIR = "checkpoints"
FINGERPRINT_FILE = "fingerprint.json"

# Seeds are below 2**32: without x64, jax.random.PRNGKey keeps a seed's low 32 bits (2**32
# would be seed 0 again) and raises OverflowError from 2**63 on.
SEED_LIMIT = 2 ** 32


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
        allow_changes: let ``resume`` continue with other result-changing options or data
            than the run had (:data:`RESULT_OPTIONS`; recorded in ``fingerprint.json``).
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
    allow_changes: bool = False
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


# Options that change a run's result, compared by --resume (a RunOptions field not yet
# defined, e.g. 'precision', is skipped until it is). 'epochs' is not one: more epochs is what
# a resume is for (a schedule other than 'constant' is stretched over the new total, which
# prepare_run_dir says in a warning).
RESULT_OPTIONS = ("name", "dataset", "optimizer", "lr", "schedule", "weight_decay",
                  "batch_size", "seed", "precision")

# Arrays hashed whole up to this many bytes; a bigger one is hashed on a strided sample of its
# rows (about SAMPLE_BYTES) plus the sum of all its bytes. sha256 reads about 0.5-0.75 GB/s on
# the 2-core CPU, so a 64 MiB array costs about 0.1 s.
FULL_HASH_BYTES = 64 * 2 ** 20
SAMPLE_BYTES = 16 * 2 ** 20
_SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


# --------------------------------------------------------------------------------------------
# Fingerprints: is a --resume the same run?


def _array_fingerprint(a) -> dict:
    a = np.asarray(a)
    out = {"shape": list(a.shape), "dtype": str(a.dtype)}
    if a.dtype == object:   # ragged sequences: hash their text
        out["sha256"] = hashlib.sha256(repr(a.tolist()).encode()).hexdigest()
        return out
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    flat = a.reshape(-1).view(np.uint8)
    if a.nbytes <= FULL_HASH_BYTES or a.ndim == 0:
        out["sha256"] = hashlib.sha256(flat).hexdigest()
        return out
    rows = min(len(a), max(2, SAMPLE_BYTES // max(1, a.nbytes // len(a))))
    picked = np.unique(np.linspace(0, len(a) - 1, rows).astype(np.int64))
    out["sha256"] = hashlib.sha256(np.ascontiguousarray(a[picked]).reshape(-1)
                                   .view(np.uint8)).hexdigest()
    out["sampled_rows"] = len(picked)
    out["byte_sum"] = int(flat.sum(dtype=np.uint64))
    return out


def data_fingerprint(ds) -> dict:
    """``{split: {'shape', 'dtype', 'sha256'[, 'sampled_rows', 'byte_sum']}}`` of a
    ``train.datasets.Dataset``'s arrays (``x_train`` ... ``y_test``; absent splits left out).

    An array up to ``FULL_HASH_BYTES`` (64 MiB) is hashed whole (SHA-256 of its bytes); a
    bigger one (MNIST's 47 MB is below; CIFAR-10's 150 MB, text8's ids are above) on about
    16 MiB of evenly spaced rows plus the sum of all its bytes, so that a change anywhere in
    its values, its order at the sampled rows, its shape or dtype tells.
    """
    return {name: _array_fingerprint(getattr(ds, name)) for name in _SPLITS
            if getattr(ds, name, None) is not None}


def _field_default(name: str):
    for f in dataclasses.fields(RunOptions):
        if f.name == name:
            return f.default
    return None


def fingerprint(opts: RunOptions, data=None) -> dict:
    """What makes a run this run: ``{'options': {the RESULT_OPTIONS RunOptions has},
    'epochs', 'dataset_options', 'data': data_fingerprint(data) or None}``."""
    names = {f.name for f in dataclasses.fields(RunOptions)}
    options = {k: getattr(opts, k) for k in RESULT_OPTIONS if k in names}
    return {"options": options, "epochs": opts.epochs,
            "dataset_options": dict(opts.dataset_options),
            "data": None if data is None else data_fingerprint(data)}


def _array_text(fp: dict) -> str:
    return f"<{fp.get('dtype')}>{fp.get('shape')}"


def resume_changes(saved: Mapping, now: Mapping) -> list[str]:
    """What differs between two fingerprints (:func:`fingerprint`), one phrase per difference
    (``"lr: saved 0.01, now 0.02"``, ``"data x_train: other values (same <float32>[4000,
    40])"``); empty when ``now`` continues ``saved``. Data is compared when both have it,
    else the dataset options are."""
    diffs = []
    s_opts, n_opts = dict(saved.get("options") or {}), dict(now.get("options") or {})
    for k in RESULT_OPTIONS:
        if k not in n_opts:
            continue
        old = s_opts.get(k, _field_default(k))
        if old != n_opts[k]:
            diffs.append(f"{k}: saved {old!r}, now {n_opts[k]!r}")
    s_data, n_data = saved.get("data"), now.get("data")
    if s_data is None or n_data is None:
        old, new = saved.get("dataset_options"), now.get("dataset_options")
        if old is not None and new is not None and dict(old) != dict(new):
            diffs.append(f"dataset_options: saved {dict(old)!r}, now {dict(new)!r}")
        return diffs
    for name in _SPLITS:
        a, b = s_data.get(name), n_data.get(name)
        if a == b:
            continue
        if a is None or b is None:
            diffs.append(f"data {name}: saved {'none' if a is None else _array_text(a)}, now "
                         f"{'none' if b is None else _array_text(b)}")
        elif (a.get("shape"), a.get("dtype")) != (b.get("shape"), b.get("dtype")):
            diffs.append(f"data {name}: saved {_array_text(a)}, now {_array_text(b)}")
        else:
            diffs.append(f"data {name}: other values (same {_array_text(a)})")
    return diffs


def _read_fingerprint(out: str) -> dict | None:
    path = os.path.join(out, FINGERPRINT_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path} is damaged ({type(e).__name__}: {e}); it holds what the "
                         "run was trained with, so --resume cannot check it") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("options"), dict):
        raise UsageError(f"{path} is damaged: expected a JSON object with the run's options")
    return saved


def _write_json(path: str, value) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _check_resume(opts: RunOptions, data) -> dict:
    """The fingerprint to write for a --resume of ``opts.out``: refused (UsageError) when it
    is not the same run, unless ``opts.allow_changes``, whose changes it records."""
    out = opts.out
    now = fingerprint(opts, data)
    saved = _read_fingerprint(out)
    if saved is None:   # a run from before fingerprints: its run.json has the options
        saved = fingerprint(RunOptions.from_json(read_run_json(out)))
        if data is not None:
            warnings.warn(f"{out!r} has no {FINGERPRINT_FILE} (an older run): the data of "
                          "this resume cannot be checked against the run's", RuntimeWarning,
                          stacklevel=3)
    diffs = resume_changes(saved, now)
    if diffs and not opts.allow_changes:
        raise UsageError(f"--resume would not continue the run in {out!r}: "
                         f"{'; '.join(diffs)}. Resume with the run's options and data, or "
                         "pass --allow-changes to continue with these (recorded in "
                         f"{FINGERPRINT_FILE})")
    epochs = saved.get("epochs")
    if opts.schedule != "constant" and _is_int(epochs) and epochs != opts.epochs:
        warnings.warn(f"--resume: the {opts.schedule!r} learning-rate schedule is stretched "
                      f"over {opts.epochs} epochs now ({epochs} before), so the rate from the "
                      "resumed step on is not the one the run had", RuntimeWarning,
                      stacklevel=3)
    now["changes"] = list(saved.get("changes") or [])
    if diffs:
        now["changes"].append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changes": diffs})
        warnings.warn(f"--allow-changes: resuming {out!r} with {'; '.join(diffs)}",
                      RuntimeWarning, stacklevel=3)
    return now


# --------------------------------------------------------------------------------------------
# Writing a run folder

# The lock of the run folder the CLI is writing (:func:`writing`), taken by prepare_run_dir.
_WRITING: contextvars.ContextVar[RunLock | None] = contextvars.ContextVar("writing",
                                                                         default=None)


@contextlib.contextmanager
def writing(out: str) -> Iterator[RunLock]:
    """Be the one writer of the run folder ``out`` inside the ``with`` block (``zoo train``
    wraps its driver in it): the lock (``train.lock.RunLock``) is taken at once if ``out``
    exists, else by :func:`prepare_run_dir` when it creates the folder, and released on
    leaving, by an error too.

    Raises:
        train.lock.RunLockedError: another live process writes ``out``.
    """
    lock = RunLock(out)
    token = _WRITING.set(lock)
    try:
        if os.path.isdir(out):
            lock.acquire()
        yield lock
    finally:
        _WRITING.reset(token)
        lock.release()


def _lock_for(out: str) -> None:
    """Take the lock of ``out`` when inside :func:`writing` for it; otherwise (library use) only
    refuse a folder another live process is writing."""
    lock = _WRITING.get()
    if lock is not None and lock.directory == os.path.abspath(out):
        lock.acquire()
    else:
        RunLock(out).acquire().release()


def write_run_json(out: str, opts: RunOptions) -> None:
    """Write ``run.json`` (the options) into ``out`` (atomically: a reader never sees half)."""
    _write_json(os.path.join(out, RUN_FILE), opts.to_json())


def prepare_run_dir(opts: RunOptions, data=None) -> str:
    """Create ``opts.out``, write its ``run.json`` and ``fingerprint.json`` and return its
    checkpoint directory.

    A fresh run (not ``--resume``) deletes old checkpoints first, so it never continues from
    an earlier run's steps. A resume needs a run (``run.json``) in ``out`` and continues it
    only when :func:`fingerprint` (the result-changing options and ``data``, the run's
    ``train.datasets.Dataset``, by contents) is the run's, or ``opts.allow_changes`` (the
    changes are recorded); otherwise it is refused before anything is written. A resumed run
    keeps the ``run.json`` it continues (written anew by :func:`write_run_files` once it
    succeeds), so a resume that fails leaves the run as it was. Inside :func:`writing` the
    folder's lock is taken here. An ``out`` that is a file or cannot be written is a
    :class:`UsageError`.
    """
    out = opts.out
    if not out:
        raise UsageError("--out must name a directory, got an empty path")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out!r} is an existing file, not a directory")
    ckpt_dir = os.path.join(out, CHECKPOINT_DIR)
    if opts.resume and not os.path.isfile(os.path.join(out, RUN_FILE)):
        raise UsageError(f"--resume: there is no run to resume in {out!r} (no {RUN_FILE}); "
                         "leave out --resume to start one")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write the run directory --out {out!r}: "
                         f"{e.strerror or e}") from e
    _lock_for(out)
    now = _check_resume(opts, data) if opts.resume else fingerprint(opts, data)
    if opts.resume and not _has_checkpoint(ckpt_dir):
        warnings.warn(f"--resume: {out!r} has no checkpoint yet; training from the first "
                      "epoch", RuntimeWarning, stacklevel=2)
    try:
        if not opts.resume and os.path.isdir(ckpt_dir):
            shutil.rmtree(ckpt_dir)
        if not opts.resume:
            write_run_json(out, opts)
        _write_json(os.path.join(out, FINGERPRINT_FILE), now)
    except OSError as e:
        raise UsageError(f"cannot write the run directory --out {out!r}: "
                         f"{e.strerror or e}") from e
    return ckpt_dir


def _has_checkpoint(ckpt_dir: str) -> bool:
    try:
        return any(n.startswith("step_") and n[5:].isdigit() for n in os.listdir(ckpt_dir))
    except OSError:
        return False


def checkpoint_cadence(epochs: int) -> int:
    """Epochs between the checkpoints of a ``zoo train`` run: ``max(1, epochs // 5)`` (plus
    one after the last epoch). ``fit`` writes them in the background, but on a 2-core CPU
    orbax's writer (about 40 ms of CPU for a small model's state) still shares the cores with
    training, so a handful per run keeps saving a small part of it."""
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
    """Write ``summary.json``, ``loss.png``, ``manifest.json`` (with the run's fingerprint and
    the changes its resumes were allowed) and ``run.json`` of a finished run.

    Raises:
        train.loop.NonFiniteError: ``params`` hold a NaN or an infinity (after the files are
            written, so the run's record is kept): a run that diverged does not pass as done.
    """
    from train import plots
    from train.manifest import finite_or_none, write_manifest

    write_run_json(out, opts)
    with open(os.path.join(out, SUMMARY_FILE), "w") as f:
        json.dump(finite_or_none(summary), f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
    if history:
        plots.plot_history(history, os.path.join(out, CURVE_FILE), title=title)
    extra = {"options": opts.to_json(), "summary": summary}
    with contextlib.suppress(UsageError):
        fp = _read_fingerprint(out)
        if fp is not None:
            extra["fingerprint"] = fp
    write_manifest(out, config=cfg, seed=opts.seed, params=params, extra=extra)
    _refuse_nonfinite(params, out, summary)


def _refuse_nonfinite(params, out: str, summary: dict) -> None:
    import jax

    from train.loop import NonFiniteError
    from train.manifest import _host_value

    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        value = _host_value(leaf)
        if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all():
            name = f"params{jax.tree_util.keystr(path)}"
            raise NonFiniteError(
                f"the run ended with non-finite parameters (the first is {name}); its files "
                f"in {out!r} record it, and its checkpoints hold the last finite states",
                step=int(summary.get("steps", -1)), leaf=name)


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
    check_run_options(saved, where=f"{path} is damaged")
    return saved


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


# key -> (test, what it must be); None is allowed where the words say so
_SAVED_TYPES = {
    "name": (lambda v: isinstance(v, str) and v != "", "a model name"),
    "dataset": (lambda v: isinstance(v, str) and v != "", "a dataset name"),
    "dataset_options": (lambda v: isinstance(v, dict), "an object of loader options"),
    "optimizer": (lambda v: isinstance(v, str) and v != "", "an optimizer name"),
    "schedule": (lambda v: isinstance(v, str) and v != "", "a schedule name"),
    "lr": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "weight_decay": (lambda v: v is None or (_is_number(v) and v >= 0),
                     "a number >= 0 or null"),
    "batch_size": (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1 or null"),
    "epochs": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "seed": (lambda v: _is_int(v) and 0 <= v < SEED_LIMIT, "an integer in [0, 2**32)"),
}


def check_run_options(saved: Mapping, *, where: str) -> None:
    """Refuse saved options (a ``run.json``) of the wrong type or range: one
    :class:`UsageError` ``<where>: '<key>' must be <what>, got <value>``."""
    for key, (ok, words) in _SAVED_TYPES.items():
        if key in saved and not ok(saved[key]):
            raise UsageError(f"{where}: {key!r} must be {words}, got {saved[key]!r}")


def checkpoint_message(e: BaseException) -> str | None:
    """One line for a checkpoint that cannot be restored (``train.checkpoint``'s errors), or
    None for any other error."""
    from train.checkpoint import CheckpointDamagedError, CheckpointMismatchError

    text = str(e)
    if isinstance(e, CheckpointMismatchError):
        return f"the checkpoint does not fit this model and data: {text.splitlines()[0]}"
    if isinstance(e, CheckpointDamagedError):
        return f"a checkpoint is damaged: {text.splitlines()[0]}"
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
