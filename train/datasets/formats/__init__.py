"""Loaders for the real datasets' published file formats.

Each reads from a user-given `path` or the dataset's cache folder (`download.dataset_dir`),
validates the bytes before trusting them (magic numbers, sizes, record counts, columns) and
raises a `ValueError` naming the file and the problem. Missing files give one
`MissingDataError` saying which files to put where; `download=True` fetches them first.
Nothing is ever unpickled.
"""

from .bike import (  # noqa: F401
    BIKE_COLUMNS,
    BIKE_DROP,
    BIKE_DUMMIES,
    BIKE_INTEGER,
    BIKE_STANDARDIZE,
    BIKE_TARGETS,
    load_bike_sharing,
    read_bike_csv,
)
from .cifar import CIFAR10_CLASSES, load_cifar10, read_cifar_binary  # noqa: F401
from .idx import FASHION_CLASSES, load_fashion_mnist, load_mnist, parse_idx, read_idx  # noqa: F401
from .images import IMAGE_EXTENSIONS, load_image_folder  # noqa: F401
from .text import (  # noqa: F401
    load_parallel,
    load_text,
    load_text8,
    normalize_sentence,
    read_parallel,
    read_text8,
)
