"""Tests of the data layer: folder datasets, bad inputs, splits, cache, transforms (tiny images, no downloads)."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no PyPI call when albumentations is imported

from lgmsnet.data import (
    IMAGE_EXTENSIONS,
    RECIPES,
    DatasetError,
    SegmentationDataset,
    build_cache,
    build_transforms,
    dataset_fingerprint,
    hamming_distance,
    image_dhash,
    load_dataset_info,
    load_groups,
    load_manifest,
    make_splits,
    normalization_stats,
    read_cache_index,
    read_image,
    read_mask,
    scan_pairs,
    validate_pairs,
    write_manifest,
)
from lgmsnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD

REPO = Path(__file__).resolve().parents[1]
KVASIR_NEAR_DUPLICATES = [
    ("cju886ryxnsl50801r93jai7q", "cju8amfdtqi4x09871tygrgqe"),
    ("cju30bmab08bi0835mvlr6e0r", "cju77k828z46w0871r0avuoo9"),
    ("cju76lsehyia10987u54vn8rb", "cju772304yw5t0818vbw8kkjf"),
]


# ----------------------------------------------------------------------------------------------- helpers


def _save(path: Path, array: np.ndarray, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _pixels(path: Path) -> np.ndarray:
    """Decoded pixels of a file, closing it (no ResourceWarning)."""
    with Image.open(path) as image:
        return np.array(image)


def _texture(seed: int, size: int = 48) -> np.ndarray:
    """A smooth random grey texture in 10..240 (distinct seeds give very different dHashes)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(10, 240, size=(6, 6)).astype(np.float32)
    big = np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC))
    return np.clip(big, 10, 240).round().astype(np.uint8)


def _disk_mask(size: int = 48, radius: int = 10) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2, 255, 0).astype(np.uint8)


def _make_dataset(root: Path, n: int = 10, size: int = 48, seed0: int = 0) -> Path:
    for i in range(n):
        grey = _texture(seed0 + i, size)
        _save(root / "images" / f"img{i:02d}.png", np.stack([grey, grey // 2, 255 - grey], axis=2))
        _save(root / "masks" / f"img{i:02d}.png", _disk_mask(size, 4 + i % 8))
    return root


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    return _make_dataset(tmp_path / "ds")


# ------------------------------------------------------------------------------------------ pairing/read


def test_pairs_by_stem_not_by_listing_order(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    # image and mask names sort differently and mix extensions/case; content encodes the stem
    stems = ["zeta", "Alpha", "mid_3", "b"]
    image_ext = [".png", ".JPG", ".bmp", ".tiff"]
    mask_ext = [".bmp", ".png", ".TIF", ".PNG"]
    for k, stem in enumerate(stems):
        _save(root / "images" / f"{stem}{image_ext[k]}", np.full((20, 16, 3), 40 * (k + 1), np.uint8))
        mask = np.zeros((20, 16), np.uint8)
        mask[: k + 1] = 255  # k+1 foreground rows
        _save(root / "masks" / f"{stem}{mask_ext[k]}", mask)
    pairs = scan_pairs(root)
    assert [p.stem for p in pairs] == sorted(stems)
    for pair in pairs:
        assert pair.image_path.stem == pair.mask_path.stem == pair.stem
    dataset = SegmentationDataset(root, transform=None)
    for item in (dataset[i] for i in range(len(dataset))):
        k = stems.index(item["stem"])
        assert item["mask"].shape == (1, 20, 16)
        assert int(item["mask"].sum()) == (k + 1) * 16
        raw = read_image(root / "images" / f"{item['stem']}{image_ext[k]}")
        assert abs(int(raw[..., 0].mean()) - 40 * (k + 1)) <= 2  # JPEG tolerance


def test_mask_binarisation_at_threshold(tmp_path: Path) -> None:
    values = np.array([[0, 1, 126, 127], [128, 129, 200, 255]], np.uint8)
    path = _save(tmp_path / "m.png", values)
    assert read_mask(path).tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]
    assert read_mask(path, threshold=0).tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]
    rgb = _save(tmp_path / "rgb.png", np.stack([values] * 3, axis=2))
    assert read_mask(rgb).tolist() == read_mask(path).tolist()  # colour mask -> luminance
    with pytest.raises(ValueError, match="mask_threshold"):
        read_mask(path, threshold=255)


def test_jpeg_noisy_mask_is_binarised(tmp_path: Path) -> None:
    clean = _disk_mask(64, 20)
    path = _save(tmp_path / "m.jpg", np.stack([clean] * 3, axis=2), quality=70)
    with Image.open(path) as image:
        grey = np.asarray(image.convert("L"))
    assert np.count_nonzero((grey != 0) & (grey != 255)) > 0  # the file really is noisy
    mask = read_mask(path)
    assert set(np.unique(mask).tolist()) <= {0, 1}
    assert np.mean(mask != (clean > 127)) < 0.02


def test_zero_one_label_mask_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _save(tmp_path / "m.png", (_disk_mask() > 0).astype(np.uint8))
    assert read_mask(path).sum() == 0
    assert "mask_threshold=0" in caplog.text
    assert read_mask(path, threshold=0).sum() > 0


def test_read_image_channel_conversion(tmp_path: Path) -> None:
    grey = _texture(1, 24)
    grey_path = _save(tmp_path / "g.png", grey)
    rgb = read_image(grey_path, 3)
    assert rgb.shape == (24, 24, 3) and rgb.dtype == np.uint8
    assert all(np.array_equal(rgb[..., c], grey) for c in range(3))
    colour = np.stack([grey, grey // 2, 255 - grey], axis=2)
    colour_path = _save(tmp_path / "c.png", colour)
    one = read_image(colour_path, 1)
    assert one.shape == (24, 24, 1)
    assert np.array_equal(one[..., 0], np.asarray(Image.fromarray(colour).convert("L")))
    with pytest.raises(ValueError, match="in_channels"):
        read_image(colour_path, 2)


def test_tiff_that_pillow_cannot_open_falls_back_to_tifffile(tmp_path: Path) -> None:
    frame = np.stack([_texture(2, 20), _texture(3, 20), _texture(4, 20)], axis=2)
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, frame, photometric="minisblack", planarconfig="contig")  # like CVC-ClinicDB
    with pytest.raises(OSError), Image.open(path) as image:  # precondition: Pillow really cannot open it
        image.load()
    assert np.array_equal(read_image(path, 3), frame)
    assert len(image_dhash(path)) == 64


def test_dataset_item_contract_and_normalisation(small_dataset: Path) -> None:
    dataset = SegmentationDataset(small_dataset)
    assert len(dataset) == 10 and dataset.stems == sorted(dataset.stems)
    item = dataset[3]
    assert item["stem"] == "img03"
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 48, 48)
    assert item["mask"].dtype == torch.float32 and item["mask"].shape == (1, 48, 48)
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    raw = read_image(small_dataset / "images" / "img03.png")
    expected = (raw[5, 7] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(item["image"][:, 5, 7].numpy(), expected, atol=1e-5)

    subset = SegmentationDataset(small_dataset, stems=["img05", "img01"], in_channels=1)
    assert subset.stems == ["img05", "img01"] and subset[0]["image"].shape == (1, 48, 48)
    with pytest.raises(DatasetError, match="img99"):
        SegmentationDataset(small_dataset, stems=["img01", "img99"])


def test_dataset_exposes_groups_and_info(small_dataset: Path) -> None:
    (small_dataset / "groups.csv").write_text("stem,group\nimg00,seq1\nimg01,seq1\n", encoding="utf-8")
    (small_dataset / "dataset.yaml").write_text("name: tiny\nsource: unit test\n", encoding="utf-8")
    dataset = SegmentationDataset(small_dataset)
    assert dataset.groups == {"img00": "seq1", "img01": "seq1"}
    assert dataset.info == {"name": "tiny", "source": "unit test"}
    assert load_dataset_info(small_dataset.parent) == {}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("stem,sequence\nimg00,a\n", "'stem' and 'group'"),
        ("stem,group\nimg00,\n", "line 2"),
        ("stem,group\nimg00,a\nimg00,b\n", "img00"),
    ],
)
def test_bad_groups_csv(small_dataset: Path, content: str, match: str) -> None:
    (small_dataset / "groups.csv").write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=match):
        load_groups(small_dataset)


def test_validate_pairs_report(small_dataset: Path) -> None:
    report = validate_pairs(scan_pairs(small_dataset))
    assert report.ok and report.n_pairs == 10 and report.n_empty_masks == 0
    assert report.sizes["img00"] == (48, 48)
    assert 0.0 < report.foreground_fraction["img00"] < 1.0
    json.dumps(report.to_dict())


# ---------------------------------------------------------------------------------------------- bad inputs


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _break_truncated_png(root: Path) -> str:
    _truncate(root / "images" / "img04.png")
    return "img04.png"


def _break_truncated_jpeg(root: Path) -> str:
    (root / "images" / "img04.png").unlink()
    path = _save(root / "images" / "img04.jpg", np.stack([_texture(9)] * 3, axis=2), quality=90)
    _truncate(path, 0.4)
    return "img04.jpg"


def _break_not_an_image(root: Path) -> str:
    (root / "masks" / "img02.png").write_bytes(b"this is not a PNG file")
    return "img02.png"


def _break_size_mismatch(root: Path) -> str:
    _save(root / "masks" / "img06.png", _disk_mask(40))
    return "img06.png"


def _break_missing_mask(root: Path) -> str:
    (root / "masks" / "img03.png").unlink()
    return "img03.png"


def _break_orphan_mask(root: Path) -> str:
    _save(root / "masks" / "extra.png", _disk_mask())
    return "extra.png"


def _break_duplicate_stem(root: Path) -> str:
    _save(root / "images" / "img01.jpg", np.zeros((48, 48, 3), np.uint8))
    return "img01.jpg"


def _break_missing_folder(sub: str) -> Callable[[Path], str]:
    def breaker(root: Path) -> str:
        shutil.rmtree(root / sub if sub else root)
        return sub or root.name

    return breaker


STRUCTURAL_CASES: dict[str, Callable[[Path], str]] = {
    "missing mask": _break_missing_mask,
    "orphan mask": _break_orphan_mask,
    "duplicate stem": _break_duplicate_stem,
    "missing images folder": _break_missing_folder("images"),
    "missing masks folder": _break_missing_folder("masks"),
    "missing dataset folder": _break_missing_folder(""),
}
CONTENT_CASES: dict[str, Callable[[Path], str]] = {
    "truncated png": _break_truncated_png,
    "truncated jpeg": _break_truncated_jpeg,
    "not an image": _break_not_an_image,
    "size mismatch": _break_size_mismatch,
}


@pytest.mark.parametrize("case", sorted(STRUCTURAL_CASES))
def test_structural_problems_raise_naming_the_file(small_dataset: Path, case: str) -> None:
    name = STRUCTURAL_CASES[case](small_dataset)
    with pytest.raises(DatasetError, match=name):
        scan_pairs(small_dataset)
    with pytest.raises(DatasetError, match=name):
        SegmentationDataset(small_dataset)


def test_empty_dataset_raises(tmp_path: Path) -> None:
    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "masks").mkdir()
    (tmp_path / "ds" / "images" / "notes.txt").write_text("not an image", encoding="utf-8")
    with pytest.raises(DatasetError, match="empty"):
        scan_pairs(tmp_path / "ds")


@pytest.mark.parametrize("case", sorted(CONTENT_CASES))
def test_content_problems_raise_naming_the_file(small_dataset: Path, case: str) -> None:
    name = CONTENT_CASES[case](small_dataset)
    pairs = scan_pairs(small_dataset)  # cheap scan does not open files
    with pytest.raises(DatasetError, match=name):
        validate_pairs(pairs)
    report = validate_pairs(pairs, raise_on_error=False)
    assert len(report.errors) == 1 and name in report.errors[0]
    dataset = SegmentationDataset(small_dataset)
    index = next(i for i, p in enumerate(dataset.pairs) if name in (p.image_path.name, p.mask_path.name))
    with pytest.raises(DatasetError, match=name):
        dataset[index]
    with pytest.raises(DatasetError, match=name):
        build_cache(small_dataset, small_dataset.parent / "cache", 16)


# ------------------------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_content_addressed(small_dataset: Path, tmp_path: Path) -> None:
    fp = dataset_fingerprint(small_dataset)
    assert len(fp) == 64 and fp == dataset_fingerprint(small_dataset)
    copy = shutil.copytree(small_dataset, tmp_path / "elsewhere")  # new location, new mtimes
    (copy / "dataset.yaml").write_text("name: irrelevant\n", encoding="utf-8")
    assert dataset_fingerprint(copy) == fp
    _save(copy / "masks" / "img00.png", _disk_mask(48, 13))
    changed = dataset_fingerprint(copy)
    assert changed != fp
    (copy / "images" / "img09.png").rename(copy / "images" / "img09.PNG")  # a rename is a change too
    assert dataset_fingerprint(copy) not in (fp, changed)
    with pytest.raises(DatasetError, match="masks"):
        dataset_fingerprint(tmp_path / "missing")


# ------------------------------------------------------------------------------------------------ splits


def _split_dataset(root: Path, n: int = 30) -> Path:
    _make_dataset(root, n=n, size=40, seed0=100)
    return root


def test_dhash_detects_one_grey_level_shift(tmp_path: Path) -> None:
    grey = _texture(7)
    a = image_dhash(_save(tmp_path / "a.png", grey))
    b = image_dhash(_save(tmp_path / "b.png", grey + 1))
    c = image_dhash(_save(tmp_path / "c.png", _texture(8)))
    assert hamming_distance(a, b) <= 2
    assert hamming_distance(a, c) > 40


def test_split_determinism_and_roundtrip(tmp_path: Path) -> None:
    root = _split_dataset(tmp_path / "ds")
    first, second = make_splits(root, seed=3), make_splits(root, seed=3)
    assert first.to_dict() == second.to_dict()
    path_a = write_manifest(first, tmp_path / "a" / "splits.json")
    path_b = write_manifest(second, tmp_path / "b" / "splits.json")
    assert path_a.read_bytes() == path_b.read_bytes()
    assert sorted(os.listdir(path_a.parent)) == ["splits.json"]  # no temporary file left behind
    loaded = load_manifest(path_a)
    assert loaded == first
    data = json.loads(path_a.read_text())
    assert {"seed", "ratios", "fingerprint", "train", "val", "test", "groups"} <= data.keys()
    assert data["fingerprint"] == dataset_fingerprint(root)
    assert (len(first.train), len(first.val), len(first.test)) == (21, 3, 6)
    assert sorted(first.train + first.val + first.test) == [p.stem for p in scan_pairs(root)]
    other = make_splits(root, seed=4)
    assert (other.train, other.val, other.test) != (first.train, first.val, first.test)
    assert make_splits(root, seed=3, previous=first).to_dict() == first.to_dict()  # hash cache


def test_near_duplicates_and_groups_stay_in_one_split(tmp_path: Path) -> None:
    root = _split_dataset(tmp_path / "ds", n=20)
    near = _pixels(root / "images" / "img05.png").astype(np.int16) + 1  # +1 grey level
    _save(root / "images" / "dup.png", near.astype(np.uint8))
    shutil.copy(root / "masks" / "img05.png", root / "masks" / "dup.png")
    sequence = [f"img{i:02d}" for i in range(10, 16)]
    (root / "groups.csv").write_text(
        "stem,group\n" + "".join(f"{s},seq-A\n" for s in sequence) + "img00,seq-B\nimg01,seq-B\n", encoding="utf-8"
    )
    for seed in range(8):
        manifest = make_splits(root, seed=seed)
        assert manifest.split_of("dup") == manifest.split_of("img05")
        assert len({manifest.split_of(s) for s in sequence}) == 1
        assert manifest.split_of("img00") == manifest.split_of("img01")
        assert manifest.group_violations() == []
    assert manifest.groups["near-duplicate:dup"] == ["dup", "img05"]
    assert manifest.groups["seq-A"] == sequence
    disabled = make_splits(root, seed=0, hash_threshold=-1)
    assert disabled.hashes == {} and "near-duplicate:dup" not in disabled.groups


def test_split_argument_and_manifest_errors(tmp_path: Path) -> None:
    root = _split_dataset(tmp_path / "ds", n=6)
    with pytest.raises(ValueError, match="ratios"):
        make_splits(root, ratios=(0.5, 0.2, 0.2))
    (root / "groups.csv").write_text("stem,group\nghost,seq\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="ghost"):
        make_splits(root)
    (root / "groups.csv").unlink()
    path = write_manifest(make_splits(root), tmp_path / "m.json")
    data = json.loads(path.read_text())
    data["test"].append(data["train"][0])
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="two splits"):
        load_manifest(path)
    path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"m\.json"):
        load_manifest(path)


# ------------------------------------------------------------------------------------------------- cache


def test_cache_builds_reuses_and_rebuilds(small_dataset: Path, tmp_path: Path) -> None:
    (small_dataset / "groups.csv").write_text("stem,group\nimg00,s\nimg01,s\n", encoding="utf-8")
    cache = build_cache(small_dataset, tmp_path / "cache", 16)
    index = read_cache_index(cache)
    assert index is not None and index["size"] == 16 and index["fingerprint"] == dataset_fingerprint(small_dataset)
    assert [p.stem for p in scan_pairs(cache)] == [p.stem for p in scan_pairs(small_dataset)]
    mask = _pixels(cache / "masks" / "img03.png")
    assert mask.shape == (16, 16) and set(np.unique(mask).tolist()) <= {0, 255}
    assert _pixels(cache / "images" / "img03.png").shape[:2] == (16, 16)
    assert load_groups(cache) == load_groups(small_dataset)
    item = SegmentationDataset(cache)[0]
    assert item["image"].shape == (3, 16, 16) and item["mask"].shape == (1, 16, 16)

    marker = cache / "images" / "marker.txt"
    marker.write_text("still here if reused", encoding="utf-8")
    assert build_cache(small_dataset, cache, 16) == cache and marker.exists()  # reused
    build_cache(small_dataset, cache, 24)  # size changed -> rebuilt
    assert not marker.exists() and read_cache_index(cache)["size"] == 24
    assert _pixels(cache / "images" / "img00.png").shape[:2] == (24, 24)
    _save(small_dataset / "images" / "img00.png", np.zeros((48, 48, 3), np.uint8))  # content changed -> rebuilt
    build_cache(small_dataset, cache, 24)
    assert read_cache_index(cache)["fingerprint"] == dataset_fingerprint(small_dataset)
    assert _pixels(cache / "images" / "img00.png").max() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "ds"]  # no temporary folders left


def test_cache_refuses_to_overwrite_a_foreign_folder(small_dataset: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"not an lgmsnet cache"):
        build_cache(small_dataset, foreign, 16)
    assert (foreign / "thesis.tex").exists()


# -------------------------------------------------------------------------------------------- transforms


def test_unknown_recipe_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="reference") as info:
        build_transforms("fancy", 32, True, 3)
    assert all(name in str(info.value) for name in RECIPES)
    with pytest.raises(ValueError, match="in_channels"):
        build_transforms("none", 32, False, 2)
    with pytest.raises(ValueError, match="size"):
        build_transforms("none", 0, False, 3)


def test_eval_transform_normalises_exactly_once() -> None:
    image = np.full((30, 20, 3), 200, np.uint8)
    out = build_transforms("none", 16, train=False, in_channels=3)(image=image, mask=np.zeros((30, 20), np.uint8))
    assert out["image"].shape == (16, 16, 3) and out["image"].dtype == np.float32
    expected = (200 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(out["image"][8, 8], expected, atol=1e-5)
    grey = build_transforms("reference", 16, train=False, in_channels=1)(image=image[..., :1], mask=None)
    assert grey["image"].shape == (16, 16, 1) and np.allclose(grey["image"], (200 / 255 - 0.5) / 0.5, atol=1e-5)
    assert normalization_stats(1) == ((0.5,), (0.5,))


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_train_transforms_keep_masks_binary(recipe: str, in_channels: int, small_dataset: Path) -> None:
    transform = build_transforms(recipe, 32, train=True, in_channels=in_channels)
    dataset = SegmentationDataset(small_dataset, in_channels=in_channels, transform=transform)
    for i in range(4):
        item = dataset[i]
        assert item["image"].shape == (in_channels, 32, 32) and item["image"].dtype == torch.float32
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0} and item["mask"].shape == (1, 32, 32)
        # normalised once: ImageNet-normalised values span about -2..2.6; a second /255 would squash them to ~0
        assert float(item["image"].min()) > -3.0 and float(item["image"].max()) < 3.0
        assert float(item["image"].abs().max()) > 0.5


def test_extensions_constant() -> None:
    assert set(IMAGE_EXTENSIONS) == {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def test_data_layer_does_not_import_mlops_packages() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lgmsnet.data; "
        "bad = [m for m in ('kfp', 'mlflow', 'dvc', 'great_expectations', 'albumentations') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


# ------------------------------------------------------------------------------------- real data (tier 2)


@pytest.mark.integration
def test_kvasir_pairs_and_near_duplicates_share_a_split(shared_data: Path) -> None:
    root = shared_data / "kvasir-seg"
    if not (root / "images").is_dir():
        pytest.fail(
            f"Kvasir-SEG not found at {root}; set LGMSNET_SHARED_DATA (or LGMSNET_SHARED) so it holds kvasir-seg/"
        )
    pairs = scan_pairs(root)
    assert len(pairs) == 1000
    manifest = make_splits(root, seed=0)
    assert len(manifest.train) + len(manifest.val) + len(manifest.test) == 1000
    for a, b in KVASIR_NEAR_DUPLICATES:
        assert manifest.split_of(a) == manifest.split_of(b), (a, b)
    assert manifest.group_violations() == []
    noisy = read_mask(pairs[0].mask_path)
    assert set(np.unique(noisy).tolist()) == {0, 1}


@pytest.mark.integration
def test_cvc_clinicdb_reads_a_few_png_pairs(shared_data: Path) -> None:
    root = shared_data / "cvc-clinicdb"
    if not (root / "images").is_dir():
        pytest.fail(
            f"CVC-ClinicDB not found at {root}; set LGMSNET_SHARED_DATA (or LGMSNET_SHARED) so it holds cvc-clinicdb/"
        )
    pairs = scan_pairs(root)
    assert len(pairs) == 612
    chosen = [p for p in pairs if p.stem in {"1", "112", "113", "612"}]
    report = validate_pairs(chosen)
    assert report.ok and set(report.sizes.values()) == {(288, 384)} and report.n_empty_masks == 0
    dataset = SegmentationDataset(chosen)
    item = dataset[0]
    assert item["image"].shape == (3, 288, 384) and set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert hamming_distance(image_dhash(chosen[1].image_path), image_dhash(chosen[2].image_path)) <= 10


def test_in_memory_jpeg_is_really_truncated() -> None:
    """Guard for the bad-input tests: Pillow must fail on a truncated JPEG (LOAD_TRUNCATED_IMAGES off)."""
    buffer = io.BytesIO()
    Image.fromarray(np.stack([_texture(9)] * 3, axis=2)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()[: len(buffer.getvalue()) // 3]
    with pytest.raises(OSError), Image.open(io.BytesIO(data)) as image:
        image.load()
