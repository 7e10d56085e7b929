"""The GAN training loop and its tools, for existing imports: they live in
:mod:`train.drivers.gan` (the GAN driver of the ``zoo`` command)."""

from train.drivers.gan import (  # noqa: F401
    GANResult,
    evaluate_gan,
    fit_gan,
    pad_images,
    save_samples,
    scale_images,
)

__all__ = ["GANResult", "evaluate_gan", "fit_gan", "pad_images", "save_samples", "scale_images"]
