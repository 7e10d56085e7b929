"""Loaders for the real datasets' published file formats.

Each reads from a user-given `path` or the dataset's cache folder (`download.dataset_dir`),
validates the bytes before trusting them (magic numbers, sizes, record counts, columns) and
raises a `ValueError` naming the file and the problem. Missing files give one
`MissingDataError` saying which files to put where; `download=True` fetches them first.
Nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import math
import re
import unicodedata
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import download as dl
from .core import Dataset, make_meta, register
from .preprocessing import one_hot, standardize, train_val_split
from .vocab import CharVocab, WordVocab

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
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.exists():
        raise _no_such_path(name, path, expected)
    return None


def _find(directory: Path, candidates, name: str, download: bool, path_given: bool):
    """The first existing file among `candidates` (see `_find_all`)."""
    return _find_all(directory, [candidates], name, download, path_given)[0]


def _read_bytes(path: Path) -> bytes:
    """File contents, transparently gunzipped (by magic bytes, not by name)."""
    raw = path.read_bytes()
    if raw[:2] == b'\x1f\x8b':
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(f'{path}: damaged or truncated gzip data ({e})') from e
    return raw


# --------------------------------------------------------------------------- IDX (MNIST)

_IDX_DTYPES = {0x08: np.dtype('u1'), 0x09: np.dtype('i1'), 0x0B: np.dtype('>i2'),
               0x0C: np.dtype('>i4'), 0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def parse_idx(data: bytes, *, source='IDX data', ndim: int | None = None) -> np.ndarray:
    """Parse IDX bytes (LeCun's MNIST format): magic = 0x0000, a type byte, the number of
    dimensions; then each dimension as a big-endian uint32; then the values.

    Raises:
        ValueError: wrong magic, unknown type, unexpected number of dimensions, truncated
            header or data, or trailing bytes.
    """
    if len(data) < 4:
        raise ValueError(f'{source}: truncated IDX file ({len(data)} bytes, no header)')
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f'{source}: wrong magic number 0x{data[:4].hex()} (expected '
                         f'0x0000 then a type byte 08/09/0b/0c/0d/0e and the rank)')
    dtype, rank = _IDX_DTYPES[data[2]], data[3]
    if ndim is not None and rank != ndim:
        raise ValueError(f'{source}: expected an IDX file of rank {ndim} (magic '
                         f'0x{0x800 + ndim:08x}), got rank {rank} (magic 0x{data[:4].hex()})')
    header = 4 + 4 * rank
    if len(data) < header:
        raise ValueError(f'{source}: truncated IDX header ({len(data)} of {header} bytes)')
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(rank))
    need = math.prod(dims) * dtype.itemsize   # Python ints: 2**96 cannot wrap around
    have = len(data) - header
    if have < need:
        raise ValueError(f'{source}: truncated: header says dims {dims} of {dtype.itemsize}-byte '
                         f'values ({need} bytes of data) but only {have} bytes follow')
    if have > need:
        raise ValueError(f'{source}: {have - need} unexpected bytes after the {dims} array '
                         f'the header declares (record count disagrees with the header?)')
    return np.frombuffer(data, dtype=dtype, count=need // dtype.itemsize,
                         offset=header).reshape(dims)


def read_idx(path, *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file, raw or gzipped (see `parse_idx`)."""
    path = Path(path)
    return parse_idx(_read_bytes(path), source=str(path), ndim=ndim)


_IDX_FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
              'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}
FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                   'Sneaker', 'Bag', 'Ankle boot']


def _idx_candidates(stem):
    dotted = stem.replace('-idx', '.idx')  # the name some unzip tools produce
    return [stem + '.gz', stem, dotted + '.gz', dotted]


def _load_idx_dataset(name, path, download, classes, source, license):
    directory = dl.dataset_dir(name, path)
    splits = {}
    groups = [_idx_candidates(stem) for pair in _IDX_FILES.values() for stem in pair]
    found = _find_all(directory, groups, name, download, path is not None)
    for k, split in enumerate(_IDX_FILES):
        img_path, lab_path = found[2 * k], found[2 * k + 1]
        images = read_idx(img_path, ndim=3)
        labels = read_idx(lab_path, ndim=1)
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise ValueError(f'load_{name}: expected unsigned-byte IDX files, got '
                             f'{images.dtype} images and {labels.dtype} labels')
        if len(images) != len(labels):
            raise ValueError(f'load_{name}: record count mismatch: {img_path.name} has '
                             f'{len(images)} images but {lab_path.name} has {len(labels)} '
                             f'labels')
        if labels.size and labels.max() >= 10:
            raise ValueError(f'load_{name}: {lab_path.name} has label {labels.max()}, '
                             f'expected 0..9')
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


def read_cifar_binary(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (1024 red,
    then green, then blue, rows top to bottom).

    Returns:
        (images <uint8>[n, 32, 32, 3], labels <uint8>[n]).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise ValueError(f'{path}: size {len(data)} is not a positive multiple of the '
                         f'{_CIFAR_RECORD}-byte CIFAR-10 record (truncated, or not the '
                         f'binary version?)')
    rec = np.frombuffer(data, np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = rec[:, 0]
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f'{path}: record {bad} has label {labels[bad]}, expected 0..9 (is '
                         f'this CIFAR-100, whose records start with two label bytes?)')
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


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
    parts = []
    for f in files:
        images, labels = read_cifar_binary(d / f)
        if expected_records is not None and len(labels) != expected_records:
            raise ValueError(f'load_cifar10: {d / f} holds {len(labels)} records, expected '
                             f'{expected_records}')
        parts.append((images, labels))
    x = np.concatenate([p[0] for p in parts[:5]]).astype(np.float32) / 255.0
    y = np.concatenate([p[1] for p in parts[:5]]).astype(np.int32)
    classes = CIFAR10_CLASSES
    meta_txt = d / 'batches.meta.txt'
    if meta_txt.is_file():
        names = [s.strip() for s in meta_txt.read_text().splitlines() if s.strip()]
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

    Raises:
        ValueError: naming the file (and line) for an empty file, missing columns, a short
            row, a non-numeric, non-finite (nan, inf) or, in a category column
            (`BIKE_INTEGER`), non-integer value, a category out of range, or a bad date.
    """
    path = Path(path)
    with open(path, newline='', encoding='utf-8') as f:
        reader = csv.reader(f)
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
    out = {'dteday': np.array(cols['dteday'])}
    for c in BIKE_COLUMNS:
        if c == 'dteday':
            continue
        try:
            out[c] = np.array(cols[c], dtype=np.float64)
        except ValueError:
            bad = next(i for i, v in enumerate(cols[c]) if not _is_float(v))
            raise ValueError(f'{path}:{lines[bad]}: column {c!r} has non-numeric value '
                             f'{cols[c][bad]!r}') from None
        bad = np.flatnonzero(~np.isfinite(out[c]))
        if bad.size:
            raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has non-finite value '
                             f'{cols[c][bad[0]]!r}')
        if c in BIKE_INTEGER:
            bad = np.flatnonzero(out[c] != np.round(out[c]))
            if bad.size:
                raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has non-integer '
                                 f'value {cols[c][bad[0]]!r} (expected a whole-number code)')
    for d in np.unique(out['dteday']):
        try:
            datetime.date.fromisoformat(str(d))
        except ValueError:
            raise ValueError(f'{path}: dteday {str(d)!r} is not a YYYY-MM-DD date') from None
    for c, values in BIKE_DUMMIES.items():
        bad = np.flatnonzero(~np.isin(out[c], list(values)))
        if bad.size:
            outside = sorted(set(out[c][bad].astype(int).tolist()))
            raise ValueError(f'{path}:{lines[bad[0]]}: column {c!r} has values {outside} '
                             f'outside {list(values)} (first at this line)')
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
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets or any(t not in BIKE_TARGETS for t in targets):
        raise ValueError(f'load_bike_sharing: targets must be among {BIKE_TARGETS}, got '
                         f'{targets}')
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


def _read_text(path: Path, encoding: str) -> str:
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f'{path}: not valid {encoding} text at byte {e.start}') from e
    if not text:
        raise ValueError(f'{path}: empty text file')
    return text


@register('text')
def load_text(*, path=None, download: bool = False, test_fraction: float = 0.1,
              encoding: str = 'utf-8') -> Dataset:
    """A plain-text corpus as character ids (default: Tiny Shakespeare, Karpathy's char-rnn
    input.txt; the text is Shakespeare, public domain; the file is distributed with char-rnn,
    MIT).

    Args:
        path: the text file (default: cache/tiny_shakespeare/input.txt).
        test_fraction: the last part of the text held out as test.

    Returns:
        Dataset with x_train/x_test <int32>[n_chars] and y None; meta 'vocab' (every character
        of the whole file, so the test text has no unknowns), 'text_train', 'text_test'.
    """
    file = _given_file('text', path, 'a text file, or a directory holding input.txt')
    if file is None:
        file = _find(dl.dataset_dir('text', path), ['input.txt'], 'text', download,
                     path is not None)
    text = _read_text(file, encoding)
    if not 0 < test_fraction < 1:
        raise ValueError(f'load_text: test_fraction must lie in (0, 1), got {test_fraction}')
    cut = len(text) - max(1, int(round(test_fraction * len(text))))
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
    for lineno, line in enumerate(_read_text(path, encoding).splitlines(), start=1):
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


def read_text8(path) -> str:
    """The text8 corpus (one line of lower-case words), from `text8` or `text8.zip`."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                if 'text8' not in zf.namelist():
                    raise ValueError(f'{path}: zip has no member named text8 '
                                     f'(members: {zf.namelist()[:5]})')
                data = zf.read('text8')
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
            raise ValueError(f'{path}: damaged or truncated zip archive '
                             f'({type(e).__name__}: {e})') from e
    else:
        data = path.read_bytes()
    if not data:
        raise ValueError(f'{path}: empty text8 file')
    bad = re.search(rb'[^a-z ]', data)
    if bad:
        raise ValueError(f'{path}: not text8: byte {data[bad.start():bad.start() + 1]!r} at '
                         f'offset {bad.start()} (text8 has only a-z and spaces)')
    return data.decode('ascii')


@register('text8')
def load_text8(*, path=None, download: bool = False, max_tokens: int | None = None,
               vocab_size: int | None = 50_000, min_count: int = 1,
               test_fraction: float = 0.05) -> Dataset:
    """text8: the first 10^8 bytes of an English Wikipedia dump, cleaned to a-z and spaces
    (Mahoney, mattmahoney.net/dc/textdata.html), as word ids for word2vec.

    License: Wikipedia text, CC BY-SA.

    Args:
        path: `text8` or `text8.zip`, or a directory with either (default: cache).
        max_tokens: use only the first this many words.
        vocab_size: keep the most frequent words (specials included); others map to '<unk>'.

    Returns:
        Dataset with x_train/x_test <int32>[n_words] and y None; meta 'vocab' (from the
        training words).
    """
    file = _given_file('text8', path, 'text8 or text8.zip, or a directory holding one')
    if file is None:
        file = _find(dl.dataset_dir('text8', path), ['text8', 'text8.zip'], 'text8', download,
                     path is not None)
    words = read_text8(file).split()
    if max_tokens is not None:
        words = words[:max_tokens]
    if not 0 < test_fraction < 1 or len(words) < 2:
        raise ValueError(f'load_text8: need test_fraction in (0, 1) and >= 2 words, got '
                         f'{test_fraction} and {len(words)} words')
    cut = len(words) - max(1, int(round(test_fraction * len(words))))
    vocab = WordVocab(words[:cut], min_count=min_count, max_size=vocab_size)
    meta = make_meta('text8', 'words', 'text8 (Mahoney), first 1e8 bytes of Wikipedia',
                     'CC BY-SA (Wikipedia text)', vocab=vocab, n_classes=len(vocab))
    return Dataset(vocab.encode(words[:cut]), None, vocab.encode(words[cut:]), None, meta=meta)


# --------------------------------------------------------------------------- image folder

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.ppm', '.pgm', '.tif', '.tiff',
                    '.webp')


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
        size: (height, width) after resizing (bilinear).
        mode: 'RGB' (3 channels) or 'L' (grey, 1 channel).
        crop: None or a (left, top, right, bottom) box applied before resizing.
        test_fraction: share of images held out as test (seeded); 0 gives an empty test set.

    Returns:
        Dataset with x <f32>[n, height, width, channels] in [0, 1] and y <int32>[n].
    """
    from PIL import Image, UnidentifiedImageError
    directory = dl.dataset_dir('image_folder', path)
    if path is not None and not directory.exists():
        raise _no_such_path('image_folder', directory, 'a folder of images or of class '
                            'sub-folders of images')
    if not directory.is_dir():
        raise dl.missing_error('image_folder', directory, ['*.png / *.jpg images (or '
                                                           'class sub-folders of them)'])
    if mode not in ('RGB', 'L'):
        raise ValueError(f"load_image_folder: mode must be 'RGB' or 'L', got {mode!r}")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
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
    x = np.empty((len(files), h, w, 3 if mode == 'RGB' else 1), np.float32)
    y = np.zeros(len(files), np.int32)
    for i, p in enumerate(files):
        try:
            with Image.open(p) as im:
                im = im.convert(mode)
                if crop is not None:
                    im = im.crop(tuple(crop))
                im = im.resize((w, h), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f'load_image_folder: cannot read image {p}: {e}') from e
        x[i] = arr.reshape(h, w, -1)
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

