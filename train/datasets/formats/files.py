"""Shared by the file loaders: finding a dataset's files, checking options, reading text."""

from __future__ import annotations

import codecs
from pathlib import Path

from .. import download as dl
from .. import limits
from ..core import positive_int


def find_all(directory: Path, groups, name: str, download: bool, path_given: bool):
    """For each group of alternative file names (relative to `directory`), the first that
    exists; fetches the dataset first when allowed, and otherwise reports every missing file
    in one error."""
    def look():
        return [next((directory / c for c in g if (directory / c).is_file()), None)
                for g in groups]

    if path_given and not directory.exists():
        raise no_such_path(name, directory, f'a directory holding '
                            f'{", ".join(g[0] for g in groups)}')
    found = look()
    if None in found and download and not path_given:
        dl.fetch(name, directory)
        found = look()
    missing = [' or '.join(g) for g, f in zip(groups, found, strict=True) if f is None]
    if missing:
        raise dl.missing_error(name, directory, missing)
    return found


def no_such_path(name: str, path: Path, expected: str) -> dl.MissingDataError:
    """The error for a `path` option naming nothing on disk."""
    return dl.MissingDataError(f'{name}: {path} does not exist (expected {expected})')


def given_file(name: str, path, expected: str) -> Path | None:
    """`path` if it names an existing file; None for no path or a directory (look inside);
    a MissingDataError if it names nothing."""
    if path is None:
        return None
    path = dl.dataset_dir(name, path)
    if path.is_file():
        return path
    if not path.exists():
        raise no_such_path(name, path, expected)
    return None


def find(directory: Path, candidates, name: str, download: bool, path_given: bool):
    """The first existing file among `candidates` (see `find_all`)."""
    return find_all(directory, [candidates], name, download, path_given)[0]


def optional_int(value, what: str, fn: str, minimum: int = 1) -> int | None:
    return None if value is None else positive_int(value, what, fn, minimum)


def text_encoding(encoding, fn: str) -> str:
    """`encoding` if Python has a text codec of that name; a TypeError or ValueError naming
    the option otherwise (open() would raise LookupError, which no caller expects)."""
    if not isinstance(encoding, str):
        raise TypeError(f'{fn}: encoding must be a codec name such as \'utf-8\', got '
                        f'{type(encoding).__name__} {encoding!r}')
    try:
        codecs.lookup(encoding)
        b'a'.decode(encoding)  # LookupError for codecs that do not decode bytes to text
    except LookupError as e:
        raise ValueError(f"{fn}: encoding {encoding!r} is not a text encoding Python knows "
                         f"({e}); e.g. 'utf-8', 'latin-1', 'utf-16'") from None
    except UnicodeError:
        pass                   # a text codec that cannot decode one lone byte, e.g. utf-16
    return encoding


def read_text(path: Path, encoding: str, kind: str = 'text', empty_ok: bool = False) -> str:
    """A text file decoded whole, after its size is checked against MAX_TEXT_BYTES; a UTF-8
    byte-order mark is dropped. Every failure is a ValueError naming the file (and the line
    of a byte that does not decode)."""
    limits.check_file_bytes(path, path.stat().st_size, 'MAX_TEXT_BYTES', 'has')
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f'{path}: cannot read the file ({e.strerror or e})') from e
    skip = 0
    if codecs.lookup(encoding).name == 'utf-8' and data.startswith(codecs.BOM_UTF8):
        skip = len(codecs.BOM_UTF8)
    try:
        text = data[skip:].decode(encoding)
    except UnicodeError as e:
        start = getattr(e, 'start', 0) + skip
        line = data.count(b'\n', 0, start) + 1
        raise ValueError(f'{path}:{line}: not valid {encoding} text at byte {start} '
                         f'({getattr(e, "reason", e)})') from None
    if not text and not empty_ok:
        raise ValueError(f'{path}: empty {kind} file')
    return text
