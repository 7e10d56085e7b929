"""``fit``'s settings, checked before anything is traced: small dataclasses for what to monitor
and how to checkpoint, and the argument checks they and ``fit`` share."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

FAST_PATHS = ("auto", "scan", "loop")
SHUFFLES = (True, False, "replacement")


def check_int(where: str, name: str, value, *, low: int, none_ok: bool = False) -> None:
    """TypeError unless ``value`` is an int (bools are not), ValueError unless >= ``low``."""
    if value is None and none_ok:
        return
    expected = f"{'None or ' if none_ok else ''}an int >= {low}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be {expected}, got {value!r}")
    if value < low:
        raise ValueError(f"{where}: {name} must be {expected}, got {value!r}")


def check_choice(where: str, name: str, value, choices) -> None:
    """ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{where}: {name} must be one of {choices}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Monitor:
    """A metric watched after every epoch (early stopping, the best checkpoint).

    Attributes:
        metric: a key of the epoch logs, e.g. ``'val_loss'``.
        mode: ``'min'`` or ``'max'`` (default: ``'max'`` for names containing ``acc``).
        patience: epochs without improvement before stopping (early stopping only).
    """

    metric: str
    mode: str
    patience: int | None = None

    @classmethod
    def parse(cls, spec, where: str) -> Monitor | None:
        """``'val_loss'``, ``('val_loss', 'min')`` or ``(metric, patience[, mode])``; None
        stays None."""
        if spec is None:
            return None
        if isinstance(spec, str):
            return cls(spec, _guess_mode(spec))
        spec = tuple(spec)
        if not spec or not isinstance(spec[0], str):
            raise ValueError(f"{where}: expected a metric name first, got {spec!r}")
        mode, patience = _guess_mode(spec[0]), None
        for item in spec[1:]:
            if item in ("min", "max"):
                mode = item
            elif (isinstance(item, (int, np.integer)) and not isinstance(item, bool)
                  and item >= 0):
                patience = int(item)
            else:
                raise ValueError(f"{where}: expected a patience >= 0 or 'min'/'max', "
                                 f"got {item!r}")
        return cls(spec[0], mode, patience)

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` improves on ``best`` (a non-finite best is beaten by any finite
        value; a non-finite value never improves)."""
        if best is None or not math.isfinite(best):
            return math.isfinite(value)
        return value < best if self.mode == "min" else value > best


def _guess_mode(metric: str) -> str:
    return "max" if "acc" in metric else "min"


@dataclasses.dataclass(frozen=True)
class CheckpointSettings:
    """Where and how often ``fit`` checkpoints (``train.checkpoint``).

    Attributes:
        directory: the checkpoint directory.
        keep: number of most recent checkpoints kept.
        best: also keep the best checkpoint by this monitor.
        every_steps: also checkpoint every this many steps inside an epoch.
        every_epochs: checkpoint at the end of every this many epochs (and of the last one,
            and of one that stops the run).
        resume: continue from the newest good checkpoint in ``directory``.
    """

    directory: str
    keep: int = 3
    best: Monitor | None = None
    every_steps: int | None = None
    every_epochs: int = 1
    resume: bool = False

    def at_epoch_end(self, epoch: int, epochs: int, stopping: bool) -> bool:
        """Whether the end of ``epoch`` (0-based) is checkpointed."""
        return stopping or epoch + 1 == epochs or (epoch + 1) % self.every_epochs == 0


PRECISIONS = (None, "default", "high", "highest")


def precision_scope(precision: str | None, where: str = "fit"):
    """The context in which a run traces its computations at ``precision``.

    ``None`` and ``'default'`` keep the backend's fast default for float32 matrix products
    and convolutions (TF32 on NVIDIA GPUs, one bfloat16 pass on TPUs, float32 on CPU);
    ``'high'`` and ``'highest'`` ask for more (``jax.default_matmul_precision``; on a TPU
    ``'high'`` is three bfloat16 passes, on a GPU ``'highest'`` is float32). See the
    precision policy in docs/architecture.md.

    Raises:
        ValueError: any other value.
    """
    import contextlib

    import jax

    check_choice(where, "precision", precision, PRECISIONS)
    if precision is None:
        return contextlib.nullcontext()
    return jax.default_matmul_precision(precision)
