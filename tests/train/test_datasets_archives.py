"""Archive extraction (`download.safe_extract`) and zip reading on damaged or hostile
archives: link chains, members under files, headers claiming gigabytes, truncated streams,
encrypted or unreadable zip members. Each is one ValueError naming the archive, raised before
the first member is written, so nothing ever lands outside the target."""

import gzip
import io
import struct
import tarfile
import zipfile

import numpy as np
import pytest

from tests.train.test_datasets_formats import (  # the autouse fixture: no download reaches out
    _no_network_and_private_cache,  # noqa: F401
)
from train import datasets as D
from train.datasets import download as dl


def _tar(path, entries, mode='w:gz'):
    """entries: (name, kind, arg) with kind 'file' (arg: bytes), 'dir', 'sym' or 'hard'
    (arg: the link target)."""
    where = {'fileobj': path} if hasattr(path, 'write') else {'name': path}
    with tarfile.open(mode=mode, **where) as tf:
        for name, kind, arg in entries:
            info = tarfile.TarInfo(name)
            if kind == 'file':
                info.size = len(arg)
                tf.addfile(info, io.BytesIO(arg))
                continue
            info.type = {'dir': tarfile.DIRTYPE, 'sym': tarfile.SYMTYPE,
                         'hard': tarfile.LNKTYPE}[kind]
            info.linkname = arg or ''
            tf.addfile(info)


@pytest.mark.parametrize('entries,member', [
    # each link looks harmless alone (d/x -> the target itself, d/x/y -> 'd' on paper) but
    # d/x/y is the target's parent once d/x is a link
    ([('d', 'dir', None), ('d/x', 'sym', '..'), ('d/x/y', 'sym', '..'),
      ('d/x/y/escaped.txt', 'file', b'pwned')], 'd/x/y'),
    ([('a/b/c', 'sym', '../..'), ('a/b/c/d', 'sym', '../..'),
      ('a/b/c/d/escaped.txt', 'file', b'pwned')], 'a/b/c/d'),
    ([('d/x', 'sym', '..'), ('d/x/y', 'sym', '..'), ('h', 'hard', 'd/x/y/escaped.txt')],
     'd/x/y'),
    ([('a', 'sym', 'b'), ('b', 'sym', 'a'), ('a/escaped.txt', 'file', b'pwned')], 'a'),
])
def test_tar_link_chains_are_caught_by_our_own_check_before_anything_is_written(
        tmp_path, entries, member):
    arch = tmp_path / 'a.tar.gz'
    _tar(arch, [('ok.txt', 'file', b'ok')] + entries)
    target = tmp_path / 'out' / 'in'
    with pytest.raises(ValueError) as err:
        dl.safe_extract(arch, target)
    assert type(err.value) is ValueError     # ours, not tarfile's filter error
    assert str(err.value).startswith(f'safe_extract: {arch} member {member!r} links to ')
    assert list(target.iterdir()) == []      # refused before the first member was written
    assert sorted(p.name for p in tmp_path.rglob('*')) == ['a.tar.gz', 'in', 'out']


def test_tar_hard_links_to_nothing_and_members_under_files_are_refused(tmp_path):
    arch = tmp_path / 'a.tar'
    _tar(arch, [('h', 'hard', 'missing')], 'w')
    with pytest.raises(ValueError, match=r"member 'h' is a hard link to 'missing', which is no "
                                         r"regular file of the archive"):
        dl.safe_extract(arch, tmp_path / 'o1')
    _tar(arch, [('x', 'file', b'1'), ('x/y', 'file', b'2')], 'w')
    with pytest.raises(ValueError, match=r"member 'x/y' lies under 'x', which the archive makes "
                                         r"a regular file"):
        dl.safe_extract(arch, tmp_path / 'o2')
    assert list((tmp_path / 'o2').iterdir()) == []


def _tar_claiming(size: int) -> bytes:
    """An uncompressed tar whose one member's header claims `size` bytes (it holds 5)."""
    buf = io.BytesIO()
    _tar(buf, [('cifar-10-batches-bin/data_batch_1.bin', 'file', b'hello')], 'w')
    raw = bytearray(buf.getvalue())
    raw[124:136] = b'%011o\0' % size
    raw[148:156] = b' ' * 8
    raw[148:156] = b'%06o\0 ' % sum(raw[:512])
    return bytes(raw)


def test_tar_member_claiming_gigabytes_is_refused_from_its_header(tmp_path):
    (tmp_path / 'c').mkdir()
    arch = tmp_path / 'c' / 'cifar-10-binary.tar.gz'
    arch.write_bytes(gzip.compress(_tar_claiming((8 << 30) - 1)))
    with pytest.raises(ValueError) as err:
        D.load('cifar10', path=tmp_path / 'c')
    assert str(err.value).startswith(
        f"safe_extract: {arch} member 'cifar-10-batches-bin/data_batch_1.bin' declares "
        f"8589934591 bytes (8.0 GiB), bringing the members to 8589934591 bytes (8.0 GiB), "
        f"more than the limit train.datasets.limits.MAX_FILE_BYTES")
    assert sorted(p.name for p in (tmp_path / 'c').iterdir()) == ['cifar-10-binary.tar.gz']


@pytest.mark.parametrize('keep', [0.75, 'all but the gzip trailer'])
def test_truncated_tar_gz_is_refused_before_anything_is_written(tmp_path, keep):
    rng = np.random.default_rng(0)
    entries = [(f'cifar-10-batches-bin/{name}', 'file',
                rng.integers(0, 10, 3073 * 20, dtype=np.uint8).tobytes())
               for name in [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']]
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode='wb') as gz:
        _tar(gz, entries, 'w')
    raw = buf.getvalue()
    (tmp_path / 'c').mkdir()
    arch = tmp_path / 'c' / 'cifar-10-binary.tar.gz'
    arch.write_bytes(raw[:int(len(raw) * keep)] if keep != 'all but the gzip trailer'
                     else raw[:-8])
    with pytest.raises(ValueError, match=rf'safe_extract: {arch} is a damaged or truncated '
                                         rf'archive \(EOFError'):
        D.load('cifar10', path=tmp_path / 'c')
    assert sorted(p.name for p in (tmp_path / 'c').iterdir()) == ['cifar-10-binary.tar.gz']


def _set_zip_flag_encrypted(raw: bytes) -> bytes:
    raw = bytearray(raw)
    raw[6] |= 1                                  # local header: general purpose flags
    raw[raw.rfind(b'PK\x01\x02') + 8] |= 1       # central directory entry: the same flags
    return bytes(raw)


def test_encrypted_zip_is_one_error_naming_the_archive(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        zf.writestr('text8', ' a b c d e f g ' * 10)
    (tmp_path / 'text8.zip').write_bytes(_set_zip_flag_encrypted(buf.getvalue()))
    with pytest.raises(ValueError, match=rf"{tmp_path / 'text8.zip'} member 'text8' is "
                                         rf"encrypted \(password-protected\)"):
        D.load('text8', path=tmp_path / 'text8.zip')
    with pytest.raises(ValueError, match=rf"safe_extract: {tmp_path / 'text8.zip'} member "
                                         rf"'text8' is encrypted"):
        dl.safe_extract(tmp_path / 'text8.zip', tmp_path / 'out')
    assert not (tmp_path / 'out' / 'text8').exists()


def test_zip_member_declaring_more_than_its_bytes_can_hold_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as zf:
        zf.writestr('text8', ' a b c d e f g ' * 10)
    raw = bytearray(buf.getvalue())
    cd = raw.rfind(b'PK\x01\x02')
    raw[cd + 24:cd + 28] = struct.pack('<I', 0xFFFFFFF0)   # uncompressed size: 4 GiB
    (tmp_path / 'text8.zip').write_bytes(bytes(raw))
    declares = (r"text8.zip member 'text8' declares 4294967280 bytes \(4.0 GiB\) of data, more "
                r"than its \d+ compressed bytes can hold")
    with pytest.raises(ValueError, match=declares):
        D.load('text8', path=tmp_path / 'text8.zip')
    with pytest.raises(ValueError, match='safe_extract: .*' + declares):
        dl.safe_extract(tmp_path / 'text8.zip', tmp_path / 'out')


def test_zip_with_an_unreadable_method_is_refused_before_extracting(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        zf.writestr('hour.csv', 'a,b\n')
    raw = bytearray(buf.getvalue())
    cd = raw.rfind(b'PK\x01\x02')
    raw[8:10] = raw[cd + 10:cd + 12] = struct.pack('<H', 99)   # local header, central dir
    (tmp_path / 'a.zip').write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"member 'hour.csv' uses compression method 99"):
        dl.safe_extract(tmp_path / 'a.zip', tmp_path / 'out')
    assert not (tmp_path / 'out' / 'hour.csv').exists()


def test_archive_larger_than_the_free_disk_is_refused(tmp_path, monkeypatch):
    _tar(tmp_path / 'a.tar.gz', [('f.bin', 'file', bytes(5000))])
    monkeypatch.setattr('train.datasets.download.shutil.disk_usage',
                        lambda path: type('Usage', (), {'free': 4096})())
    with pytest.raises(ValueError, match=r'a.tar.gz members declare 5000 bytes \(4.9 KiB\), '
                                         r'but only 4096 bytes \(4.0 KiB\) are free'):
        dl.safe_extract(tmp_path / 'a.tar.gz', tmp_path / 'out')
