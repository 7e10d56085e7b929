"""CIFAR-10 in its binary version (``data_batch_1.bin`` ... ``test_batch.bin``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import download as dl
from .. import limits
from ..core import Dataset, check_bool, make_meta, register
from .files import no_such_path, optional_int, read_text

CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                   'ship', 'truck']
_CIFAR_RECORD = 1 + 3 * 32 * 32


def _cifar_records(path: Path) -> int:
    """How many records a CIFAR-10 batch (raw or gzipped) holds, from its size alone."""
    size = limits.decoded_size(path, limits.MAX_FILE_BYTES)
    if size > limits.MAX_FILE_BYTES:
        raise ValueError(f'{path}: holds more than {limits.limit_text("MAX_FILE_BYTES")} '
                         f'(decompressed); not a CIFAR-10 batch')
    if size == 0 or size % _CIFAR_RECORD:
        raise ValueError(f'{path}: size {size} is not a positive multiple of the '
                         f'{_CIFAR_RECORD}-byte CIFAR-10 record (truncated, or not the '
                         f'binary version?)')
    return size // _CIFAR_RECORD


def _read_cifar(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    with limits.open_decoded(path) as f:
        rec = limits.read_exactly(f, n * _CIFAR_RECORD, path).reshape(n, _CIFAR_RECORD)
    labels = rec[:, 0]
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f'{path}: record {bad} has label {labels[bad]}, expected 0..9 (is '
                         f'this CIFAR-100, whose records start with two label bytes?)')
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def read_cifar_binary(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (1024 red,
    then green, then blue, rows top to bottom). The size is checked (against the record
    length and `limits.MAX_FILE_BYTES`) before anything is kept in memory.

    Returns:
        (images <uint8>[n, 32, 32, 3], labels <uint8>[n]).
    """
    path = Path(path)
    return _read_cifar(path, _cifar_records(path))


@register('cifar10')
def load_cifar10(*, path=None, download: bool = False, expected_records: int | None = None
                 ) -> Dataset:
    """CIFAR-10, binary version only (Krizhevsky 2009); the pickled version is never read.

    Source: www.cs.toronto.edu/~kriz/cifar.html (cifar-10-binary.tar.gz). License: no
    explicit license; the authors ask that the tech report be cited.

    Args:
        path: a directory holding data_batch_1.bin .. data_batch_5.bin and test_batch.bin,
            either directly or under cifar-10-batches-bin/ (default: cache). A
            cifar-10-binary.tar.gz found there is extracted safely first.
        download: fetch and extract the archive into the cache (SHA-256 checked).
        expected_records: if given, each batch must hold exactly this many records (10000
            for the real files).

    Returns:
        Dataset with x <f32>[n, 32, 32, 3] in [0, 1], y <int32>[n]; meta 'classes'.
    """
    check_bool(download, 'download', 'load_cifar10')
    expected_records = optional_int(expected_records, 'expected_records', 'load_cifar10')
    directory = dl.dataset_dir('cifar10', path)
    files = [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']
    if path is not None and not directory.exists():
        raise no_such_path('cifar10', directory, 'a directory holding cifar-10-binary.tar.gz '
                            'or the extracted batches')

    def batch_dir():
        for d in (directory / 'cifar-10-batches-bin', directory):
            if all((d / f).is_file() for f in files):
                return d
        return None

    d = batch_dir()
    if d is None and (directory / 'cifar-10-binary.tar.gz').is_file():
        dl.safe_extract(directory / 'cifar-10-binary.tar.gz', directory)
        d = batch_dir()
    if d is None and download and path is None:
        dl.fetch('cifar10', directory)
        d = batch_dir()
    if d is None:
        raise dl.missing_error('cifar10', directory,
                               ['cifar-10-binary.tar.gz (or the extracted cifar-10-batches-bin/'
                                ' with ' + ', '.join(files) + ')'])
    counts = [_cifar_records(d / f) for f in files]     # all sizes before any data
    for f, n in zip(files, counts, strict=True):
        if expected_records is not None and n != expected_records:
            raise ValueError(f'load_cifar10: {d / f} holds {n} records, expected '
                             f'{expected_records}')
    limits.check_array_bytes('load_cifar10', 'x_train (float32)', (sum(counts[:5]), 32, 32, 3))
    parts = [_read_cifar(d / f, n) for f, n in zip(files, counts, strict=True)]
    x = np.concatenate([p[0] for p in parts[:5]]).astype(np.float32) / 255.0
    y = np.concatenate([p[1] for p in parts[:5]]).astype(np.int32)
    classes = CIFAR10_CLASSES
    meta_txt = d / 'batches.meta.txt'
    if meta_txt.is_file():
        names = [s.strip() for s in read_text(meta_txt, 'utf-8', empty_ok=True).splitlines()
                 if s.strip()]
        if len(names) == 10:
            classes = names
    meta = make_meta('cifar10', 'classification',
                     'CIFAR-10 binary version (Krizhevsky, "Learning Multiple Layers of '
                     'Features from Tiny Images", 2009)', 'no explicit license; cite the '
                     'tech report', n_classes=10, input_shape=(32, 32, 3), classes=classes)
    return Dataset(x, y, parts[5][0].astype(np.float32) / 255.0, parts[5][1].astype(np.int32),
                   meta=meta)
