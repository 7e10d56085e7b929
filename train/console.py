"""What the ``zoo`` command prints besides its results: one line per warning, and none of the
noise orbax's background threads make.

- :func:`one_line`: the first line of a message (TensorStore appends multi-line spec dumps).
- :func:`quiet_libraries`: for the duration of a command, warnings print as one line
  ``zoo: warning: ...``; the log records of absl's logger (orbax logs each failed write of its
  threads there, with tracebacks: about 200 lines for a full disk) are held back, to be shown
  only before a traceback they may explain; and the "Event loop is closed" tracebacks that
  TensorStore callbacks print as unraisable exceptions after orbax closed its event loop (after
  a damaged checkpoint was skipped, or a clean error; about 190 lines, now and then) are
  dropped, every other unraisable exception still printed; so are asyncio's "Task exception
  was never retrieved" records of orbax's background writes that failed with a system error
  (one per array, each with its traceback, as the interpreter exits after a checkpoint written
  in the background met a full disk, which the command has reported in one line).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator

__all__ = ["one_line", "quiet_libraries"]


def one_line(text) -> str:
    """The first line of a message (TensorStore's spec dumps cut), and '...' if there was more."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()] or [""]
    first = lines[0].split(" See full TensorStore details")[0]
    return first + (" ..." if len(lines) > 1 else "")


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"zoo: warning: {one_line(message)}", file=sys.stderr)


def _drop_event_loop_noise(unraisable) -> None:
    e = unraisable.exc_value
    if isinstance(e, RuntimeError) and str(e) == "Event loop is closed":
        return
    _PREVIOUS_UNRAISABLEHOOK(unraisable)


_PREVIOUS_UNRAISABLEHOOK = sys.unraisablehook


class _DropFailedWriteTasks(logging.Filter):
    """Drops asyncio's report of a garbage-collected task whose exception, a failed write
    with a system error code (TensorStore's ``os_error_code``), nobody retrieved."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (str(record.msg).startswith("Task exception was never retrieved")
                    and error is not None and "os_error_code" in str(error))


_DROP_FAILED_WRITE_TASKS = _DropFailedWriteTasks()


class Held(logging.Handler):
    """Log records held back (``records``), in order."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[Held]:
    """Warnings as one line each, absl's (orbax's) log records held back (the handler that
    holds them is yielded), event-loop noise and unretrieved failed-write tasks dropped (from
    now on: they come after the command, as the interpreter exits)."""
    global _PREVIOUS_UNRAISABLEHOOK
    if sys.unraisablehook is not _drop_event_loop_noise:
        _PREVIOUS_UNRAISABLEHOOK = sys.unraisablehook
        sys.unraisablehook = _drop_event_loop_noise
    if _DROP_FAILED_WRITE_TASKS not in logging.getLogger("asyncio").filters:
        logging.getLogger("asyncio").addFilter(_DROP_FAILED_WRITE_TASKS)
    logger, held = logging.getLogger("absl"), Held()
    propagate = logger.propagate
    logger.addHandler(held)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            yield held
    finally:
        logger.removeHandler(held)
        logger.propagate = propagate
