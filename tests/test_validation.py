"""Data validation (components.validation + the ``lgmsnet data validate`` command).

Unit tier: small downscaled copies of real Kvasir-SEG pairs, corrupted on purpose. Integration tier: the full
shared Kvasir-SEG (with a make_splits manifest) and CVC-ClinicDB must pass.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from components.validate_cli import register
from components.validation import (
    CHECK_RULES,
    METADATA_COLUMNS,
    build_metadata_table,
    default_severities,
    scan_layout,
    validate_dataset,
)
from lgmsnet.data import (
    DatasetError,
    SplitManifest,
    dataset_fingerprint,
    make_splits,
    read_image,
    read_mask,
    synthesize,
    write_manifest,
)

N_PAIRS = 9
THUMB = (112, 112)
FAULTS = {  # stem index -> (rule, which file the finding names)
    "truncated": ("decodable", "images"),
    "mask_size": ("size_match", "masks"),
    "no_mask": ("missing_mask", "images"),
    "grey_mask": ("mask_non_binary", "masks"),
    "leak": ("split_leakage", "images"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lgmsnet")
    sub = p.add_subparsers()
    d = sub.add_parser("data")
    ds = d.add_subparsers(dest="data_command")
    register(ds)
    return p


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def _jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _small_copy(src: Path, dst: Path, n: int, prefix: str = "") -> list[str]:
    """Downscaled copies of the first ``n`` pairs: JPEG images, binary PNG masks. Returns the stems."""
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "masks").mkdir(parents=True, exist_ok=True)
    stems = []
    for image_path in sorted((src / "images").iterdir())[:n]:
        stem = prefix + image_path.stem
        mask_path = next((src / "masks").glob(image_path.stem + ".*"))
        with Image.open(image_path) as image:
            small = image.convert("RGB")
            small.thumbnail(THUMB)
        with Image.open(mask_path) as mask:
            small_mask = mask.convert("L").resize(small.size, Image.Resampling.NEAREST)
        small_mask = small_mask.point(lambda v: 255 if v > 127 else 0)
        (dst / "images" / f"{stem}.jpg").write_bytes(_jpeg_bytes(small))
        small_mask.save(dst / "masks" / f"{stem}.png")
        stems.append(stem)
    return stems


@pytest.fixture(scope="module")
def kvasir(shared_data: Path) -> Path:
    root = shared_data / "kvasir-seg"
    if not (root / "images").is_dir():
        pytest.fail(f"Kvasir-SEG missing under {root}; set LGMSNET_SHARED_DATA to the shared datasets folder")
    return root


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory: pytest.TempPathFactory, kvasir: Path) -> dict[str, object]:
    """A small Kvasir copy with five faults and a split manifest that leaks one near-duplicate into test."""
    root = tmp_path_factory.mktemp("corrupted") / "data"
    stems = _small_copy(kvasir, root, N_PAIRS)
    names = dict(zip(FAULTS, stems[4:], strict=False))  # the first four stay clean
    images, masks = root / "images", root / "masks"
    # 1. truncated JPEG
    data = (images / f"{names['truncated']}.jpg").read_bytes()
    (images / f"{names['truncated']}.jpg").write_bytes(data[: len(data) // 2])
    # 2. mask of another size
    with Image.open(masks / f"{names['mask_size']}.png") as mask:
        mask.resize((mask.width + 9, mask.height)).save(masks / f"{names['mask_size']}.png")
    # 3. image without mask
    (masks / f"{names['no_mask']}.png").unlink()
    # 4. soft mask: blurred edges are mid-grey
    with Image.open(masks / f"{names['grey_mask']}.png") as mask:
        mask.filter(ImageFilter.GaussianBlur(5)).save(masks / f"{names['grey_mask']}.png")
    # 5. a re-encoded (not byte-identical) copy of a clean image, under a new stem, placed in the test split
    leak = stems[0] + "-copy"
    with Image.open(images / f"{stems[0]}.jpg") as image:
        (images / f"{leak}.jpg").write_bytes(_jpeg_bytes(image.convert("RGB"), quality=75))
    (masks / f"{leak}.png").write_bytes((masks / f"{stems[0]}.png").read_bytes())
    names["leak"] = leak
    train = sorted(s for s in stems if s != names["no_mask"])
    manifest = SplitManifest(
        seed=0, ratios=(0.7, 0.1, 0.2), fingerprint=dataset_fingerprint(root), hash_threshold=10,
        train=train, val=[], test=[leak],
    )  # fmt: skip
    manifest_path = write_manifest(manifest, root.parent / "splits.json")
    return {"root": root, "manifest": manifest_path, "names": names, "source_of_leak": stems[0]}


def test_corrupted_dataset_fails_and_names_every_fault(corrupted, tmp_path, capsys) -> None:
    report = tmp_path / "report"
    rc = _run(["data", "validate", str(corrupted["root"]), "--split-manifest", str(corrupted["manifest"]),
               "--report", str(report)])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 1
    err = captured.err
    assert err.startswith("lgmsnet data validate: error:") and err.count("lgmsnet data validate: error:") == 1
    for fault, (rule, folder) in FAULTS.items():
        stem = corrupted["names"][fault]
        line = next((ln for ln in err.splitlines() if f"[{rule}]" in ln), "")
        assert stem in line and f"/{folder}/" in line, (fault, rule, err)
    assert corrupted["source_of_leak"] in err  # the leak names both near-duplicates
    assert "FAILED" in captured.out

    summary = json.loads((report / "summary.json").read_text())
    assert summary["passed"] is False and summary["n_items"] == N_PAIRS - 1 + 1
    assert {e["rule"] for e in summary["errors"]} == {rule for rule, _ in FAULTS.values()}
    assert summary["n_errors"] == len(FAULTS)
    assert {"metadata_table", "gx", "checks", "reports"} <= set(summary["timings_s"])
    docs = report / "data_docs" / "index.html"
    assert docs.is_file() and "segmentation_dataset" in docs.read_text()
    assert list((report / "data_docs" / "validations").rglob("*.html"))
    assert not [p for p in report.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    decode = next(e for e in summary["errors"] if e["rule"] == "decodable")
    assert "truncated" in decode["message"].lower()  # the decoder's exception message is kept


def test_core_cli_validate_is_replaced(corrupted, tmp_path, capsys) -> None:
    from lgmsnet.cli import main

    rc = main(["data", "validate", str(corrupted["root"]), "--report", str(tmp_path / "r")],
              extensions=[lambda sub, groups: register(groups["data"])])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "[missing_mask]" in err and "[split_leakage]" not in err  # no manifest: no split check
    rc = main(["data", "validate", str(tmp_path / "nope"), "--report", str(tmp_path / "r2")],
              extensions=[lambda sub, groups: register(groups["data"])])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and str(tmp_path / "nope") in err and "does not exist" in err


def test_severity_override_turns_errors_into_warnings(corrupted, tmp_path, capsys) -> None:
    res = validate_dataset(corrupted["root"], manifest=corrupted["manifest"], report_dir=tmp_path / "a",
                           severity_overrides={"mask_non_binary": "warning"})  # fmt: skip
    assert not res.passed
    assert "mask_non_binary" not in {f.rule for f in res.errors}
    moved = [f for f in res.warnings if f.rule == "mask_non_binary"]
    assert len(moved) == 1 and moved[0].stem == corrupted["names"]["grey_mask"]
    summary = json.loads(res.summary_path.read_text())
    assert summary["severities"]["mask_non_binary"] == "warning"
    assert res.data_docs_path is not None and res.data_docs_path.is_file()

    # every error downgraded through the CLI (flag and YAML file) -> the data passes, exit 0
    severity_file = tmp_path / "severity.yaml"
    severity_file.write_text("decodable: warning\nsize_match: warning\n")
    argv = ["data", "validate", str(corrupted["root"]), "--split-manifest", str(corrupted["manifest"]),
            "--report", str(tmp_path / "b"), "--severity-file", str(severity_file)]  # fmt: skip
    for rule in ("missing_mask", "mask_non_binary", "split_leakage"):
        argv += ["--severity", f"{rule}=warning"]
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "[split_leakage]" in out

    with pytest.raises(ValueError, match="unknown rule.*valid rules"):
        validate_dataset(corrupted["root"], report_dir=tmp_path / "c", severity_overrides={"no_such_rule": "warning"})
    with pytest.raises(ValueError, match="allowed"):
        validate_dataset(corrupted["root"], report_dir=tmp_path / "c", severity_overrides={"decodable": "fatal"})
    with pytest.raises(SystemExit):
        _run(["data", "validate", str(corrupted["root"]), "--report", str(tmp_path / "d"), "--severity", "decodable"])


def test_source_target_leakage(kvasir, shared_data, tmp_path) -> None:
    source = tmp_path / "source"
    stems = _small_copy(kvasir, source, 4)
    target = tmp_path / "target"
    _small_copy(shared_data / "cvc-clinicdb", target, 4)
    with Image.open(source / "images" / f"{stems[2]}.jpg") as image:  # a leaked, re-encoded source image
        image.convert("RGB").save(target / "images" / "leaked.png")
    res = validate_dataset(source, target_dir=target, report_dir=tmp_path / "r")
    leaks = [f for f in res.errors if f.rule == "target_leakage"]
    assert len(leaks) == 1 and leaks[0].stem == stems[2] and "leaked.png" in leaks[0].message
    assert not res.passed and [f.rule for f in res.errors] == ["target_leakage"]
    clean = validate_dataset(source, target_dir=target, report_dir=tmp_path / "r2",
                             severity_overrides={"target_leakage": "warning"})  # fmt: skip
    assert clean.passed and [f.rule for f in clean.warnings] == ["target_leakage"]


def test_metadata_table_is_exact(tmp_path) -> None:
    data = synthesize(tmp_path / "s", 5, "source", seed=1, size=64)
    table = build_metadata_table(data, workers=1)
    assert tuple(table.columns) == METADATA_COLUMNS and len(table) == 5
    row = table.iloc[0]
    image = read_image(row["image_path"]).astype(np.float64)
    mask = read_mask(row["mask_path"])
    assert row["decodable"] and row["size_match"] and row["channels"] == 3 and row["dtype"] == "uint8"
    assert (row["width"], row["height"]) == (64, 64) and row["split"] == "unassigned" and row["group"] == ""
    np.testing.assert_allclose([row["mean_r"], row["mean_g"], row["mean_b"]], image.mean((0, 1)), atol=1e-9)
    np.testing.assert_allclose([row["std_r"], row["std_g"], row["std_b"]], image.std((0, 1)), atol=1e-6)
    assert row["foreground_fraction"] == pytest.approx(mask.mean())
    assert row["intensity_hist"].shape == (3, 32) and row["intensity_hist"].sum() == pytest.approx(3.0)
    # the process pool gives the same table
    pooled = build_metadata_table(data, workers=2)
    assert table.drop(columns="intensity_hist").equals(pooled.drop(columns="intensity_hist"))


def test_layout_findings_and_argument_errors(tmp_path) -> None:
    data = synthesize(tmp_path / "s", 3, "source", seed=0, size=64)
    (data / "masks" / "orphan.png").write_bytes((data / "masks" / "synth-source-0000.png").read_bytes())
    (data / "images" / "synth-source-0001.jpg").write_bytes(b"not a jpeg")  # second file for one stem
    pairs, findings = scan_layout(data)
    assert len(pairs) == 3
    assert sorted(f.rule for f in findings) == ["duplicate_stem", "orphan_mask"]
    with pytest.raises(DatasetError, match="does not exist"):
        validate_dataset(tmp_path / "missing", report_dir=tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="lgmsnet data split"):
        validate_dataset(data, manifest=tmp_path / "none.json", report_dir=tmp_path / "r")
    with pytest.raises(ValueError, match="min_size"):
        validate_dataset(data, min_size=0, report_dir=tmp_path / "r")
    assert set(CHECK_RULES) <= set(default_severities())


def test_min_size_empty_masks_duplicates_and_manifest_rules(tmp_path) -> None:
    data = synthesize(tmp_path / "s", 6, "source", seed=2, size=64, empty_fraction=0.34)
    stems = sorted(p.stem for p in (data / "images").iterdir())
    copy = "synth-source-copy"
    (data / "images" / f"{copy}.png").write_bytes((data / "images" / f"{stems[0]}.png").read_bytes())
    (data / "masks" / f"{copy}.png").write_bytes((data / "masks" / f"{stems[0]}.png").read_bytes())
    (data / "groups.csv").write_text(f"stem,group\n{stems[1]},video-1\n{stems[2]},video-1\n")
    manifest = SplitManifest(
        seed=0, ratios=(0.5, 0.0, 0.5), fingerprint="0" * 64, hash_threshold=-1,
        train=[stems[0], stems[1], copy, "ghost"], val=[], test=stems[2:5],
    )  # fmt: skip
    res = validate_dataset(data, manifest=manifest, min_size=65, report_dir=tmp_path / "r")
    errors: dict[str, list[str | None]] = {}
    for f in res.errors:
        errors.setdefault(f.rule, []).append(f.stem)
    assert sorted(errors["min_size"]) == sorted([*stems, copy])  # one finding per image (width and height fail)
    assert sorted(errors["duplicate_file"]) == sorted([stems[0], copy])
    assert errors["manifest_unknown_stem"] == ["ghost"]
    assert errors["group_leakage"] == [None] and "video-1" in next(
        f.message for f in res.errors if f.rule == "group_leakage"
    )
    assert set(errors) == {"min_size", "duplicate_file", "manifest_unknown_stem", "group_leakage"}
    # identical copy in the same split (train): no split leakage; the stem missing from the manifest is a warning
    warnings = {f.rule for f in res.warnings}
    assert {"manifest_unassigned", "manifest_fingerprint", "empty_mask"} <= warnings
    n_empty = sum(1 for f in res.warnings if f.rule == "empty_mask")
    table = build_metadata_table(data, workers=1)
    assert n_empty == int((table["foreground_fraction"] == 0).sum()) >= 1


def test_empty_dataset_is_a_finding(tmp_path) -> None:
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir()
    res = validate_dataset(tmp_path / "d", report_dir=tmp_path / "r")
    assert not res.passed and [f.rule for f in res.errors] == ["empty_dataset"]
    assert (tmp_path / "r" / "summary.json").is_file() and res.data_docs_path is not None


@pytest.mark.integration
def test_clean_kvasir_with_make_splits_manifest_passes(kvasir, tmp_path) -> None:
    manifest = write_manifest(make_splits(kvasir, seed=0), tmp_path / "splits.json")
    res = validate_dataset(kvasir, manifest=manifest, report_dir=tmp_path / "r")
    assert res.passed, res.failure_message()
    assert res.n_items == 1000 and not res.errors
    assert not [f for f in res.warnings if f.rule != "drift"]
    assert (tmp_path / "r" / "data_docs" / "index.html").is_file()


@pytest.mark.integration
def test_clean_cvc_clinicdb_passes_and_shares_nothing_with_kvasir(shared_data, kvasir, tmp_path) -> None:
    res = validate_dataset(shared_data / "cvc-clinicdb", target_dir=kvasir, report_dir=tmp_path / "r")
    assert res.passed, res.failure_message()
    assert res.n_items == 612 and not res.warnings
