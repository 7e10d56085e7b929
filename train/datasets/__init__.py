"""Datasets for jaxzoo: one API over embedded offline defaults and real file formats.

    from train import datasets
    ds = datasets.load('mnist1d', validation=0.1)
    ds.x_train.shape, ds.meta['n_classes']

`load(name, **options) -> Dataset`, `names()`, the loaders' options in `loader(name).__doc__`.
Real datasets (MNIST, Fashion-MNIST, CIFAR-10 binary, bike sharing, text, parallel corpora,
text8, image folders) are read from a given path or the cache directory (`cache_dir()`:
`$JAXZOO_DATA`, default `~/.cache/jaxzoo`); `download.fetch(name)` fetches the public ones with
SHA-256 checks. Every loader checks sizes (declared by a file, found on disk, or asked for by an
option) against the caps in `limits` before it allocates; a user with larger data raises them.
"""

# importing the loader modules registers their datasets
from . import (  # noqa: F401
    download,
    embedded,
    formats,
    limits,
    sequences,
    standins,
    synthetic,
    text,
)
from .core import Dataset, cache_dir, load, loader, names, split_validation
from .download import MissingDataError, fetch
from .preprocessing import Scaler, min_max, one_hot, standardize, train_val_split
from .vocab import BOS, EOS, PAD, UNK, CharVocab, Vocabulary, WordVocab, pad_sequences

__all__ = [
    'BOS', 'EOS', 'PAD', 'UNK', 'CharVocab', 'Dataset', 'MissingDataError', 'Scaler',
    'Vocabulary', 'WordVocab', 'cache_dir', 'fetch', 'load', 'loader', 'min_max', 'names',
    'one_hot', 'pad_sequences',
    'split_validation', 'standardize', 'train_val_split',
]
