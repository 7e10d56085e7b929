"""Folders of image files (one subfolder per class, or loose images)."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

from .. import download as dl
from .. import limits
from ..core import Dataset, make_meta, positive_int, register
from ..preprocessing import train_val_split
from .files import no_such_path

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
                      test_fraction: float = 0.1, seed: int = 0) -> Dataset:
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
        test_fraction: share of images held out as test (seeded; default 0.1, so that a
            generator can be scored on images it never saw). 0 gives an empty test set, as
            does a folder too small for `round(test_fraction * n)` to reach one image.
        seed: seed of the held-out split.

    Returns:
        Dataset with x <f32>[n, height, width, channels] in [0, 1] and y <int32>[n].
    """
    fn = 'load_image_folder'
    if mode not in ('RGB', 'L'):
        raise ValueError(f"{fn}: mode must be 'RGB' or 'L', got {mode!r}")
    h, w = _image_size(size, fn)
    crop = _crop_box(crop, fn)
    if isinstance(test_fraction, (bool, np.bool_)) or not isinstance(
            test_fraction, (int, float, np.integer, np.floating)) or not 0 <= test_fraction < 1:
        raise ValueError(f'{fn}: test_fraction must be a number in [0, 1), got '
                         f'{test_fraction!r}')
    directory = dl.dataset_dir('image_folder', path)
    if path is not None and not directory.exists():
        raise no_such_path('image_folder', directory, 'a folder of images or of class '
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
    n_test = int(round(float(test_fraction) * len(files)))
    if n_test == 0:
        return Dataset(x, y, x[:0], y[:0], meta=meta)
    tr, _, te, _ = train_val_split(np.arange(len(files)), validation=n_test, seed=seed)
    meta['files'] = [str(files[i]) for i in tr]
    return Dataset(x[tr], y[tr], x[te], y[te], meta=meta)
