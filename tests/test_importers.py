"""Tests of the dataset importers: tiny archives/folders in each official layout -> folder datasets with provenance."""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from lgmsnet.data import DatasetError, SegmentationDataset, load_groups, scan_pairs, validate_pairs
from lgmsnet.data.import_cli import register
from lgmsnet.data.importers import (
    CVC_CLINICDB_SEQUENCES,
    IMPORTERS,
    cvc_clinicdb_sequence,
    import_bus_bra,
    import_busi,
    import_cvc_clinicdb,
    import_dataset,
    import_folder,
    import_isic2018,
    import_kvasir_seg,
    import_ph2,
)

SIZE = 32


# ---------------------------------------------------------------------------------------------- helpers


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _box(y0: int, y1: int, x0: int, x1: int, value: int = 255) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[y0:y1, x0:x1] = value
    return mask


def _save(path: Path, array: np.ndarray, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def _zip(folder: Path, archive: Path) -> Path:
    """Zip the content of ``folder`` (its top-level entries become the archive's top level)."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


def _csv(path: Path) -> dict[str, str]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return {r[0]: r[1] for r in rows[1:]}


def _info(out: Path) -> dict:
    return yaml.safe_load((out / "dataset.yaml").read_text())


def _assert_binary_masks(out: Path) -> None:
    for path in (out / "masks").iterdir():
        assert path.suffix == ".png"
        with Image.open(path) as image:
            assert image.mode == "L"
        assert set(np.unique(_pixels(path)).tolist()) <= {0, 255}


def _no_leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture()
def kvasir_zip(tmp_path: Path) -> Path:
    root = tmp_path / "build" / "Kvasir-SEG"
    for i, stem in enumerate(["cju0a", "cju0b", "cju0c"]):
        _save(root / "images" / f"{stem}.jpg", _rgb(i), quality=90)
    masks = {"cju0a": _box(8, 24, 8, 24), "cju0b": _box(0, 16, 16, 32), "cju0d": _box(0, 8, 0, 8)}
    for stem, mask in masks.items():
        _save(root / "masks" / f"{stem}.jpg", np.repeat(mask[..., None], 3, axis=2), quality=90)
    (root / "kavsir_bboxes.json").write_text('{"cju0a": {"height": 32, "width": 32}}')
    (tmp_path / "build" / "__MACOSX").mkdir()
    (tmp_path / "build" / "__MACOSX" / "._cju0a.jpg").write_bytes(b"junk")
    return _zip(tmp_path / "build", tmp_path / "kvasir-seg.zip")


# ---------------------------------------------------------------------------------------------- per format


def test_kvasir_zip_pairs_masks_and_provenance(tmp_path: Path, kvasir_zip: Path) -> None:
    out = tmp_path / "out"
    report = import_kvasir_seg(kvasir_zip, out)
    assert report.n_pairs == 2 and report.n_skipped == 2 and report.n_groups == 0
    assert [p.stem for p in scan_pairs(out)] == ["cju0a", "cju0b"]
    with zipfile.ZipFile(kvasir_zip) as zf:  # JPEG images are copied byte for byte
        assert (out / "images" / "cju0a.jpg").read_bytes() == zf.read("Kvasir-SEG/images/cju0a.jpg")
    _assert_binary_masks(out)
    assert np.array_equal(_pixels(out / "masks" / "cju0a.png"), _box(8, 24, 8, 24))  # JPEG noise removed (> 127)
    info = _info(out)
    assert info["format"] == "kvasir-seg" and info["synthetic"] is False
    assert info["source"]["archives"] == [
        {"name": "kvasir-seg.zip", "sha256": hashlib.sha256(kvasir_zip.read_bytes()).hexdigest()}
    ]
    assert info["homepage"] == "https://datasets.simula.no/kvasir-seg/" and "Kvasir-SEG" in info["citation"]
    assert "non-commercial" in info["licence"] and "check the official terms" in info["licence"]
    assert (info["n_pairs"], info["n_skipped"]) == (2, 2)
    reasons = {Path(s["item"].split(":")[-1]).name: s["reason"] for s in info["skipped"]}
    assert reasons == {"cju0c.jpg": "no mask with the same name", "cju0d.jpg": "no image with the same name"}
    assert "> 127" in info["masks"] and info["mask_threshold"] == 127
    assert (out / "source_notes" / "kavsir_bboxes.json").is_file()
    assert _no_leftovers(tmp_path) == []
    assert SegmentationDataset(out)[0]["mask"].sum() == 16 * 16


def test_cvc_zip_tiff_frames_and_sequence_groups(tmp_path: Path) -> None:
    root = tmp_path / "build" / "CVC-ClinicDB"
    frames = {25: _rgb(25), 26: _rgb(26), 612: _rgb(612)}
    (root / "Original").mkdir(parents=True)
    (root / "Ground Truth").mkdir()
    for n, frame in frames.items():  # 3-sample MinIsBlack TIFFs, as in the official archive (Pillow cannot open them)
        tifffile.imwrite(root / "Original" / f"{n}.tif", frame, photometric="minisblack", planarconfig="contig")
        gt = _box(4, 12, 4, 12)
        gt[20:22, 20:22] = 90  # faint grey annotation artefact, below the threshold
        tifffile.imwrite(root / "Ground Truth" / f"{n}.tif", gt, photometric="minisblack")
    tifffile.imwrite(root / "Original" / "cover.tif", frames[25], photometric="minisblack", planarconfig="contig")
    (root / "README.txt").write_text("The use of this database is forbidden for commercial purposes.")
    archive = _zip(tmp_path / "build", tmp_path / "CVC-ClinicDB.zip")

    out = tmp_path / "out"
    report = import_cvc_clinicdb(archive, out)
    assert report.n_pairs == 3 and report.n_groups == 3
    assert sorted(p.stem for p in scan_pairs(out)) == ["25", "26", "612"]
    for n, frame in frames.items():  # TIFF -> lossless PNG
        assert np.array_equal(_pixels(out / "images" / f"{n}.png"), frame)
        assert np.array_equal(_pixels(out / "masks" / f"{n}.png"), _box(4, 12, 4, 12))
    assert load_groups(out) == {"25": "seq01", "26": "seq02", "612": "seq29"}
    info = _info(out)
    assert info["groups"]["n_groups"] == 3 and "sequence" in info["groups"]["meaning"]
    assert [s["reason"] for s in info["skipped"]] == ["no mask with the same name"]  # cover.tif
    assert (out / "source_notes" / "README.txt").is_file()
    assert validate_pairs(scan_pairs(out)).ok


def test_cvc_png_layout_from_folder(tmp_path: Path) -> None:
    root = tmp_path / "dl" / "CVC-ClinicDB" / "PNG"
    _save(root / "Original" / "1.png", _rgb(1))
    _save(root / "Ground Truth" / "1.png", _box(0, 4, 0, 4))
    _save(root / "Original" / "x.png", _rgb(2))
    _save(root / "Ground Truth" / "x.png", _box(0, 4, 0, 4))
    report = import_cvc_clinicdb(tmp_path / "dl", tmp_path / "out")
    assert report.n_pairs == 1 and load_groups(tmp_path / "out") == {"1": "seq01"}
    assert report.skipped[0].reason.startswith("name is not an official frame number")
    assert (tmp_path / "out" / "images" / "1.png").read_bytes() == (root / "Original" / "1.png").read_bytes()


def test_zip_quirks_dot_prefix_backslashes_and_junk(tmp_path: Path) -> None:
    image, mask = _save(tmp_path / "a.png", _rgb(0)), _save(tmp_path / "m.png", _box(0, 3, 0, 3))
    with zipfile.ZipFile(tmp_path / "win.zip", "w") as zf:
        zf.write(image, "./Kvasir-SEG/images/a.png")
        zf.write(mask, "Kvasir-SEG\\masks\\a.png")  # made on Windows
        zf.writestr("Kvasir-SEG/images/Thumbs.db", b"junk")
        zf.writestr("Kvasir-SEG/images/.DS_Store", b"junk")
    report = import_kvasir_seg(tmp_path / "win.zip", tmp_path / "out")
    assert report.n_pairs == 1 and report.n_skipped == 0
    assert (tmp_path / "out" / "images" / "a.png").read_bytes() == image.read_bytes()


def test_cvc_sequence_table() -> None:
    assert len(CVC_CLINICDB_SEQUENCES) == 29 and CVC_CLINICDB_SEQUENCES[0][0] == 1
    assert all(a[1] + 1 == b[0] for a, b in zip(CVC_CLINICDB_SEQUENCES, CVC_CLINICDB_SEQUENCES[1:], strict=False))
    assert [cvc_clinicdb_sequence(f) for f in (1, 25, 26, 50, 51, 205, 206, 591, 592, 612)] == [
        "seq01", "seq01", "seq02", "seq02", "seq03", "seq10", "seq11", "seq28", "seq29", "seq29",
    ]  # fmt: skip
    for bad in (0, 613, -1, True, "5", 5.0):
        with pytest.raises(ValueError, match="1..612"):
            cvc_clinicdb_sequence(bad)  # type: ignore[arg-type]


@pytest.fixture()
def busi_dir(tmp_path: Path) -> Path:
    root = tmp_path / "dl" / "Dataset_BUSI_with_GT"
    _save(root / "benign" / "benign (1).png", _rgb(1))
    _save(root / "benign" / "benign (1)_mask.png", _box(0, 8, 0, 8))
    _save(root / "benign" / "benign (1)_mask_1.png", _box(16, 24, 16, 24))  # second lesion: merged with OR
    _save(root / "benign" / "benign (2).png", _rgb(2))
    _save(root / "benign" / "benign (2)_mask.png", _box(4, 12, 4, 12))
    _save(root / "benign" / "benign (3).png", _rgb(3))  # no mask: skipped
    _save(root / "malignant" / "malignant (1).png", _rgb(4))
    _save(root / "malignant" / "malignant (1)_mask.png", np.repeat(_box(2, 30, 2, 30)[..., None], 3, axis=2))
    _save(root / "normal" / "normal (1).png", _rgb(5))
    _save(root / "normal" / "normal (1)_mask.png", _box(0, 0, 0, 0))
    return tmp_path / "dl"


def test_busi_merge_classes_and_normal_excluded(tmp_path: Path, busi_dir: Path) -> None:
    out = tmp_path / "out"
    report = import_busi(busi_dir, out)
    assert [p.stem for p in scan_pairs(out)] == ["benign_001", "benign_002", "malignant_001"]
    merged = _pixels(out / "masks" / "benign_001.png")
    assert np.array_equal(merged, _box(0, 8, 0, 8) | _box(16, 24, 16, 24))
    _assert_binary_masks(out)
    assert _csv(out / "classes.csv") == {"benign_001": "benign", "benign_002": "benign", "malignant_001": "malignant"}
    assert report.excluded == {"normal": 1} and report.n_skipped == 1
    info = _info(out)
    assert info["n_excluded"] == 1 and "include_normal" in info["excluded"]["normal"]["reason"]
    assert info["n_multi_mask_merged"] == 1 and info["classes"] == {"benign": 2, "malignant": 1}
    assert "no mask" in info["skipped"][0]["reason"] and "benign (3).png" in info["skipped"][0]["item"]
    assert not (out / "groups.csv").exists()
    assert (out / "images" / "benign_001.png").read_bytes() == (
        busi_dir / "Dataset_BUSI_with_GT" / "benign" / "benign (1).png"
    ).read_bytes()


def test_busi_include_normal(tmp_path: Path, busi_dir: Path) -> None:
    report = import_dataset("busi", busi_dir, tmp_path / "out", include_normal=True)
    assert report.n_pairs == 4 and report.excluded == {} and report.n_empty_masks == 1
    assert _csv(tmp_path / "out" / "classes.csv")["normal_001"] == "normal"
    assert not _pixels(tmp_path / "out" / "masks" / "normal_001.png").any()


def test_isic_two_zips_in_a_folder(tmp_path: Path) -> None:
    build = tmp_path / "build"
    inp, gt = build / "in" / "ISIC2018_Task1-2_Training_Input", build / "gt" / "ISIC2018_Task1_Training_GroundTruth"
    for i in range(2):
        _save(inp / f"ISIC_000000{i}.jpg", _rgb(i), quality=95)
        _save(gt / f"ISIC_000000{i}_segmentation.png", _box(0, 10 + i, 0, 10))
    _save(inp / "ISIC_0000000_superpixels.png", _rgb(9))
    for folder in (inp, gt):
        (folder / "LICENSE.txt").write_text("CC BY-NC 4.0")
        (folder / "ATTRIBUTION.txt").write_text("contributors")
    dl = tmp_path / "dl"
    dl.mkdir()
    _zip(build / "in", dl / "ISIC2018_Task1-2_Training_Input.zip")
    _zip(build / "gt", dl / "ISIC2018_Task1_Training_GroundTruth.zip")

    out = tmp_path / "out"
    report = import_isic2018(dl, out)
    assert report.n_pairs == 2 and report.n_skipped == 0
    assert [p.stem for p in scan_pairs(out)] == ["ISIC_0000000", "ISIC_0000001"]
    assert int(_pixels(out / "masks" / "ISIC_0000001.png").astype(bool).sum()) == 11 * 10
    assert _csv(out / "official_splits.csv") == {"ISIC_0000000": "Training", "ISIC_0000001": "Training"}
    info = _info(out)
    assert sorted(a["name"] for a in info["source"]["archives"]) == [
        "ISIC2018_Task1-2_Training_Input.zip",
        "ISIC2018_Task1_Training_GroundTruth.zip",
    ]
    assert "CC BY-NC" in info["licence"]
    assert "ISIC2018_Task1-2_Training_Input_LICENSE.txt" in info["source_notes"]

    with pytest.raises(DatasetError, match="GroundTruth"):  # inputs alone: no split with ground truth
        import_isic2018(dl / "ISIC2018_Task1-2_Training_Input.zip", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_ph2_bmp_to_png_and_roi_ignored(tmp_path: Path) -> None:
    root = tmp_path / "PH2Dataset" / "PH2 Dataset images"
    for i, case in enumerate(["IMD002", "IMD003", "IMD004"]):
        _save(root / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp", _rgb(i))
        _save(root / case / f"{case}_roi" / f"{case}_R1_Label1.bmp", _box(0, 2, 0, 2))
        if case != "IMD004":
            _save(root / case / f"{case}_lesion" / f"{case}_lesion.bmp", _box(8, 16 + i, 8, 16))
    (tmp_path / "PH2Dataset" / "PH2_dataset.txt").write_text("|| IMD002 || 0 ||")
    out = tmp_path / "out"
    report = import_ph2(tmp_path / "PH2Dataset", out)
    assert [p.stem for p in scan_pairs(out)] == ["IMD002", "IMD003"] and report.n_skipped == 1
    assert np.array_equal(_pixels(out / "images" / "IMD003.png"), _rgb(1))  # BMP -> lossless PNG
    assert np.array_equal(_pixels(out / "masks" / "IMD003.png"), _box(8, 17, 8, 16))
    assert "IMD004_lesion" in report.skipped[0].reason
    assert (out / "source_notes" / "PH2_dataset.txt").is_file()

    rar = tmp_path / "PH2Dataset.rar"
    rar.write_bytes(b"Rar!\x1a\x07\x00")
    with pytest.raises(DatasetError, match=r"PH2Dataset\.rar.*extract"):
        import_ph2(rar, tmp_path / "out-rar")


def _bus_bra(tmp_path: Path, with_csv: bool) -> Path:
    root = tmp_path / "dl" / "BUSBRA"
    for i, key in enumerate(["0001-l", "0001-r", "0002-s"]):
        _save(root / "Images" / f"bus_{key}.png", _rgb(i)[..., 0])  # grey ultrasound
        _save(root / "Masks" / f"mask_{key}.png", _box(0, 5 + i, 0, 5))
    if with_csv:
        rows = [
            "bus_0001-l,1,Fibroadenoma,benign,4",
            "bus_0001-r,1,Fibroadenoma,benign,4",
            "bus_0002-s,7,Carcinoma,malignant,5",
        ]
        (root / "bus_data.csv").write_text("ID,Case,Histology,Pathology,BIRADS\n" + "\n".join(rows) + "\n")
    return tmp_path / "dl"


def test_bus_bra_patient_groups_from_csv(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = import_bus_bra(_bus_bra(tmp_path, with_csv=True), out)
    assert [p.stem for p in scan_pairs(out)] == ["bus_0001-l", "bus_0001-r", "bus_0002-s"]
    assert load_groups(out) == {"bus_0001-l": "case_0001", "bus_0001-r": "case_0001", "bus_0002-s": "case_0007"}
    assert report.n_groups == 2 and report.warnings == []
    assert _csv(out / "classes.csv")["bus_0002-s"] == "malignant"
    assert _info(out)["groups_source"] == "bus_data.csv"
    assert _pixels(out / "images" / "bus_0001-l.png").ndim == 2  # grey PNG copied as is


def test_bus_bra_without_csv_derives_patient_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    report = import_bus_bra(_bus_bra(tmp_path, with_csv=False), tmp_path / "out")
    assert load_groups(tmp_path / "out")["bus_0002-s"] == "case_0002"
    assert report.warnings and "bus_data.csv" in report.warnings[0] and "bus_data.csv" in caplog.text


def test_folder_threshold_groups_and_skips(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _save(src / "images" / "a.png", _rgb(1))
    _save(src / "images" / "b.bmp", _rgb(2))
    _save(src / "images" / "c.png", _rgb(3))  # no mask
    _save(src / "masks" / "a.png", _box(0, 4, 0, 4, value=1))  # 0/1 label masks
    _save(src / "masks" / "b.png", _box(0, 6, 0, 4, value=1))
    (src / "groups.csv").write_text("stem,group\na,p1\nb,p1\nc,p2\n")
    (src / "dataset.yaml").write_text("name: mine\nsynthetic: true\n")
    out = tmp_path / "out"
    report = import_dataset("folder", src, out, mask_threshold=0)
    assert report.n_pairs == 2 and report.n_skipped == 1 and report.n_groups == 1
    assert load_groups(out) == {"a": "p1", "b": "p1"}
    assert int((_pixels(out / "masks" / "b.png") == 255).sum()) == 24
    assert (out / "images" / "b.png").is_file()  # BMP -> PNG
    info = _info(out)
    assert info["synthetic"] is True and info["source_info"]["name"] == "mine" and info["mask_threshold"] == 0


# ---------------------------------------------------------------------------------------------- safety


def test_failing_import_leaves_no_output(tmp_path: Path) -> None:
    root = tmp_path / "dl" / "Kvasir-SEG"
    for stem in ("a", "b", "c"):
        _save(root / "images" / f"{stem}.jpg", _rgb(0))
        _save(root / "masks" / f"{stem}.jpg", _rgb(1))
    data = (root / "images" / "b.jpg").read_bytes()
    (root / "images" / "b.jpg").write_bytes(data[: len(data) // 3])  # truncated JPEG
    with pytest.raises(DatasetError, match=r"b\.jpg.*corrupt"):
        import_kvasir_seg(tmp_path / "dl", tmp_path / "out")
    assert not (tmp_path / "out").exists() and _no_leftovers(tmp_path) == []

    (tmp_path / "out").mkdir()  # an existing output survives a failing overwrite
    (tmp_path / "out" / "keep.txt").write_text("old")
    with pytest.raises(DatasetError):
        import_kvasir_seg(tmp_path / "dl", tmp_path / "out", overwrite=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"] and _no_leftovers(tmp_path) == []


def test_refuses_non_empty_output_unless_overwrite(tmp_path: Path, kvasir_zip: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty.*overwrite"):
        import_kvasir_seg(kvasir_zip, out)
    assert import_kvasir_seg(kvasir_zip, out, overwrite=True).n_pairs == 2
    assert not (out / "old.txt").exists()
    with pytest.raises(DatasetError, match="source"):  # never replace the folder holding the source
        import_kvasir_seg(kvasir_zip, tmp_path, overwrite=True)


@pytest.mark.parametrize(
    ("fmt", "needle"),
    [
        ("kvasir-seg", r"No Kvasir-SEG/images folder in odd\.zip.*datasets\.simula\.no"),
        ("cvc-clinicdb", r"odd\.zip.*polyp\.grand-challenge"),
        ("busi", r"odd\.zip"),
        ("isic2018", r"odd\.zip.*ISIC2018_Task1-2_Training_Input"),
        ("ph2", r"odd\.zip.*PH2"),
        ("bus-bra", r"odd\.zip.*BUSBRA"),
        ("folder", r"odd\.zip.*images"),
    ],
)
def test_unrecognised_layout_names_the_source(tmp_path: Path, fmt: str, needle: str) -> None:
    with zipfile.ZipFile(tmp_path / "odd.zip", "w") as zf:
        zf.writestr("stuff/readme.txt", "not a dataset")
    with pytest.raises(DatasetError, match=needle):
        import_dataset(fmt, tmp_path / "odd.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists() and _no_leftovers(tmp_path) == []


def test_import_dataset_rejects_bad_format_and_options(tmp_path: Path, kvasir_zip: Path) -> None:
    assert set(IMPORTERS) == {"kvasir-seg", "cvc-clinicdb", "busi", "isic2018", "ph2", "bus-bra", "folder"}
    with pytest.raises(ValueError, match="Unknown dataset format 'kvasir'.*kvasir-seg"):
        import_dataset("kvasir", kvasir_zip, tmp_path / "out")
    with pytest.raises(ValueError, match=r"include_normal does not apply to format 'kvasir-seg'.*busi"):
        import_dataset("kvasir-seg", kvasir_zip, tmp_path / "out", include_normal=True)
    generic = tmp_path / "polyps"  # images/ + masks/ not named Kvasir-SEG: the folder format, not Kvasir-SEG provenance
    _save(generic / "images" / "a.png", _rgb(0))
    _save(generic / "masks" / "a.png", _box(0, 2, 0, 2))
    with pytest.raises(DatasetError, match=r"No Kvasir-SEG/images folder in polyps.*'folder'"):
        import_dataset("kvasir-seg", generic, tmp_path / "out")
    with pytest.raises(DatasetError, match=r"BUSBRA/Images"):
        import_dataset("bus-bra", generic, tmp_path / "out")
    with pytest.raises(DatasetError, match="does not exist"):
        import_dataset("kvasir-seg", tmp_path / "missing.zip", tmp_path / "out")


def test_cli_import(tmp_path: Path, busi_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    data = sub.add_parser("data")
    register(data.add_subparsers(dest="data_command"))
    argv = ["data", "import", "busi", str(busi_dir), "--out", str(tmp_path / "o"), "--include-normal"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("imported 4 busi pairs") and "\n" not in line
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "import", "nope", "x", "--out", "y"])


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.integration
def test_shared_kvasir_with_folder_importer(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "kvasir-seg"
    if not (src / "images").is_dir():
        pytest.fail(f"shared Kvasir-SEG missing under {src}; set LGMSNET_SHARED_DATA")
    out = tmp_path / "kvasir"
    report = import_folder(src, out)
    assert report.n_pairs == 1000 and report.n_skipped == 0
    assert len(scan_pairs(out)) == 1000
    name = sorted(p.name for p in (src / "images").iterdir())[0]
    assert (out / "images" / name).read_bytes() == (src / "images" / name).read_bytes()
    mask = _pixels(out / "masks" / f"{Path(name).stem}.png")
    assert set(np.unique(mask).tolist()) == {0, 255}
    assert (out / "source_notes" / "PROVENANCE.md").is_file()


@pytest.mark.integration
def test_shared_cvc_slice_groups(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "cvc-clinicdb"
    if not (src / "images").is_dir():
        pytest.fail(f"shared CVC-ClinicDB missing under {src}; set LGMSNET_SHARED_DATA")
    root = tmp_path / "dl" / "CVC-ClinicDB" / "PNG"
    (root / "Original").mkdir(parents=True)
    (root / "Ground Truth").mkdir()
    frames = range(16, 36)  # 20 frames across sequences 1 (1-25) and 2 (26-50)
    for n in frames:
        shutil.copyfile(src / "images" / f"{n}.png", root / "Original" / f"{n}.png")
        shutil.copyfile(src / "masks" / f"{n}.png", root / "Ground Truth" / f"{n}.png")
    out = tmp_path / "out"
    report = import_cvc_clinicdb(tmp_path / "dl", out)
    assert report.n_pairs == 20 and report.n_groups == 2
    assert load_groups(out) == {str(n): "seq01" if n <= 25 else "seq02" for n in frames}
    _assert_binary_masks(out)
    assert validate_pairs(scan_pairs(out)).ok
