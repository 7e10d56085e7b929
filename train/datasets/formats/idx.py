"""MNIST and Fashion-MNIST in LeCun's IDX format (``train-images-idx3-ubyte`` etc., raw or
gzipped)."""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

import numpy as np

from .. import download as dl
from .. import limits
from ..core import Dataset, check_bool, make_meta, register
from .files import find_all

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
    found = find_all(directory, groups, name, download, path is not None)
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
