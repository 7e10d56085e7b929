"""Sane caps on what a loader reads or builds, and the checks that apply them.

Every loader checks sizes (declared in a header, by the file system or by an option) against
these caps and against the real file before it allocates anything, so a damaged or hostile
file is one `ValueError` naming it, never a `MemoryError` or a multi-GB allocation. The
caps are module attributes read at call time: a user with larger data raises them, e.g.
`train.datasets.limits.MAX_FILE_BYTES = 8 << 30`.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import zlib
from pathlib import Path

import numpy as np

# One binary data file once decompressed (an IDX file, a CIFAR batch), or all members of one
# archive together. The largest real one here, CIFAR-10's tar, holds 180 MB.
MAX_FILE_BYTES = 1 << 30
# One text file read whole (plain text, tab-separated pairs, CSV, text8 without max_tokens);
# the largest real one, text8, has 10**8 bytes.
MAX_TEXT_BYTES = 1 << 27
# One array a loader builds (float32 images, padded token ids, generated examples).
MAX_ARRAY_BYTES = 4 << 30
# One image, as stored or after resizing or cropping (Pillow decodes an image whole).
MAX_IMAGE_PIXELS = 1 << 26
# The most a deflate stream can expand (zlib's technical note: 1032:1), for zip and gzip.
DEFLATE_MAX_RATIO = 1032

_CHUNK = 1 << 20


def nbytes(n: int) -> str:
    """`n` bytes in words, exact and rounded: '3136000000000 bytes (2.9 TiB)'."""
    for unit, shift in (('TiB', 40), ('GiB', 30), ('MiB', 20), ('KiB', 10)):
        if n >= 1 << shift:
            return f'{n} bytes ({n / (1 << shift):.1f} {unit})'
    return f'{n} bytes'


def limit_text(name: str) -> str:
    """'the limit train.datasets.limits.NAME = 1073741824 bytes (1.0 GiB)'."""
    value = globals()[name]
    shown = nbytes(value) if name.endswith('BYTES') else f'{value} pixels'
    return f'the limit train.datasets.limits.{name} = {shown}'


def check_array_bytes(fn: str, what: str, shape, itemsize: int = 4) -> None:
    """A ValueError, before allocating, when an array of `shape` would pass MAX_ARRAY_BYTES.

    `shape` holds Python ints, so the product cannot wrap around.
    """
    need = math.prod(int(s) for s in shape) * itemsize
    if need > MAX_ARRAY_BYTES:
        raise ValueError(f'{fn}: {what} of shape {tuple(int(s) for s in shape)} would need '
                         f'{nbytes(need)}, more than {limit_text("MAX_ARRAY_BYTES")}')


def check_file_bytes(source, size: int, name: str, what: str = 'holds') -> None:
    """A ValueError naming `source` when `size` passes the cap `name` (e.g. MAX_TEXT_BYTES)."""
    if size > globals()[name]:
        raise ValueError(f'{source}: {what} {nbytes(size)}, more than {limit_text(name)}')


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (the name does not count)."""
    with open(path, 'rb') as f:
        return f.read(2) == b'\x1f\x8b'


@contextlib.contextmanager
def open_decoded(path: Path):
    """The file's bytes as a stream, gunzipped when it starts with the gzip magic.

    Damaged or truncated gzip data and read errors, wherever they surface while the stream is
    read, become one ValueError naming the file.
    """
    try:
        with open(path, 'rb') as raw:
            gz = raw.read(2) == b'\x1f\x8b'
            raw.seek(0)
            if gz:
                with gzip.GzipFile(fileobj=raw, mode='rb') as stream:
                    yield stream
            else:
                yield raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(f'{path}: damaged or truncated gzip data ({e})') from e
    except OSError as e:
        raise ValueError(f'{path}: cannot read the file ({e.strerror or e})') from e


def decoded_size(path: Path, upto: int) -> int:
    """The file's size after gunzipping (see `open_decoded`), or `upto + 1` if it is larger:
    a gzip stream is read through (and its checksum checked) without keeping it, and never
    further than `upto + 1` bytes."""
    path = Path(path)
    if not is_gzip(path):
        return min(path.stat().st_size, upto + 1)
    n = 0
    with open_decoded(path) as f:
        while n <= upto:
            chunk = f.read(min(_CHUNK, upto + 1 - n))
            if not chunk:
                break
            n += len(chunk)
    return n


def read_exactly(stream, n: int, source) -> np.ndarray:
    """The next `n` bytes of `stream` as <uint8>[n], read into one buffer of that size."""
    out = np.empty(n, np.uint8)
    view, got = memoryview(out), 0
    while got < n:
        k = stream.readinto(view[got:got + _CHUNK])
        if not k:
            raise ValueError(f'{source}: truncated: {got} of {n} bytes of data')
        got += k
    return out
