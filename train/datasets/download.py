"""Downloads of the public datasets: known URLs with SHA-256, atomic writes into the cache,
safe archive extraction, and one clear error when offline.

Nothing here runs unless asked (`fetch(name)` or `load(name, download=True)`); the loaders
otherwise read only what is on disk. SHA-256 values were taken from public checksum lists
(TensorFlow Datasets' download checksums and other projects pinning the same files); where no
published value was found (bike sharing, text8, the eng-fra parallel corpus) the
entry's hash is None: the file is downloaded unchecked unless the caller passes `sha256=`,
and its computed hash is printed so it can be pinned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from . import limits
from .core import cache_dir


class MissingDataError(FileNotFoundError):
    """A dataset's files are not on disk (and could not or were not to be downloaded)."""


@dataclasses.dataclass(frozen=True)
class Remote:
    """One downloadable file: where it lives, its SHA-256 (None if unpublished), and whether it
    is an archive to extract after download."""

    filename: str
    url: str
    sha256: str | None
    extract: bool = False


_MNIST = 'https://storage.googleapis.com/cvdf-datasets/mnist/'
_FASHION = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'

# dataset -> (subdirectory of the cache, files)
KNOWN: dict[str, tuple[str, tuple[Remote, ...]]] = {
    'mnist': ('mnist', (
        Remote('train-images-idx3-ubyte.gz', _MNIST + 'train-images-idx3-ubyte.gz',
               '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'),
        Remote('train-labels-idx1-ubyte.gz', _MNIST + 'train-labels-idx1-ubyte.gz',
               '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c'),
        Remote('t10k-images-idx3-ubyte.gz', _MNIST + 't10k-images-idx3-ubyte.gz',
               '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6'),
        Remote('t10k-labels-idx1-ubyte.gz', _MNIST + 't10k-labels-idx1-ubyte.gz',
               'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6'))),
    'fashion_mnist': ('fashion_mnist', (
        Remote('train-images-idx3-ubyte.gz', _FASHION + 'train-images-idx3-ubyte.gz',
               '08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc'),
        Remote('train-labels-idx1-ubyte.gz', _FASHION + 'train-labels-idx1-ubyte.gz',
               'b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc'),
        Remote('t10k-images-idx3-ubyte.gz', _FASHION + 't10k-images-idx3-ubyte.gz',
               '78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229'),
        Remote('t10k-labels-idx1-ubyte.gz', _FASHION + 't10k-labels-idx1-ubyte.gz',
               '42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf'))),
    'cifar10': ('cifar10', (
        Remote('cifar-10-binary.tar.gz', 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
               'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd', extract=True),)),
    'bike_sharing': ('bike_sharing', (
        Remote('bike+sharing+dataset.zip',
               'https://archive.ics.uci.edu/static/public/275/bike+sharing+dataset.zip', None,
               extract=True),)),
    'text': ('tiny_shakespeare', (
        Remote('input.txt', 'https://raw.githubusercontent.com/karpathy/char-rnn/master/data/'
               'tinyshakespeare/input.txt',
               '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed'),)),
    'text8': ('text8', (
        Remote('text8.zip', 'http://mattmahoney.net/dc/text8.zip', None),)),
    # the PyTorch seq2seq tutorial's copy of the ManyThings/Tatoeba eng-fra pairs
    # (manythings.org itself refuses scripted downloads); extracts to data/eng-fra.txt
    'parallel': ('eng-fra', (
        Remote('data.zip', 'https://download.pytorch.org/tutorial/data.zip', None,
               extract=True),)),
}


def dataset_dir(name: str, path=None) -> Path:
    """The directory a real dataset is read from: `path` if given, else its cache folder."""
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f'{name}: path must be a file or folder name (str or '
                            f'os.PathLike), got {type(path).__name__} {path!r}')
        return Path(path).expanduser()
    sub = KNOWN[name][0] if name in KNOWN else name
    return cache_dir() / sub


def missing_error(name: str, directory, files) -> MissingDataError:
    """The single offline message: which files to put where, and where to get them."""
    lines = [f'{name}: dataset files not found. Put these files in {directory}:']
    lines += [f'  {f}' for f in files]
    if name in KNOWN:
        lines.append('They can be downloaded from:')
        lines += [f'  {r.url}' + (' (then extract it there)' if r.extract else '')
                  for r in KNOWN[name][1]]
        lines.append(f"or call train.datasets.download.fetch({name!r}) (or load(..., "
                     f"download=True)) on a machine with network access. Set $JAXZOO_DATA to "
                     f"change the cache directory.")
    return MissingDataError('\n'.join(lines))


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest, *, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` atomically, checking its SHA-256 when given.

    The bytes go to a temporary file in `dest`'s directory that is renamed over `dest` only
    after the whole body arrived and the hash matched, so an interrupted or corrupt download
    never leaves a file that looks complete.

    Raises:
        ValueError: checksum mismatch (nothing is written).
        MissingDataError: the URL could not be fetched (e.g. no network).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + '.', suffix='.part')
    h = hashlib.sha256()
    try:
        try:
            with os.fdopen(fd, 'wb') as out, urlopen(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b''):
                    out.write(chunk)
                    h.update(chunk)
        except (URLError, OSError) as e:
            raise MissingDataError(f'download_file: could not fetch {url} ({e}); put the file '
                                   f'at {dest} by hand') from e
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            raise ValueError(f'download_file: checksum mismatch for {url}: expected SHA-256 '
                             f'{sha256}, got {digest}; the file was not saved')
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if sha256 is None:
        print(f'download_file: {dest.name} has SHA-256 {digest} (no published hash to check)')
    return dest


def _inside(target: Path, member_path: str) -> bool:
    resolved = (target / member_path).resolve()
    return resolved == target or target in resolved.parents


def _check_member_name(name: str, archive) -> None:
    norm = name.replace('\\', '/')
    if norm.startswith('/') or posixpath.isabs(norm) or (len(norm) > 1 and norm[1] == ':'):
        raise ValueError(f'safe_extract: {archive} member {name!r} has an absolute path')
    if '..' in norm.split('/'):
        raise ValueError(f"safe_extract: {archive} member {name!r} contains '..'")


_ZIP_METHODS = {zipfile.ZIP_STORED: 'stored', zipfile.ZIP_DEFLATED: 'deflate',
                zipfile.ZIP_BZIP2: 'bzip2', zipfile.ZIP_LZMA: 'lzma'}


def check_zip_member(info: zipfile.ZipInfo, archive, archive_size: int) -> None:
    """A ValueError naming the archive for a zip member that cannot be read as it claims:
    encrypted, compressed with a method zipfile cannot read, or with sizes that its archive
    cannot hold (its compressed bytes past the end of the file, or more output than those
    bytes can expand to)."""
    where = f'{archive} member {info.filename!r}'
    if info.flag_bits & 0x1:
        raise ValueError(f'{where} is encrypted (password-protected); extract it with the '
                         f'password and give the plain file instead')
    if info.compress_type not in _ZIP_METHODS:
        method = zipfile.compressor_names.get(info.compress_type, 'unknown')
        raise ValueError(f'{where} uses compression method {info.compress_type} ({method}); '
                         f'readable are {", ".join(_ZIP_METHODS.values())}')
    if info.header_offset + info.compress_size > archive_size:
        raise ValueError(f'{where} claims {info.compress_size} compressed bytes at offset '
                         f'{info.header_offset}, past the end of the {archive_size}-byte file '
                         f'(truncated archive?)')
    bound = {zipfile.ZIP_STORED: info.compress_size,
             zipfile.ZIP_DEFLATED: info.compress_size * limits.DEFLATE_MAX_RATIO + 1024}
    if info.file_size > bound.get(info.compress_type, info.file_size):
        raise ValueError(f'{where} declares {limits.nbytes(info.file_size)} of data, more '
                         f'than its {info.compress_size} compressed bytes can hold '
                         f'(damaged header?)')


def _extract_budget(archive, target: Path, total: int) -> None:
    """An archive's members may hold at most MAX_FILE_BYTES together and must fit on disk."""
    limits.check_file_bytes(f'safe_extract: {archive}', total, 'MAX_FILE_BYTES',
                            'members declare')
    free = shutil.disk_usage(target).free
    if total > free:
        raise ValueError(f'safe_extract: {archive} members declare {limits.nbytes(total)}, '
                         f'but only {limits.nbytes(free)} are free in {target}')


def _safe_extract_zip(archive: Path, target: Path, root: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            size = archive.stat().st_size
            for info in infos:
                _check_member_name(info.filename, archive)
                if not _inside(root, info.filename):
                    raise ValueError(f'safe_extract: {archive} member {info.filename!r} '
                                     f'would land outside {target}')
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise ValueError(f'safe_extract: {archive} member {info.filename!r} is a '
                                     f'symbolic link')
                check_zip_member(info, f'safe_extract: {archive}', size)
            _extract_budget(archive, root, sum(i.file_size for i in infos))
            zf.extractall(root)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            RuntimeError) as e:
        raise ValueError(f'safe_extract: {archive} is a damaged or truncated zip archive, '
                         f'or could not be written to {target} ({type(e).__name__}: '
                         f'{e})') from e


_MAX_LINK_HOPS = 40     # as the Linux kernel's limit on symbolic links in one path


def _resolve(path: str, links: dict[str, str]) -> str | None:
    """`path` (relative to the target) as the extracted tree would resolve it: the archive's
    own symbolic links followed wherever they appear, so a chain of links that each look
    harmless is judged by where it ends. None if a step leaves the target (a '..' above it or
    an absolute link) or the links loop."""
    parts: list[str] = []
    todo = path.split('/')[::-1]
    hops = 0
    while todo:
        c = todo.pop()
        if c in ('', '.'):
            continue
        if c == '..':
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(c)
        link = links.get('/'.join(parts))
        if link is None:
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS or posixpath.isabs(link):
            return None
        parts.pop()
        todo.extend(link.split('/')[::-1])
    return '/'.join(parts)


def _prefixes(name: str):
    """'a/b/c' -> 'a', 'a/b' (the folders a member lies in)."""
    parts = name.split('/')
    return ('/'.join(parts[:k]) for k in range(1, len(parts)))


def _check_tar_members(archive: Path, members, root: Path, target: Path) -> None:
    links = {posixpath.normpath(m.name): m.linkname for m in members if m.issym()}
    files = {posixpath.normpath(m.name) for m in members if m.isfile()}
    for m in members:
        _check_member_name(m.name, archive)
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise ValueError(f'safe_extract: {archive} member {m.name!r} is a special file')
        name = posixpath.normpath(m.name)
        under = next((p for p in _prefixes(name) if p in files), None)
        if under is not None:
            raise ValueError(f'safe_extract: {archive} member {m.name!r} lies under {under!r}, '
                             f'which the archive makes a regular file')
        parent = _resolve(posixpath.dirname(name), links)
        if parent is None:
            lands = None
        elif m.issym() or m.islnk():
            # the link lands in its (resolved) folder; what it points at must stay inside
            base = parent if m.issym() else ''
            points_at = (None if posixpath.isabs(m.linkname)
                         else _resolve(posixpath.join(base, m.linkname), links))
            if points_at is None or not _inside(root, points_at):
                raise ValueError(f'safe_extract: {archive} member {m.name!r} links to '
                                 f'{m.linkname!r}, which leads outside {target} or into a '
                                 f'loop (following the archive\'s own links)')
            if m.islnk() and points_at not in files:
                raise ValueError(f'safe_extract: {archive} member {m.name!r} is a hard link to '
                                 f'{m.linkname!r}, which is no regular file of the archive')
            lands = posixpath.join(parent, posixpath.basename(name))
        else:
            lands = _resolve(name, links)
        if lands is None or not _inside(root, lands):
            raise ValueError(f'safe_extract: {archive} member {m.name!r} would land '
                             f'outside {target} (through the archive\'s links)')


def _read_tar_members(tf: tarfile.TarFile, archive: Path) -> list:
    """Every member's header, refusing as soon as the declared sizes pass MAX_FILE_BYTES (so a
    header claiming gigabytes is not read through), then the rest of the stream, so that a
    truncated or damaged compressed archive is refused before anything is written."""
    members, total = [], 0
    while (m := tf.next()) is not None:
        members.append(m)
        total += m.size if m.isfile() else 0
        if total > limits.MAX_FILE_BYTES:
            raise ValueError(f'safe_extract: {archive} member {m.name!r} declares '
                             f'{limits.nbytes(m.size)}, bringing the members to '
                             f'{limits.nbytes(total)}, more than '
                             f'{limits.limit_text("MAX_FILE_BYTES")}')
    rest = 0
    while chunk := tf.fileobj.read(1 << 20):   # checks the compressed stream's end and CRC
        rest += len(chunk)
        limits.check_file_bytes(f'safe_extract: {archive}', rest, 'MAX_FILE_BYTES',
                                'has after its last member')
    return members


def safe_extract(archive, target) -> Path:
    """Extract a .tar(.gz/.bz2/.xz) or .zip archive so that nothing lands outside `target`.

    Every member is checked before anything is written: absolute paths, '..' components,
    links that lead outside the target (directly or through a chain of the archive's own
    links), hard links to anything but a regular file of the archive, special files (devices,
    FIFOs), zip members that are encrypted or use an unreadable method, sizes the archive
    cannot hold, and members declaring more than `limits.MAX_FILE_BYTES` together or more
    than the free disk space. A truncated or damaged archive is refused as well: all raise a
    ValueError naming the archive.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    if zipfile.is_zipfile(archive):
        _safe_extract_zip(archive, target, root)
        return target
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ValueError(f'safe_extract: {archive} is neither a zip nor a tar archive (or it is '
                         f'damaged or truncated)') from e
    with tf:
        try:
            members = _read_tar_members(tf, archive)
        except (tarfile.TarError, EOFError, zlib.error, OSError, lzma.LZMAError) as e:
            raise ValueError(f'safe_extract: {archive} is a damaged or truncated archive '
                             f'({type(e).__name__}: {e})') from e
        _check_tar_members(archive, members, root, target)
        _extract_budget(archive, root, sum(m.size for m in members if m.isfile()))
        try:
            if hasattr(tarfile, 'data_filter'):
                tf.extractall(root, members=members, filter='data')  # second line of defence
            else:  # pragma: no cover - Python without extraction filters
                tf.extractall(root, members=members)
        except (tarfile.TarError, EOFError, zlib.error, OSError, lzma.LZMAError) as e:
            raise ValueError(f'safe_extract: could not extract {archive} into {target} '
                             f'({type(e).__name__}: {e})') from e
    return target


def fetch(name: str, directory=None, *, sha256: dict | None = None,
          timeout: float = 60.0) -> Path:
    """Download (and extract) a public dataset into its cache directory.

    Args:
        name: a key of `KNOWN` ('mnist', 'fashion_mnist', 'cifar10', 'bike_sharing', 'text'
            (Tiny Shakespeare), 'text8', 'parallel' (eng-fra.txt from the PyTorch tutorial's
            data.zip)).
        directory: where to put it (default `dataset_dir(name)`).
        sha256: {filename: hash} overriding or supplying hashes (for the entries without a
            published one).

    Returns:
        The directory holding the files. Files already present with the right hash are not
        fetched again.
    """
    if name not in KNOWN:
        raise ValueError(f'fetch: no download known for {name!r}; known: {sorted(KNOWN)}')
    directory = dataset_dir(name, directory)
    for remote in KNOWN[name][1]:
        want = (sha256 or {}).get(remote.filename, remote.sha256)
        dest = directory / remote.filename
        if dest.exists() and (want is None or sha256_file(dest) == want):
            pass
        else:
            download_file(remote.url, dest, sha256=want, timeout=timeout)
        if remote.extract:
            safe_extract(dest, directory)
    return directory
