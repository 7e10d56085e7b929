"""Errors a user can fix, shared by the ``zoo`` command, its drivers and the library.

``UsageError`` is a ``ValueError`` (library callers can catch it as one); the ``zoo`` command
prints it as one line ``zoo: error: <message>`` and exits with status 2. It lives here, not in
``train.cli``, so that drivers never import the CLI, and so that ``python -m train.cli`` (which
loads ``train.cli`` a second time, as ``__main__``) catches the very class the drivers raise.
"""

from __future__ import annotations

import difflib

__all__ = ["UsageError", "unknown"]


class UsageError(ValueError):
    """Bad input a user can fix: a name, an option, a value, a file or a run directory."""


def unknown(kind: str, name, known, *, where: str = "") -> UsageError:
    """The error for a ``kind`` name not in ``known``, listing the closest known names.

    >>> str(unknown("schedule", "cosin", ["constant", "cosine"]))
    "unknown schedule 'cosin'. Did you mean 'cosine'? Known: constant, cosine"
    """
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    prefix = f"{where}: " if where else ""
    return UsageError(f"{prefix}unknown {kind} {name!r}.{hint} Known: {', '.join(known)}")
