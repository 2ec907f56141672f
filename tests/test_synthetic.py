"""Tests of the synthetic lesion generator: determinism, styles, empty masks, folder-dataset validity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageFilter

from lgmsnet.data import DatasetError, SegmentationDataset, scan_pairs, synthesize, validate_pairs


def _pixels(path: Path) -> np.ndarray:
    """Decoded pixels of a file, closing it (no ResourceWarning)."""
    with Image.open(path) as image:
        return np.array(image)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mean_colour(root: Path) -> np.ndarray:
    return np.mean([_pixels(p).astype(np.float64).mean(axis=(0, 1)) for p in (root / "images").iterdir()], axis=0)


@pytest.fixture(scope="module")
def source_and_target(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("synthetic")
    source = synthesize(base / "source", 10, "source", seed=1, size=64)
    return source, synthesize(base / "target", 10, "target", seed=1, size=64)


def test_same_seed_gives_identical_bytes(tmp_path: Path, source_and_target: tuple[Path, Path]) -> None:
    again = synthesize(tmp_path / "again", 10, "source", seed=1, size=64)
    assert _files(again) == _files(source_and_target[0])
    other = synthesize(tmp_path / "other", 10, "source", seed=2, size=64)
    assert _files(other)["images/synth-source-0000.png"] != _files(again)["images/synth-source-0000.png"]


def test_layout_metadata_and_masks(source_and_target: tuple[Path, Path]) -> None:
    source, _ = source_and_target
    pairs = scan_pairs(source)
    assert [p.stem for p in pairs] == [f"synth-source-{i:04d}" for i in range(10)]
    report = validate_pairs(pairs)
    assert report.ok and set(report.sizes.values()) == {(64, 64)}
    assert report.n_empty_masks == 1  # 10 % of 10 images have no lesion
    assert report.n_non_binary_masks == 0  # masks are exactly {0, 255}
    for pair in pairs:
        assert _pixels(pair.image_path).shape == (64, 64, 3)
        assert set(np.unique(_pixels(pair.mask_path)).tolist()) <= {0, 255}
    info = yaml.safe_load((source / "dataset.yaml").read_text())
    assert info["synthetic"] is True and "SYNTHETIC" in info["description"] and "not medical" in info["description"]
    assert (info["domain"], info["seed"], info["n"]) == ("source", 1, 10)
    assert "SYNTHETIC" in (source / "SYNTHETIC_README.txt").read_text()
    dataset = SegmentationDataset(source)
    assert dataset.info["synthetic"] is True and dataset[0]["image"].shape == (3, 64, 64)


def test_source_and_target_styles_differ(source_and_target: tuple[Path, Path]) -> None:
    source, target = (_mean_colour(root) for root in source_and_target)
    assert np.abs(source - target).max() > 30  # clear colour cast
    assert source[0] - source[2] > 60 and target.mean() < source.mean()  # pinkish-red source, darker target


def test_lesions_differ_from_their_surroundings(source_and_target: tuple[Path, Path]) -> None:
    for root in source_and_target:
        for pair in scan_pairs(root):
            mask = _pixels(pair.mask_path) > 0
            if mask.any():
                grown = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(9))
                ring = (np.asarray(grown) > 0) & ~mask
                image = _pixels(pair.image_path).astype(np.float64)
                assert np.abs(image[mask].mean(axis=0) - image[ring].mean(axis=0)).max() > 8, pair.stem


def test_empty_fraction_and_arguments(tmp_path: Path) -> None:
    none_empty = synthesize(tmp_path / "a", 4, "target", size=32, empty_fraction=0.0)
    assert validate_pairs(scan_pairs(none_empty)).n_empty_masks == 0
    all_empty = synthesize(tmp_path / "b", 3, "target", size=32, empty_fraction=1.0)
    assert validate_pairs(scan_pairs(all_empty)).n_empty_masks == 3
    with pytest.raises(ValueError, match="source"):
        synthesize(tmp_path / "c", 2, domain="mri")
    with pytest.raises(ValueError, match="n must"):
        synthesize(tmp_path / "c", 0)
    with pytest.raises(DatasetError, match="overwrite=True"):
        synthesize(none_empty, 2, size=32)
    synthesize(none_empty, 2, "source", size=32, overwrite=True)
    assert [p.stem for p in scan_pairs(none_empty)] == ["synth-source-0000", "synth-source-0001"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary folders left
