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
import os
import posixpath
import tarfile
import tempfile
import zipfile
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

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


def safe_extract(archive, target) -> Path:
    """Extract a .tar(.gz/.bz2/.xz) or .zip archive so that nothing lands outside `target`.

    Every member is checked before anything is written: absolute paths, '..' components,
    links pointing outside the target, and special files (devices, FIFOs) are rejected with a
    ValueError naming the member.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member_name(info.filename, archive)
                if not _inside(root, info.filename):
                    raise ValueError(f'safe_extract: {archive} member {info.filename!r} '
                                     f'would land outside {target}')
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise ValueError(f'safe_extract: {archive} member {info.filename!r} is a '
                                     f'symbolic link')
            zf.extractall(root)
        return target
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as e:
        raise ValueError(f'safe_extract: {archive} is neither a zip nor a tar archive') from e
    with tf:
        members = tf.getmembers()
        for m in members:
            _check_member_name(m.name, archive)
            if not _inside(root, m.name):
                raise ValueError(f'safe_extract: {archive} member {m.name!r} would land '
                                 f'outside {target}')
            if m.issym() or m.islnk():
                link = m.linkname if m.islnk() else posixpath.join(posixpath.dirname(m.name),
                                                                    m.linkname)
                if posixpath.isabs(m.linkname) or not _inside(root, link):
                    raise ValueError(f'safe_extract: {archive} member {m.name!r} links to '
                                     f'{m.linkname!r}, outside {target}')
            elif not (m.isfile() or m.isdir()):
                raise ValueError(f'safe_extract: {archive} member {m.name!r} is a special file')
        if hasattr(tarfile, 'data_filter'):
            tf.extractall(root, members=members, filter='data')  # second line of defence
        else:  # pragma: no cover - Python without extraction filters
            tf.extractall(root, members=members)
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
