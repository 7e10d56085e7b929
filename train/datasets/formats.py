"""Loaders for the real datasets' published file formats.

Each reads from a user-given `path` or the dataset's cache folder (`download.dataset_dir`),
validates the bytes before trusting them (magic numbers, sizes, record counts, columns) and
raises a `ValueError` naming the file and the problem. Missing files give one
`MissingDataError` saying which files to put where; `download=True` fetches them first.
Nothing is ever unpickled.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime
import io
import math
import re
import struct
import unicodedata
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import download as dl
from . import limits
from .core import Dataset, check_bool, fraction, make_meta, positive_int, register
from .preprocessing import one_hot, standardize, train_val_split
from .vocab import WORD_SPECIALS, CharVocab, WordVocab

# --------------------------------------------------------------------------- helpers


def _find_all(directory: Path, groups, name: str, download: bool, path_given: bool):
    """For each group of alternative file names (relative to `directory`), the first that
    exists; fetches the dataset first when allowed, and otherwise reports every missing file
    in one error."""
    def look():
        return [next((directory / c for c in g if (directory / c).is_file()), None)
                for g in groups]

    if path_given and not directory.exists():
        raise _no_such_path(name, directory, f'a directory holding '
                            f'{", ".join(g[0] for g in groups)}')
    found = look()
    if None in found and download and not path_given:
        dl.fetch(name, directory)
        found = look()
    missing = [' or '.join(g) for g, f in zip(groups, found, strict=True) if f is None]
    if missing:
        raise dl.missing_error(name, directory, missing)
    return found


def _no_such_path(name: str, path: Path, expected: str) -> dl.MissingDataError:
    """The error for a `path` option naming nothing on disk."""
    return dl.MissingDataError(f'{name}: {path} does not exist (expected {expected})')


def _given_file(name: str, path, expected: str) -> Path | None:
    """`path` if it names an existing file; None for no path or a directory (look inside);
    a MissingDataError if it names nothing."""
    if path is None:
        return None
    path = dl.dataset_dir(name, path)
    if path.is_file():
        return path
    if not path.exists():
        raise _no_such_path(name, path, expected)
    return None


def _find(directory: Path, candidates, name: str, download: bool, path_given: bool):
    """The first existing file among `candidates` (see `_find_all`)."""
    return _find_all(directory, [candidates], name, download, path_given)[0]


def _optional_int(value, what: str, fn: str, minimum: int = 1) -> int | None:
    return None if value is None else positive_int(value, what, fn, minimum)


def _text_encoding(encoding, fn: str) -> str:
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


def _read_text(path: Path, encoding: str, kind: str = 'text', empty_ok: bool = False) -> str:
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


# --------------------------------------------------------------------------- IDX (MNIST)

_IDX_DTYPES = {0x08: np.dtype('u1'), 0x09: np.dtype('i1'), 0x0B: np.dtype('>i2'),
               0x0C: np.dtype('>i4'), 0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def _idx_header(stream, source, ndim: int | None):
    """(dtype, dims, header length) from the start of an IDX stream; nothing more is read."""
    head = stream.read(4)
    if len(head) < 4:
        raise ValueError(f'{source}: truncated IDX file ({len(head)} bytes, no header)')
    if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise ValueError(f'{source}: wrong magic number 0x{head.hex()} (expected '
                         f'0x0000 then a type byte 08/09/0b/0c/0d/0e and the rank)')
    dtype, rank = _IDX_DTYPES[head[2]], head[3]
    if ndim is not None and rank != ndim:
        raise ValueError(f'{source}: expected an IDX file of rank {ndim} (magic '
                         f'0x{0x800 + ndim:08x}), got rank {rank} (magic 0x{head.hex()})')
    raw = stream.read(4 * rank)
    if len(raw) < 4 * rank:
        raise ValueError(f'{source}: truncated IDX header ({4 + len(raw)} of {4 + 4 * rank} '
                         f'bytes)')
    return dtype, struct.unpack(f'>{rank}I', raw), 4 + 4 * rank


def _idx_data_bytes(dims, dtype) -> int:
    return math.prod(dims) * dtype.itemsize   # Python ints: 2**96 cannot wrap around


def _check_idx_length(source, dims, dtype, have: int, exact: bool = True) -> None:
    """The bytes after the header (`have`; for gzip data, need + 1 stands for 'more') must be
    exactly what the header's dims declare."""
    need = _idx_data_bytes(dims, dtype)
    if have < need:
        raise ValueError(f'{source}: truncated: header says dims {dims} of {dtype.itemsize}-byte '
                         f'values ({need} bytes of data) but only {have} bytes follow')
    if have > need:
        extra = f'{have - need} unexpected bytes' if exact else 'unexpected bytes'
        raise ValueError(f'{source}: {extra} after the {dims} array the header declares '
                         f'(record count disagrees with the header?)')


def parse_idx(data: bytes, *, source='IDX data', ndim: int | None = None) -> np.ndarray:
    """Parse IDX bytes (LeCun's MNIST format): magic = 0x0000, a type byte, the number of
    dimensions; then each dimension as a big-endian uint32; then the values.

    Raises:
        ValueError: wrong magic, unknown type, unexpected number of dimensions, truncated
            header or data, or trailing bytes.
    """
    dtype, dims, header = _idx_header(io.BytesIO(data), source, ndim)
    _check_idx_length(source, dims, dtype, len(data) - header)
    return np.frombuffer(data, dtype=dtype, count=math.prod(dims),
                         offset=header).reshape(dims)


def _idx_info(path: Path, ndim: int | None, uint8: bool = False):
    """(dtype, dims, header length) of an IDX file, raw or gzipped, after checking that the
    data is exactly what the header declares and within MAX_FILE_BYTES, reading no more
    than that (a gzip stream is decompressed without being kept)."""
    with limits.open_decoded(path) as f:
        dtype, dims, header = _idx_header(f, path, ndim)
    if uint8 and dtype != np.uint8:
        type_byte = {v: k for k, v in _IDX_DTYPES.items()}[dtype]
        raise ValueError(f'{path}: expected an IDX file of unsigned bytes (type byte 0x08), '
                         f'got {dtype.name} values (type byte 0x{type_byte:02x})')
    need = _idx_data_bytes(dims, dtype)
    gz = limits.is_gzip(path)
    if not gz:      # the size on disk is exact and free to know
        _check_idx_length(path, dims, dtype, path.stat().st_size - header)
    limits.check_file_bytes(path, need, 'MAX_FILE_BYTES', f'header declares dims {dims}:')
    if gz:
        have = limits.decoded_size(path, header + need) - header
        _check_idx_length(path, dims, dtype, have, exact=False)
    return dtype, dims, header


def _idx_data(path: Path, dtype, dims, header: int) -> np.ndarray:
    with limits.open_decoded(path) as f:
        f.read(header)
        buf = limits.read_exactly(f, _idx_data_bytes(dims, dtype), path)
    return buf.view(dtype).reshape(dims)


def read_idx(path, *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file, raw or gzipped (see `parse_idx`); sizes are checked against the file
    (and `limits.MAX_FILE_BYTES`) before the data is read."""
    path = Path(path)
    return _idx_data(path, *_idx_info(path, ndim))


_IDX_FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
              'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}
FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                   'Sneaker', 'Bag', 'Ankle boot']


def _idx_candidates(stem):
    dotted = stem.replace('-idx', '.idx')  # the name some unzip tools produce
    return [stem + '.gz', stem, dotted + '.gz', dotted]


def _load_idx_dataset(name, path, download, classes, source, license):
    fn = f'load_{name}'
    check_bool(download, 'download', fn)
    directory = dl.dataset_dir(name, path)
    groups = [_idx_candidates(stem) for pair in _IDX_FILES.values() for stem in pair]
    found = _find_all(directory, groups, name, download, path is not None)
    # every header and size first, so nothing is read before all four files agree
    infos = [_idx_info(p, rank, uint8=True) for p, rank in zip(found, (3, 1, 3, 1),
                                                                 strict=True)]
    for k in range(2):
        (img_path, lab_path), (img, lab) = found[2 * k:2 * k + 2], infos[2 * k:2 * k + 2]
        n, shape = img[1][0], img[1][1:]
        if n == 0:
            raise ValueError(f'{fn}: {img_path} holds no images (its header declares 0 '
                             f'records); each split needs at least one')
        if 0 in shape:
            raise ValueError(f'{fn}: {img_path} declares images of {shape[0]}x{shape[1]} '
                             f'pixels, which hold no values')
        if n != lab[1][0]:
            raise ValueError(f'{fn}: record count mismatch: {img_path.name} has '
                             f'{n} images but {lab_path.name} has {lab[1][0]} labels')
        limits.check_array_bytes(fn, f'the float32 images of {img_path}', (*img[1], 1))
    splits = {}
    for k, split in enumerate(_IDX_FILES):
        img_path, lab_path = found[2 * k], found[2 * k + 1]
        images = _idx_data(img_path, *infos[2 * k])
        labels = _idx_data(lab_path, *infos[2 * k + 1])
        if labels.max() >= 10:
            raise ValueError(f'{fn}: {lab_path} has label {labels.max()}, expected 0..9')
        splits[split] = ((images.astype(np.float32) / 255.0)[..., None],
                         labels.astype(np.int32))
    x, y = splits['train']
    meta = make_meta(name, 'classification', source, license, n_classes=10,
                     input_shape=tuple(x.shape[1:]), classes=classes, directory=str(directory))
    return Dataset(x, y, *splits['test'], meta=meta)


@register('mnist')
def load_mnist(*, path=None, download: bool = False) -> Dataset:
    """MNIST handwritten digits from the four IDX files (raw or .gz).

    Source: LeCun, Cortes & Burges, yann.lecun.com/exdb/mnist (mirror
    storage.googleapis.com/cvdf-datasets/mnist). License: CC BY-SA 3.0 (as stated by the
    dataset's maintainers).

    Args:
        path: directory holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
            t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (default: cache).
        download: fetch missing files into the cache (SHA-256 checked).

    Returns:
        Dataset with x <f32>[n, 28, 28, 1] in [0, 1] and y <int32>[n].
    """
    return _load_idx_dataset('mnist', path, download, [str(i) for i in range(10)],
                             'MNIST (LeCun, Cortes & Burges), IDX files', 'CC BY-SA 3.0')


@register('fashion_mnist')
def load_fashion_mnist(*, path=None, download: bool = False) -> Dataset:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), same IDX layout as MNIST.

    Source: github.com/zalandoresearch/fashion-mnist. License: MIT.

    Returns:
        Dataset with x <f32>[n, 28, 28, 1] in [0, 1], y <int32>[n]; meta 'classes'.
    """
    return _load_idx_dataset('fashion_mnist', path, download, FASHION_CLASSES,
                             'Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), IDX files', 'MIT')


# --------------------------------------------------------------------------- CIFAR-10

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
    expected_records = _optional_int(expected_records, 'expected_records', 'load_cifar10')
    directory = dl.dataset_dir('cifar10', path)
    files = [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']
    if path is not None and not directory.exists():
        raise _no_such_path('cifar10', directory, 'a directory holding cifar-10-binary.tar.gz '
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
        names = [s.strip() for s in _read_text(meta_txt, 'utf-8', empty_ok=True).splitlines()
                 if s.strip()]
        if len(names) == 10:
            classes = names
    meta = make_meta('cifar10', 'classification',
                     'CIFAR-10 binary version (Krizhevsky, "Learning Multiple Layers of '
                     'Features from Tiny Images", 2009)', 'no explicit license; cite the '
                     'tech report', n_classes=10, input_shape=(32, 32, 3), classes=classes)
    return Dataset(x, y, parts[5][0].astype(np.float32) / 255.0, parts[5][1].astype(np.int32),
                   meta=meta)


# --------------------------------------------------------------------------- bike sharing

BIKE_COLUMNS = ['instant', 'dteday', 'season', 'yr', 'mnth', 'hr', 'holiday', 'weekday',
                'workingday', 'weathersit', 'temp', 'atemp', 'hum', 'windspeed', 'casual',
                'registered', 'cnt']
# one-hot columns and their category values (fixed, so the layout never depends on the data)
BIKE_DUMMIES = {'season': range(1, 5), 'weathersit': range(1, 5), 'mnth': range(1, 13),
                'hr': range(24), 'weekday': range(7)}
# columns of whole numbers (category codes and flags); a fraction there is a damaged file
BIKE_INTEGER = ('yr', 'holiday', 'workingday', *BIKE_DUMMIES)
BIKE_DROP = ('instant', 'dteday', 'atemp', 'workingday')
BIKE_STANDARDIZE = ('casual', 'registered', 'cnt', 'temp', 'hum', 'windspeed')
BIKE_TARGETS = ('cnt', 'casual', 'registered')


def read_bike_csv(path) -> dict[str, np.ndarray]:
    """Read UCI bike-sharing `hour.csv` into columns (dteday as str, the rest float64).

    The file is UTF-8 (a byte-order mark is allowed) of at most `limits.MAX_TEXT_BYTES`.

    Raises:
        ValueError: naming the file (and line) for a file too large or not UTF-8, malformed
            CSV (e.g. a field over csv's 128 KiB limit), an empty file, missing columns, a
            short row, a non-numeric, non-finite (nan, inf) or beyond float32's range or, in a
            category column (`BIKE_INTEGER`), non-integer value, a category out of range, or
            a bad date.
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(_read_text(path, 'utf-8', 'CSV'), newline=''))
    try:
        cols, lines = _bike_columns(path, reader)
    except csv.Error as e:
        raise ValueError(f'{path}:{reader.line_num}: malformed CSV ({e})') from None
    out = {'dteday': np.array(cols['dteday'])}
    for c in BIKE_COLUMNS:
        if c != 'dteday':
            out[c] = _bike_numbers(path, c, cols[c], lines)
    for d in np.unique(out['dteday']):
        try:
            datetime.date.fromisoformat(str(d))
        except ValueError:
            raise ValueError(f'{path}: dteday {str(d)!r} is not a YYYY-MM-DD date') from None
    for c, values in BIKE_DUMMIES.items():
        bad = np.flatnonzero(~np.isin(out[c], list(values)))
        if bad.size:
            outside = sorted({int(v) for v in out[c][bad]})   # whole and finite by now
            raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has values {outside} '
                             f'outside {list(values)} (first at this line)')
    return out


def _bike_columns(path: Path, reader) -> tuple[dict[str, list[str]], list[int]]:
    """The BIKE_COLUMNS fields of every row as strings, and each row's file line."""
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f'{path}: empty CSV file') from None
    header = [h.strip() for h in header]
    missing = [c for c in BIKE_COLUMNS if c not in header]
    if missing:
        raise ValueError(f'{path}: CSV is missing column(s) {missing}; expected the UCI '
                         f'hour.csv columns {BIKE_COLUMNS}')
    idx = {c: header.index(c) for c in BIKE_COLUMNS}
    cols = {c: [] for c in BIKE_COLUMNS}
    lines = []      # the file line of each row, for messages
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f'{path}:{reader.line_num}: {len(row)} fields, header has '
                             f'{len(header)}')
        lines.append(reader.line_num)
        for c, i in idx.items():
            cols[c].append(row[i].strip())
    if not cols['cnt']:
        raise ValueError(f'{path}: CSV has a header but no rows')
    return cols, lines


_F32_MAX = float(np.finfo(np.float32).max)


def _bike_numbers(path: Path, c: str, values: list[str], lines: list[int]) -> np.ndarray:
    """Column `c` as float64 after checking every value: numeric, finite, representable in
    float32 (the arrays the loader returns) and, for category columns, whole."""
    try:
        out = np.array(values, dtype=np.float64)
    except ValueError:
        bad = next(i for i, v in enumerate(values) if not _is_float(v))
        raise ValueError(f'{path}:{lines[bad]}: column {c!r} has non-numeric value '
                         f'{values[bad]!r}') from None
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has non-finite value '
                         f'{values[bad[0]]!r}')
    bad = np.flatnonzero(np.abs(out) > _F32_MAX)
    if bad.size:
        raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has value {values[bad[0]]!r}, '
                         f'beyond the float32 range (magnitude at most {_F32_MAX:.8g})')
    if c in BIKE_INTEGER:
        bad = np.flatnonzero(out != np.round(out))
        if bad.size:
            raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has non-integer '
                             f'value {values[bad[0]]!r} (expected a whole-number code)')
    return out


def _is_float(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


@register('bike_sharing')
def load_bike_sharing(*, path=None, download: bool = False, targets=('cnt',),
                      test_days: int = 21, val_days: int = 60) -> Dataset:
    """UCI bike sharing, hourly (Fanaee-T & Gama 2013), with the preprocessing of the notes'
    first project (seed 001): one-hot season, weathersit, mnth, hr, weekday; drop instant,
    dteday, atemp, workingday; standardize casual, registered, cnt, temp, hum, windspeed;
    targets removed from the features; the last `test_days` days are the test split and the
    `val_days` days before them the validation split.

    Unlike the original project (which standardized with statistics of the whole file), the
    scalers are fitted on the training days only; `meta['scalers'][column]` undoes them, e.g.
    `meta['scalers']['cnt'].inverse_transform(pred[:, None])[:, 0]` gives rides per hour.

    Source: archive.ics.uci.edu/dataset/275/bike+sharing+dataset (hour.csv). License:
    CC BY 4.0.

    Args:
        path: hour.csv itself or a directory containing it (default: cache).
        targets: target columns (any of 'cnt', 'casual', 'registered').

    Returns:
        Dataset with x <f32>[n, 56] (yr, holiday, temp, hum, windspeed, then the one-hot
        blocks; names in meta['feature_names']) and y <f32>[n] (one target) or
        <f32>[n, len(targets)]; x_val/y_val set.
    """
    fn = 'load_bike_sharing'
    check_bool(download, 'download', fn)
    if not isinstance(targets, (str, list, tuple)):
        raise TypeError(f'{fn}: targets must be a column name or a list of them, got '
                        f'{type(targets).__name__} {targets!r}')
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets or any(t not in BIKE_TARGETS for t in targets):
        raise ValueError(f'{fn}: targets must be among {BIKE_TARGETS}, got {targets}')
    test_days = positive_int(test_days, 'test_days', fn)
    val_days = positive_int(val_days, 'val_days', fn)
    csv_path = _given_file('bike_sharing', path, 'hour.csv or a directory holding it')
    if csv_path is None:
        directory = dl.dataset_dir('bike_sharing', path)
        csv_path = _find(directory, ['hour.csv', 'Bike-Sharing-Dataset/hour.csv'],
                         'bike_sharing', download, path is not None)
    cols = read_bike_csv(csv_path)
    days = np.unique(cols['dteday'])  # ISO dates sort chronologically
    if len(days) <= test_days + val_days:
        raise ValueError(f'load_bike_sharing: {csv_path} covers {len(days)} days; need more '
                         f'than test_days + val_days = {test_days + val_days}')
    test_set, val_set = set(days[-test_days:]), set(days[-test_days - val_days:-test_days])
    split = np.array([2 if d in test_set else 1 if d in val_set else 0
                      for d in cols['dteday']])
    train = split == 0
    scalers = {c: standardize(cols[c][train][:, None]) for c in BIKE_STANDARDIZE}
    scaled = {c: scalers[c].transform(cols[c][:, None])[:, 0] if c in scalers else cols[c]
              for c in BIKE_COLUMNS if c != 'dteday'}
    names, blocks = [], []
    for c in ('yr', 'holiday', 'temp', 'hum', 'windspeed'):
        names.append(c)
        blocks.append(scaled[c][:, None])
    for c, values in BIKE_DUMMIES.items():
        values = list(values)
        codes = np.searchsorted(values, cols[c].astype(int))
        blocks.append(one_hot(codes, len(values)))
        names += [f'{c}_{v}' for v in values]
    x = np.concatenate(blocks, axis=1).astype(np.float32)
    y = np.stack([scaled[t] for t in targets], axis=1).astype(np.float32)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f'{fn}: {csv_path} has values too far apart to standardize in '
                         f'float32 (the scaled features or targets overflow)')
    if len(targets) == 1:
        y = y[:, 0]
    pick = lambda a, k: a[split == k]
    meta = make_meta('bike_sharing', 'regression',
                     'UCI Bike Sharing Dataset, hour.csv (Fanaee-T & Gama 2013)', 'CC BY 4.0',
                     input_shape=(x.shape[1],), feature_names=names, targets=targets,
                     scalers={c: scalers[c] for c in BIKE_STANDARDIZE},
                     dteday_train=pick(cols['dteday'], 0), dteday_val=pick(cols['dteday'], 1),
                     dteday_test=pick(cols['dteday'], 2))
    return Dataset(pick(x, 0), pick(y, 0), pick(x, 2), pick(y, 2), pick(x, 1), pick(y, 1),
                   meta=meta)


# --------------------------------------------------------------------------- plain text


@register('text')
def load_text(*, path=None, download: bool = False, test_fraction: float = 0.1,
              encoding: str = 'utf-8') -> Dataset:
    """A plain-text corpus as character ids (default: Tiny Shakespeare, Karpathy's char-rnn
    input.txt; the text is Shakespeare, public domain; the file is distributed with char-rnn,
    MIT).

    Args:
        path: the text file (default: cache/tiny_shakespeare/input.txt), at most
            `limits.MAX_TEXT_BYTES`.
        test_fraction: the last part of the text held out as test.
        encoding: the file's text encoding (a UTF-8 byte-order mark is dropped).

    Returns:
        Dataset with x_train/x_test <int32>[n_chars] and y None; meta 'vocab' (every character
        of the whole file, so the test text has no unknowns), 'text_train', 'text_test'.
    """
    check_bool(download, 'download', 'load_text')
    test_fraction = fraction(test_fraction, 'test_fraction', 'load_text')
    encoding = _text_encoding(encoding, 'load_text')
    file = _given_file('text', path, 'a text file, or a directory holding input.txt')
    if file is None:
        file = _find(dl.dataset_dir('text', path), ['input.txt'], 'text', download,
                     path is not None)
    text = _read_text(file, encoding)
    cut = len(text) - max(1, int(round(test_fraction * len(text))))
    if cut < 1:
        raise ValueError(f'load_text: {file} has {len(text)} character(s); with '
                         f'test_fraction={test_fraction} no training text is left (need at '
                         f'least one character for each split)')
    vocab = CharVocab(text)
    meta = make_meta('text', 'text', f'plain text file {file.name}',
                     'that of the text (Tiny Shakespeare: public domain text, char-rnn MIT)',
                     vocab=vocab, n_classes=len(vocab), text_train=text[:cut],
                     text_test=text[cut:], file=str(file))
    return Dataset(vocab.encode(text[:cut]), None, vocab.encode(text[cut:]), None, meta=meta)


# --------------------------------------------------------------------------- parallel corpus


def normalize_sentence(s: str) -> str:
    """Lower-case, strip accents' combining marks to ASCII letters, put spaces around
    . ! ? and drop other non-letters (the normalization of the PyTorch seq2seq tutorial)."""
    s = ''.join(c for c in unicodedata.normalize('NFD', s.lower().strip())
                if unicodedata.category(c) != 'Mn')
    s = re.sub(r'([.!?])', r' \1', s)
    s = re.sub(r"[^a-z.!?']+", ' ', s)
    return ' '.join(s.split())


def read_parallel(path, *, encoding='utf-8') -> list[tuple[str, str]]:
    """Sentence pairs from a tab-separated file ('source<TAB>target[<TAB>attribution]')."""
    path = Path(path)
    pairs = []
    text = _read_text(path, _text_encoding(encoding, 'read_parallel'))
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split('\t')
        if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f'{path}:{lineno}: expected "source<TAB>target", got {line[:60]!r}')
        pairs.append((parts[0], parts[1]))
    return pairs


@register('parallel')
def load_parallel(*, path=None, download: bool = False, reverse: bool = False,
                  max_length: int | None = 10, normalize: bool = True, min_count: int = 1,
                  test_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """A tab-separated parallel corpus (Tatoeba via manythings.org/anki, e.g. eng-fra.txt)
    as word ids for translation.

    Source: Tatoeba sentences (tatoeba.org) as packaged by manythings.org/anki. License:
    CC BY 2.0 FR (attribution in the file's third column).

    Args:
        path: the .txt file or a directory with eng-fra.txt, data/eng-fra.txt (the PyTorch
            tutorial's data.zip) or fra.txt (manythings.org/anki) (default: cache).
        reverse: translate column 2 -> column 1 instead of 1 -> 2.
        max_length: keep pairs whose sides have at most this many tokens (None: all).
        normalize: apply `normalize_sentence`.
        min_count: rarer words map to '<unk>'. Vocabularies come from the training pairs.

    Returns:
        Dataset with x <int32>[n, S] source ids + '<eos>' and y <int32>[n, T] '<bos>' target
        ids '<eos>', both padded with '<pad>' = 0; meta 'source_vocab', 'target_vocab',
        'vocab' (= source), 'source_text_*', 'target_text_*'.
    """
    fn = 'load_parallel'
    for what, flag in (('download', download), ('reverse', reverse), ('normalize', normalize)):
        check_bool(flag, what, fn)
    max_length = _optional_int(max_length, 'max_length', fn)
    min_count = positive_int(min_count, 'min_count', fn)
    file = _given_file('parallel', path, 'a tab-separated .txt file, or a directory holding '
                       'eng-fra.txt or fra.txt')
    if file is None:
        file = _find(dl.dataset_dir('parallel', path),
                     ['eng-fra.txt', 'data/eng-fra.txt', 'fra.txt'],
                     'parallel', download, path is not None)
    pairs = read_parallel(file)
    if reverse:
        pairs = [(b, a) for a, b in pairs]
    if normalize:
        pairs = [(normalize_sentence(a), normalize_sentence(b)) for a, b in pairs]
    if max_length is not None:
        pairs = [(a, b) for a, b in pairs
                 if 0 < len(a.split()) <= max_length and 0 < len(b.split()) <= max_length]
    if len(pairs) < 2:
        raise ValueError(f'load_parallel: {file} has {len(pairs)} usable pairs after '
                         f'filtering (max_length={max_length}); need at least 2')
    idx = np.arange(len(pairs))
    tr, _, te, _ = train_val_split(idx, validation=test_fraction, seed=seed)
    src_vocab = WordVocab([pairs[i][0] for i in tr], min_count=min_count)
    tgt_vocab = WordVocab([pairs[i][1] for i in tr], min_count=min_count)
    longest_src = max(len(a.split()) for a, _ in pairs) + 1
    longest_tgt = max(len(b.split()) for _, b in pairs) + 2
    for xy, longest in (('x', longest_src), ('y', longest_tgt)):
        limits.check_array_bytes(fn, f'{xy} (the ids of {file} padded to its longest sentence; '
                                 f'max_length shortens it)', (len(pairs), longest))

    def encode(ids):
        x = src_vocab.encode_batch([pairs[i][0] for i in ids], longest_src, add_eos=True)
        y = tgt_vocab.encode_batch([pairs[i][1] for i in ids], longest_tgt, add_bos=True,
                                   add_eos=True)
        return x, y

    meta = make_meta('parallel', 'translation', f'tab-separated parallel corpus {file.name}',
                     'CC BY 2.0 FR (Tatoeba)', vocab=src_vocab, source_vocab=src_vocab,
                     target_vocab=tgt_vocab,
                     source_text_train=[pairs[i][0] for i in tr],
                     target_text_train=[pairs[i][1] for i in tr],
                     source_text_test=[pairs[i][0] for i in te],
                     target_text_test=[pairs[i][1] for i in te])
    return Dataset(*encode(tr), *encode(te), meta=meta)


# --------------------------------------------------------------------------- text8


_NOT_TEXT8 = re.compile(rb'[^a-z ]')
_TEXT8_CHUNK = 1 << 20


@contextlib.contextmanager
def _text8_stream(path: Path, whole: bool):
    """A binary stream of the corpus: the `text8` member of a zip, or the file itself. A
    whole read (no max_tokens) must declare at most MAX_TEXT_BYTES."""
    def check_whole(size, what):
        if whole and size > limits.MAX_TEXT_BYTES:
            raise ValueError(f'{path}: {what} {limits.nbytes(size)}, more than '
                             f'{limits.limit_text("MAX_TEXT_BYTES")} for a whole read; pass '
                             f'max_tokens to read only the first words')

    if not zipfile.is_zipfile(path):
        check_whole(path.stat().st_size, 'has')
        try:
            with open(path, 'rb') as f:
                yield f
        except OSError as e:
            raise ValueError(f'{path}: cannot read the file ({e.strerror or e})') from e
        return
    try:
        with zipfile.ZipFile(path) as zf:
            if 'text8' not in zf.namelist():
                raise ValueError(f'{path}: zip has no member named text8 '
                                 f'(members: {zf.namelist()[:5]})')
            info = zf.getinfo('text8')
            dl.check_zip_member(info, path, path.stat().st_size)
            check_whole(info.file_size, 'member text8 declares')
            with zf.open(info) as f:
                yield f
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            OSError) as e:
        raise ValueError(f'{path}: damaged or truncated zip archive '
                         f'({type(e).__name__}: {e})') from e


def read_text8(path, *, max_tokens: int | None = None) -> list[str]:
    """The words of the text8 corpus (one line of lower-case words), from `text8` or
    `text8.zip`, read in 1 MiB chunks: with `max_tokens`, only as far as the first that many
    words (however large the file); without, the file may hold at most
    `limits.MAX_TEXT_BYTES`.

    Raises:
        ValueError: naming the file: damaged zip, no text8 member, encrypted or implausible
            member, too large, empty, a byte other than a-z and space, or a 'word' over 1 MiB.
    """
    path = Path(path)
    words: list[str] = []
    carry, offset = '', 0     # carry: a word cut by the chunk boundary
    with _text8_stream(path, max_tokens is None) as f:
        while max_tokens is None or len(words) < max_tokens:
            chunk = f.read(_TEXT8_CHUNK)
            if not chunk:
                break
            bad = _NOT_TEXT8.search(chunk)
            if bad:
                raise ValueError(f'{path}: not text8: byte {chunk[bad.start():bad.start() + 1]!r} '
                                 f'at offset {offset + bad.start()} (text8 has only a-z and '
                                 f'spaces)')
            offset += len(chunk)
            text = carry + chunk.decode('ascii')
            cut = text.rfind(' ') + 1
            words.extend(text[:cut].split())
            carry = text[cut:]
            if len(carry) > _TEXT8_CHUNK:
                raise ValueError(f'{path}: not text8: a word longer than {_TEXT8_CHUNK} bytes '
                                 f'ends at offset {offset}')
    if offset == 0:
        raise ValueError(f'{path}: empty text8 file')
    if carry:
        words.append(carry)
    return words if max_tokens is None else words[:max_tokens]


@register('text8')
def load_text8(*, path=None, download: bool = False, max_tokens: int | None = None,
               vocab_size: int | None = 50_000, min_count: int = 1,
               test_fraction: float = 0.05) -> Dataset:
    """text8: the first 10^8 bytes of an English Wikipedia dump, cleaned to a-z and spaces
    (Mahoney, mattmahoney.net/dc/textdata.html), as word ids for word2vec.

    License: Wikipedia text, CC BY-SA.

    Args:
        path: `text8` or `text8.zip`, or a directory with either (default: cache).
        max_tokens: use only the first this many words (the file is read only that far);
            None reads it whole, up to `limits.MAX_TEXT_BYTES`.
        vocab_size: keep the most frequent words (specials included); others map to '<unk>'.

    Returns:
        Dataset with x_train/x_test <int32>[n_words] and y None; meta 'vocab' (from the
        training words).
    """
    fn = 'load_text8'
    check_bool(download, 'download', fn)
    max_tokens = _optional_int(max_tokens, 'max_tokens', fn, minimum=2)
    vocab_size = _optional_int(vocab_size, 'vocab_size', fn, minimum=len(WORD_SPECIALS) + 1)
    min_count = positive_int(min_count, 'min_count', fn)
    test_fraction = fraction(test_fraction, 'test_fraction', fn)
    file = _given_file('text8', path, 'text8 or text8.zip, or a directory holding one')
    if file is None:
        file = _find(dl.dataset_dir('text8', path), ['text8', 'text8.zip'], 'text8', download,
                     path is not None)
    words = read_text8(file, max_tokens=max_tokens)
    if len(words) < 2:
        raise ValueError(f'{fn}: {file} has {len(words)} word(s); need at least 2 (one for '
                         f'training, one for testing)')
    cut = len(words) - max(1, int(round(test_fraction * len(words))))
    if cut < 1:
        raise ValueError(f'{fn}: test_fraction={test_fraction} leaves none of the '
                         f'{len(words)} words of {file} for training')
    vocab = WordVocab(words[:cut], min_count=min_count, max_size=vocab_size)
    meta = make_meta('text8', 'words', 'text8 (Mahoney), first 1e8 bytes of Wikipedia',
                     'CC BY-SA (Wikipedia text)', vocab=vocab, n_classes=len(vocab))
    return Dataset(vocab.encode(words[:cut]), None, vocab.encode(words[cut:]), None, meta=meta)


# --------------------------------------------------------------------------- image folder

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.ppm', '.pgm', '.tif', '.tiff',
                    '.webp')


def _image_size(size, fn: str) -> tuple[int, int]:
    """(height, width) from an int or a pair of ints, at most MAX_IMAGE_PIXELS."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)):
        size = (size, size)
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise TypeError(f'{fn}: size must be an int or a (height, width) pair, got '
                        f'{type(size).__name__} {size!r}')
    h, w = (positive_int(v, 'size', fn) for v in size)
    if h * w > limits.MAX_IMAGE_PIXELS:
        raise ValueError(f'{fn}: size {h}x{w} is {h * w} pixels an image, more than '
                         f'{limits.limit_text("MAX_IMAGE_PIXELS")}')
    return h, w


def _crop_box(crop, fn: str) -> tuple[int, int, int, int] | None:
    """None, or a non-empty (left, top, right, bottom) box of at most MAX_IMAGE_PIXELS."""
    if crop is None:
        return None
    if not isinstance(crop, (list, tuple)) or len(crop) != 4:
        raise TypeError(f'{fn}: crop must be None or a (left, top, right, bottom) box of 4 '
                        f'ints, got {type(crop).__name__} {crop!r}')
    left, top, right, bottom = (positive_int(v, 'crop', fn, minimum=0) for v in crop)
    if right <= left or bottom <= top:
        raise ValueError(f'{fn}: crop box {tuple(crop)} is empty (need left < right and '
                         f'top < bottom)')
    if (right - left) * (bottom - top) > limits.MAX_IMAGE_PIXELS:
        raise ValueError(f'{fn}: crop box {tuple(crop)} spans {(right - left) * (bottom - top)} '
                         f'pixels, more than {limits.limit_text("MAX_IMAGE_PIXELS")}')
    return left, top, right, bottom


# What Pillow raises for damaged files (UnidentifiedImageError is an OSError; some plugins
# raise ValueError, SyntaxError or struct.error on bad headers).
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error)


def _read_image(p: Path, mode: str, crop, h: int, w: int) -> np.ndarray:
    """One image as <f32>[h, w, channels] in [0, 1]; its declared size is checked against
    MAX_IMAGE_PIXELS from the header, before Pillow decodes it."""
    from PIL import Image
    with warnings.catch_warnings():
        # our own cap (below Pillow's warning threshold) decides, before decoding
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            im = Image.open(p)
        except Image.DecompressionBombError as e:
            raise ValueError(f'load_image_folder: image {p} has more pixels than '
                             f'{limits.limit_text("MAX_IMAGE_PIXELS")} ({e})') from None
        except _PIL_ERRORS as e:
            raise ValueError(f'load_image_folder: cannot read image {p}: {e}') from e
        with im:
            width, height = im.size
            if width * height > limits.MAX_IMAGE_PIXELS:
                raise ValueError(f'load_image_folder: image {p} declares {width}x{height} '
                                 f'pixels, more than {limits.limit_text("MAX_IMAGE_PIXELS")}')
            try:
                im = im.convert(mode)
                if crop is not None:
                    im = im.crop(crop)
                im = im.resize((w, h), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.float32) / 255.0
            except _PIL_ERRORS as e:
                raise ValueError(f'load_image_folder: cannot read image {p}: {e}') from e
    return arr.reshape(h, w, -1)


@register('image_folder')
def load_image_folder(*, path=None, size=(64, 64), mode: str = 'RGB', crop=None,
                      test_fraction: float = 0.0, seed: int = 0) -> Dataset:
    """A folder of images (e.g. face crops for the notes' face-generation project) read with
    Pillow, optionally cropped, resized and scaled to [0, 1].

    Either every image lies directly in `path` (one unlabelled class: all labels 0,
    meta['classes'] == ['']), or every image lies in a class sub-folder (at any depth below
    it) and gets the index of that sub-folder's name in sorted order (meta['classes']).
    Images next to class sub-folders are refused: they would have no class.

    Args:
        path: the folder (default: cache/image_folder).
        size: (height, width) after resizing (bilinear), or one int for both; at most
            `limits.MAX_IMAGE_PIXELS`, as is each image as stored.
        mode: 'RGB' (3 channels) or 'L' (grey, 1 channel).
        crop: None or a (left, top, right, bottom) box of non-negative ints applied before
            resizing (Pillow pads a box reaching past the image with black).
        test_fraction: share of images held out as test (seeded); 0 gives an empty test set.

    Returns:
        Dataset with x <f32>[n, height, width, channels] in [0, 1] and y <int32>[n].
    """
    fn = 'load_image_folder'
    if mode not in ('RGB', 'L'):
        raise ValueError(f"{fn}: mode must be 'RGB' or 'L', got {mode!r}")
    h, w = _image_size(size, fn)
    crop = _crop_box(crop, fn)
    directory = dl.dataset_dir('image_folder', path)
    if path is not None and not directory.exists():
        raise _no_such_path('image_folder', directory, 'a folder of images or of class '
                            'sub-folders of images')
    if not directory.is_dir():
        raise dl.missing_error('image_folder', directory, ['*.png / *.jpg images (or '
                                                           'class sub-folders of them)'])
    files = sorted(p for p in directory.rglob('*')
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise dl.missing_error('image_folder', directory, ['*.png / *.jpg images'])
    classes = sorted({p.relative_to(directory).parts[0] for p in files
                      if len(p.relative_to(directory).parts) > 1})
    loose = [p.name for p in files if len(p.relative_to(directory).parts) == 1]
    if classes and loose:
        raise ValueError(f'load_image_folder: {directory} has both class sub-folders '
                         f'({", ".join(classes[:5])}) and {len(loose)} image(s) directly in it '
                         f'({", ".join(loose[:3])}), which would have no class; move them '
                         f'into a class sub-folder or remove them')
    shape = (len(files), h, w, 3 if mode == 'RGB' else 1)
    limits.check_array_bytes(fn, f'x (the float32 images of {directory})', shape)
    x = np.empty(shape, np.float32)
    y = np.zeros(len(files), np.int32)
    for i, p in enumerate(files):
        x[i] = _read_image(p, mode, crop, h, w)
        parts = p.relative_to(directory).parts
        y[i] = classes.index(parts[0]) if len(parts) > 1 else 0
    meta = make_meta('image_folder', 'images', f'image folder {directory}',
                     'that of the images', n_classes=max(1, len(classes)),
                     input_shape=x.shape[1:], classes=classes or [''],
                     files=[str(p) for p in files])
    if test_fraction == 0:
        return Dataset(x, y, x[:0], y[:0], meta=meta)
    tr, _, te, _ = train_val_split(np.arange(len(files)), validation=test_fraction, seed=seed)
    meta['files'] = [str(files[i]) for i in tr]
    return Dataset(x[tr], y[tr], x[te], y[te], meta=meta)

