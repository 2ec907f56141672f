"""Augmentation recipes (albumentations 2.0.x) and the single image normalisation of the data layer.

Every pipeline returned by :func:`build_transforms` takes the albumentations call convention
``transform(image=HxWxC uint8, mask=HxW uint8 in {0, 1})`` and returns a dict whose ``image`` is
float32, ``size x size x C`` and normalised **once**::

    image = (pixel / 255 - mean) / std

with ImageNet statistics for RGB input (``in_channels=3``) and ``mean = std = 0.5`` for grey input
(``in_channels=1``, i.e. the grey image is mapped to [-1, 1]; ImageNet has no agreed grey statistics).
The authors' reference code divided the already-normalised tensor by 255 a second time and mixed up BGR/RGB
channel order; neither is reproduced here: images are RGB throughout.

Masks go through the same spatial transforms with nearest-neighbour interpolation, so they stay binary.

Recipes:
    ``"reference"``: RandomRotate90, HorizontalFlip, VerticalFlip, Resize, Normalize (the paper's recipe).
    ``"kvasir"``: Resize, the reference flips/rotations, Affine (scale 0.9-1.1, translate +-5 %, rotate
    +-15 degrees, p=0.5), a modest ElasticTransform (displacements of at most ~2 px, p=0.2), ColorJitter
    (brightness/contrast/saturation 0.2, hue 0.02, p=0.5), Normalize. Resize comes first so the warps run at the
    training size.
    ``"none"``: Resize, Normalize (evaluation).

``train=False`` always gives the ``"none"`` pipeline (augmentations are never applied at evaluation), but the
recipe name is still checked.

albumentations is imported when a pipeline is built, not when this module is imported: it is slow to import
and, unless the environment variable ``NO_ALBUMENTATIONS_UPDATE=1`` is set by the entry point, it checks PyPI
for updates at import time.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = [
    "GREY_MEAN",
    "GREY_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RECIPES",
    "build_transforms",
    "normalization_stats",
    "normalize_image",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
GREY_MEAN: tuple[float] = (0.5,)
GREY_STD: tuple[float] = (0.5,)
MAX_PIXEL_VALUE = 255.0

RECIPES: tuple[str, ...] = ("kvasir", "none", "reference")


def _check_in_channels(in_channels: int) -> None:
    if in_channels not in (1, 3):
        raise ValueError(
            f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels!r}; "
            "pass in_channels=3 for colour endoscopy images or 1 for grey modalities."
        )


def normalization_stats(in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and standard deviation (on the 0..1 scale) used to normalise images.

    Args:
        in_channels: 3 for RGB (ImageNet statistics) or 1 for grey (mean 0.5, std 0.5).

    Returns:
        ``(mean, std)``, one value per channel.

    Raises:
        ValueError: if ``in_channels`` is not 1 or 3.
    """
    _check_in_channels(in_channels)
    if in_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return GREY_MEAN, GREY_STD


def normalize_image(image: np.ndarray, in_channels: int) -> np.ndarray:
    """Normalise a uint8 image exactly as the ``Normalize`` step of :func:`build_transforms` does.

    Args:
        image: ``H x W x C`` uint8 array with ``C == in_channels``.
        in_channels: 1 or 3; selects the statistics (see :func:`normalization_stats`).

    Returns:
        float32 array ``(image / 255 - mean) / std`` of the same shape.

    Raises:
        ValueError: if the array is not ``H x W x in_channels`` uint8.
    """
    mean, std = normalization_stats(in_channels)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != in_channels:
        raise ValueError(
            f"normalize_image expects an H x W x {in_channels} uint8 array, got shape {image.shape} "
            f"dtype {image.dtype}; read images with lgmsnet.data.read_image(path, in_channels={in_channels})."
        )
    scaled = image.astype(np.float32) / np.float32(MAX_PIXEL_VALUE)
    return (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def _import_albumentations() -> Any:
    try:
        import albumentations as A  # noqa: N812 - the library's conventional alias
    except ImportError as exc:  # pragma: no cover - core dependency
        raise ImportError(
            "lgmsnet.data.build_transforms needs albumentations 2.0.x: pip install 'albumentations>=2.0,<2.1'"
        ) from exc
    return A


def build_transforms(recipe: str, size: int, train: bool, in_channels: int = 3) -> Any:
    """Build an albumentations pipeline for one recipe.

    Args:
        recipe: ``"reference"``, ``"kvasir"`` or ``"none"`` (see the module docstring).
        size: output height and width in pixels (images are resized to a square, as in the reference).
        train: when False the evaluation pipeline (resize + normalise) is returned whatever the recipe.
        in_channels: 3 (RGB, ImageNet statistics) or 1 (grey, mean 0.5 / std 0.5).

    Returns:
        An ``albumentations.Compose`` called as ``t(image=..., mask=...)``; its ``image`` output is float32
        ``size x size x in_channels``, its ``mask`` output keeps the input dtype and values.

    Raises:
        ValueError: unknown recipe (the message lists the valid ones), non-positive size, or in_channels
            other than 1 or 3.
    """
    if recipe not in RECIPES:
        raise ValueError(f"Unknown augmentation recipe {recipe!r}; valid recipes are {list(RECIPES)}.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (pixels), got {size!r}; e.g. size=256.")
    mean, std = normalization_stats(in_channels)
    A = _import_albumentations()
    import cv2

    resize = A.Resize(size, size, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST)
    normalize = A.Normalize(mean=mean, std=std, max_pixel_value=MAX_PIXEL_VALUE)

    if not train or recipe == "none":
        steps = [resize, normalize]
    elif recipe == "reference":
        steps = [
            A.RandomRotate90(p=0.5),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            resize,
            normalize,
        ]
    else:  # "kvasir": resize first so that the costly elastic warp runs at the training size
        steps = [
            resize,
            A.RandomRotate90(p=0.5),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Affine(
                scale=(0.9, 1.1),
                translate_percent=(-0.05, 0.05),
                rotate=(-15, 15),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.5,
            ),
            A.ElasticTransform(
                alpha=120.0,  # with sigma=10: mean displacement ~0.6 px, max ~2 px
                sigma=10.0,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.2,
            ),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
            normalize,
        ]
    logger.debug("Built %s transforms (train=%s, size=%d, in_channels=%d)", recipe, train, size, in_channels)
    return A.Compose(steps)
