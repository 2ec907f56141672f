"""Data layer: folder datasets, leakage-aware splits, preprocessing cache, synthetic data and augmentations.

Pure PyTorch/numpy/Pillow (plus tifffile for TIFFs Pillow cannot open, and albumentations, imported when a
transform pipeline is built). Nothing here imports kfp, mlflow, dvc or great_expectations.
"""

from lgmsnet.data.cache import build_cache, read_cache_index
from lgmsnet.data.folder import (
    DEFAULT_MASK_THRESHOLD,
    IMAGE_EXTENSIONS,
    DatasetError,
    Pair,
    SegmentationDataset,
    ValidationReport,
    dataset_fingerprint,
    load_dataset_info,
    load_groups,
    read_image,
    read_mask,
    scan_pairs,
    validate_pairs,
)
from lgmsnet.data.splits import (
    DEFAULT_HASH_THRESHOLD,
    DEFAULT_RATIOS,
    SPLIT_NAMES,
    SplitManifest,
    hamming_distance,
    image_dhash,
    load_manifest,
    make_splits,
    near_duplicate_groups,
    write_manifest,
)
from lgmsnet.data.synthetic import DOMAINS, DomainStyle, synthesize
from lgmsnet.data.transforms import RECIPES, build_transforms, normalization_stats, normalize_image

__all__ = [
    "DEFAULT_HASH_THRESHOLD",
    "DEFAULT_MASK_THRESHOLD",
    "DEFAULT_RATIOS",
    "DOMAINS",
    "IMAGE_EXTENSIONS",
    "RECIPES",
    "SPLIT_NAMES",
    "DatasetError",
    "DomainStyle",
    "Pair",
    "SegmentationDataset",
    "SplitManifest",
    "ValidationReport",
    "build_cache",
    "build_transforms",
    "dataset_fingerprint",
    "hamming_distance",
    "image_dhash",
    "load_dataset_info",
    "load_groups",
    "load_manifest",
    "make_splits",
    "near_duplicate_groups",
    "normalization_stats",
    "normalize_image",
    "read_cache_index",
    "read_image",
    "read_mask",
    "scan_pairs",
    "synthesize",
    "validate_pairs",
    "write_manifest",
]
