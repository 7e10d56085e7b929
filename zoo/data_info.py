"""What a model file may know about a dataset, and what inputs it reads.

A model's config factory (``config_for(info, **overrides)`` in its ``zoo/`` file) sizes the
model for a dataset from a :class:`DataInfo` (input shape, classes or targets). A model file
declares the inputs it reads as ``INPUTS = Inputs(...)``, so that the ``zoo`` command can
refuse a dataset the model cannot read before anything is built. Nothing here reads data.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["DataInfo", "Inputs", "classes", "targets", "image_shape"]


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a config factory may know about a dataset.

    Attributes:
        input_shape: shape of one input example, e.g. ``(40,)`` or ``(8, 8, 1)``.
        n_classes: number of classes (classification), else None.
        n_targets: number of regression targets (1 for ``y: <f32>[n]``), else None.
        name: the dataset's name.
    """

    input_shape: tuple[int, ...]
    n_classes: int | None = None
    n_targets: int | None = None
    name: str = ""

    @property
    def n_features(self) -> int:
        """``prod(input_shape)``: the input size once flattened."""
        return math.prod(self.input_shape)


def classes(info: DataInfo) -> int:
    """``info.n_classes``; a ValueError for a dataset without classes."""
    if info.n_classes is None:
        raise ValueError(f"dataset {info.name!r} has no classes; this model is a classifier")
    return info.n_classes


def targets(info: DataInfo) -> int:
    """The number of regression targets (1 when unknown)."""
    return info.n_targets or 1


def image_shape(info: DataInfo, model: str) -> tuple[int, int, int]:
    """``info.input_shape`` as ``(height, width, channels)``; a ValueError for non-images."""
    if len(info.input_shape) != 3:
        raise ValueError(f"{model}: needs images [height, width, channels], dataset "
                         f"{info.name!r} has inputs of shape {info.input_shape}")
    return tuple(info.input_shape)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The inputs a model reads: one example's shapes and the kind of its values.

    Attributes:
        shapes: the accepted shapes of ``x`` without the example axis (``None`` in a shape
            matches any size), or ``'any'`` (any shape; the model flattens it).
        kind: ``'float'`` (real values) or ``'ids'`` (integer token ids).
        words: what the model reads, for an error message, e.g. ``'feature vectors x [n,
            features]'``.
    """

    shapes: tuple | str
    kind: str
    words: str

    def accepts(self, x) -> bool:
        """Whether ``x`` (``[n, ...]``, one row per example) is such input."""
        x = np.asarray(x)
        example = x.shape[1:]
        fits = self.shapes == "any" or any(
            len(example) == len(s) and all(a is None or a == b
                                           for a, b in zip(s, example, strict=True))
            for s in self.shapes)
        dtype = np.floating if self.kind == "float" else np.integer
        return fits and np.issubdtype(x.dtype, dtype)
