"""Sizes a loader must check before it allocates: files whose headers, compressed streams or
lengths claim more than they hold or more than `train.datasets.limits` allows, and options
asking for arrays of many gigabytes. Each is one ValueError naming the file (or the option),
raised before the memory is taken: the subprocess tests prove it under a hard memory cap."""

import json
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from tests.train.test_datasets_formats import idx_bytes, write_mnist
from train import datasets as D

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIB = 1 << 20

# Runs one `load` with the address space capped at HEADROOM above what the interpreter uses
# once numpy, Pillow and the datasets package are imported (about 160 MB here), and prints
# the outcome as JSON: a loader that allocates what a file merely claims dies of MemoryError.
HEADROOM = 256 * MIB
_CHILD = r'''
import json, resource, sys
import numpy, PIL.Image
from train import datasets
with open('/proc/self/status') as f:
    base = next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmSize:'))
limit = base + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
name, options = json.loads(sys.argv[1])
try:
    ds = datasets.load(name, **options)
    print(json.dumps(['ok', [len(ds.x_train), len(ds.x_test)]]))
except BaseException as e:
    print(json.dumps([type(e).__name__, str(e)]))
'''


linux_only = pytest.mark.skipif(sys.platform != 'linux',
                                reason='reads /proc/self/status and caps RLIMIT_AS')


def _load_capped(name, **options):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-c', _CHILD, json.dumps([name, options]),
                           str(HEADROOM)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _gzip_of_zeros(prefix: bytes, n_mib: int) -> bytes:
    """A valid gzip file of `prefix` then `n_mib` MiB of zero bytes, about 1 KiB per MiB: one
    deflate block of a MiB of zeros, ended by a full flush so it repeats byte for byte."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(n_mib):
        crc = zlib.crc32(bytes(MIB), crc)
    size = (len(prefix) + n_mib * MIB) & 0xFFFFFFFF
    return (b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff' + head + block * n_mib
            + c.flush(zlib.Z_FINISH) + struct.pack('<II', crc, size))


def _sparse(path, head: bytes, size: int):
    """A file of `size` bytes that starts with `head` and takes almost no disk (a hole)."""
    with open(path, 'wb') as f:
        f.write(head)
        f.truncate(size)


def _png_header(width, height) -> bytes:
    """A PNG that declares width x height RGB pixels but carries almost no pixel data."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b'IDAT', zlib.compress(bytes(100))) + chunk(b'IEND', b''))


# --------------------------------------------------------------------------- under a memory cap

@linux_only
def test_gzipped_idx_that_inflates_to_512_mib_fails_cleanly_under_a_memory_cap(tmp_path):
    d = tmp_path / 'm'
    write_mnist(d, gz=False)
    (d / 'train-images-idx3-ubyte').unlink()
    head = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    bomb = d / 'train-images-idx3-ubyte.gz'
    bomb.write_bytes(_gzip_of_zeros(head, 512))         # about 0.5 MB on disk
    assert bomb.stat().st_size < MIB
    kind, msg = _load_capped('mnist', path=str(d))
    assert kind == 'ValueError', msg
    assert msg.startswith(f'{bomb}: unexpected bytes after the (5, 28, 28) array')


@linux_only
def test_raw_idx_with_512_mib_after_its_data_fails_cleanly_under_a_memory_cap(tmp_path):
    d = tmp_path / 'm'
    write_mnist(d, gz=False)
    big = d / 't10k-images-idx3-ubyte'
    head = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    _sparse(big, head, 512 * MIB)
    kind, msg = _load_capped('mnist', path=str(d))
    assert kind == 'ValueError', msg
    assert msg.startswith(f'{big}: {512 * MIB - len(head)} unexpected bytes after')


@linux_only
def test_cifar_batch_of_512_mib_is_judged_by_its_size_under_a_memory_cap(tmp_path):
    d = tmp_path / 'c' / 'cifar-10-batches-bin'
    d.mkdir(parents=True)
    for name in [f'data_batch_{i}.bin' for i in range(1, 6)]:
        (d / name).write_bytes(bytes(3073))
    _sparse(d / 'test_batch.bin', b'', 512 * MIB)
    kind, msg = _load_capped('cifar10', path=str(tmp_path / 'c'))
    assert kind == 'ValueError', msg
    assert msg.startswith(f'{d / "test_batch.bin"}: size {512 * MIB} is not a positive '
                          f'multiple of the 3073-byte CIFAR-10 record')


@linux_only
def test_text8_with_max_tokens_reads_only_that_far_under_a_memory_cap(tmp_path):
    words = b' anarchism originated as a term of abuse' * 30_000   # 1.2 MB, read 1 MiB at once
    _sparse(tmp_path / 'text8', words, 512 * MIB)     # the hole (NUL bytes) is never read
    kind, lengths = _load_capped('text8', path=str(tmp_path / 'text8'), max_tokens=200)
    assert kind == 'ok', lengths
    assert sum(lengths) == 200


@linux_only
def test_png_declaring_10000x10000_pixels_is_refused_from_its_header_under_a_memory_cap(
        tmp_path):
    (tmp_path / 'img').mkdir()
    png = tmp_path / 'img' / 'big.png'
    png.write_bytes(_png_header(10_000, 10_000))
    kind, msg = _load_capped('image_folder', path=str(tmp_path / 'img'))
    assert kind == 'ValueError', msg
    assert msg == (f'load_image_folder: image {png} declares 10000x10000 pixels, more than the '
                   f'limit train.datasets.limits.MAX_IMAGE_PIXELS = 67108864 pixels')


# --------------------------------------------------------------------------- the caps themselves

def test_idx_data_over_max_file_bytes_is_refused_before_reading(tmp_path, monkeypatch):
    write_mnist(tmp_path / 'm')
    # the 5 x 28 x 28 training images hold 3920 bytes
    monkeypatch.setattr('train.datasets.limits.MAX_FILE_BYTES', 1000)
    with pytest.raises(ValueError) as err:
        D.load('mnist', path=tmp_path / 'm')
    assert str(err.value) == (
        f"{tmp_path / 'm' / 'train-images-idx3-ubyte.gz'}: header declares dims (5, 28, 28): "
        f"3920 bytes (3.8 KiB), more than the limit train.datasets.limits.MAX_FILE_BYTES = "
        f"1000 bytes")


def test_text_files_over_max_text_bytes_are_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr('train.datasets.limits.MAX_TEXT_BYTES', 100)
    (tmp_path / 'input.txt').write_text('x' * 101)
    with pytest.raises(ValueError, match=r'input.txt: has 101 bytes, more than the limit '
                                         r'train.datasets.limits.MAX_TEXT_BYTES = 100 bytes'):
        D.load('text', path=tmp_path / 'input.txt')
    (tmp_path / 'text8').write_text(' ab' * 40)
    with pytest.raises(ValueError, match=r'text8: has 120 bytes, more than .*MAX_TEXT_BYTES.* '
                                         r'pass max_tokens'):
        D.load('text8', path=tmp_path / 'text8')
    assert len(D.load('text8', path=tmp_path / 'text8', max_tokens=10).x_train) == 9


def test_parallel_pairs_padded_past_max_array_bytes_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr('train.datasets.limits.MAX_ARRAY_BYTES', 1 << 20)
    lines = ['Go.\tVa !'] * 100 + [' '.join(['word'] * 5000) + '.\tLong.']
    (tmp_path / 'long.txt').write_text('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=r'load_parallel: x \(the ids of .*long.txt padded to '
                                         r'its longest sentence; max_length shortens it\) of '
                                         r'shape \(101, 5002\) would need 2020808 bytes'):
        D.load('parallel', path=tmp_path / 'long.txt', max_length=None)


def test_image_sizes_and_crops_past_max_image_pixels_are_refused(tmp_path):
    from PIL import Image
    (tmp_path / 'img').mkdir()
    Image.new('RGB', (20, 10)).save(tmp_path / 'img' / 'a.png')
    with pytest.raises(ValueError, match=r'size 100000x100000 is 10000000000 pixels an image, '
                                         r'more than the limit .*MAX_IMAGE_PIXELS'):
        D.load('image_folder', path=tmp_path / 'img', size=[100000, 100000])
    with pytest.raises(ValueError, match=r'crop box \(0, 0, 100000, 100000\) spans 10000000000 '
                                         r'pixels'):
        D.load('image_folder', path=tmp_path / 'img', crop=[0, 0, 100000, 100000])
    big = tmp_path / 'img' / 'b.png'
    big.write_bytes(_png_header(30_000, 30_000))     # past Pillow's own bomb limit too
    with pytest.raises(ValueError, match=rf'image {re.escape(str(big))} has more pixels than '
                                         rf'the limit .*MAX_IMAGE_PIXELS'):
        D.load('image_folder', path=tmp_path / 'img', size=4)
