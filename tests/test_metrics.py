"""Tests for lgmsnet.metrics: counts, ratios, empty-mask conventions, HD95 against MONAI, the meter."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lgmsnet.metrics import (
    METRIC_NAMES,
    ConfusionCounts,
    SegmentationMeter,
    binarize,
    confusion_counts,
    hd95,
    metrics_from_counts,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _mask(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


PRED = _mask([[1, 1, 0], [0, 1, 0], [0, 0, 0]])
GT = _mask([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
# tp: (0,0), (1,1) -> 2; fp: (0,1) -> 1; fn: (1,0), (2,2) -> 2; tn: 9 - 5 -> 4


def test_confusion_counts_by_hand() -> None:
    counts = confusion_counts(PRED[None, None], GT[None])
    assert [int(c) for c in counts] == [2, 1, 2, 4]
    assert all(c.dtype == torch.int64 and c.shape == (1,) for c in counts)
    # 0/1 floats and integers are accepted as masks too.
    counts_f = confusion_counts(PRED[None].float(), GT[None].long())
    assert [int(c) for c in counts_f] == [2, 1, 2, 4]


def test_metrics_from_counts_by_hand() -> None:
    metrics = metrics_from_counts(confusion_counts(PRED[None], GT[None]))
    expected = {
        "dice": 4 / 7,  # 2*2 / (2*2 + 1 + 2)
        "iou": 2 / 5,  # 2 / (2 + 1 + 2)
        "sensitivity": 2 / 4,
        "precision": 2 / 3,
        "specificity": 4 / 5,
        "accuracy": 6 / 9,
    }
    assert set(metrics) == set(METRIC_NAMES)
    for name, value in expected.items():
        assert metrics[name].dtype == torch.float64
        assert metrics[name].item() == pytest.approx(value, abs=1e-15), name


def test_binarize_thresholds_logits_at_zero_and_probabilities_at_half() -> None:
    logits = torch.tensor([[[-1.0, 0.0, 1e-6, 40.0]]])
    assert binarize(logits).tolist() == [[[False, False, True, True]]]
    probs = torch.tensor([[[0.2, 0.5, 0.5001, 1.0]]])
    assert binarize(probs, from_logits=False).tolist() == [[[False, False, True, True]]]
    # threshold 0.9 on logits is logit > ln 9 ~ 2.197
    assert binarize(torch.tensor([[[2.19, 2.2]]]), threshold=0.9).tolist() == [[[False, True]]]
    assert binarize(torch.tensor([[[0, 1]]], dtype=torch.uint8)).tolist() == [[[False, True]]]


# pred, gt, expected dice, iou, sensitivity, precision, specificity, hd95 (nan = undefined)
EMPTY = torch.zeros(4, 4, dtype=torch.bool)
BLOB = torch.zeros(4, 4, dtype=torch.bool)
BLOB[1:3, 1:3] = True
FULL = torch.ones(4, 4, dtype=torch.bool)
EMPTY_CASES = {
    "gt_empty_pred_empty": (EMPTY, EMPTY, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0),
    "gt_empty_pred_nonempty": (BLOB, EMPTY, 0.0, 0.0, 1.0, 0.0, 12 / 16, math.nan),
    "gt_nonempty_pred_empty": (EMPTY, BLOB, 0.0, 0.0, 0.0, 1.0, 1.0, math.nan),
    "gt_full_pred_full": (FULL, FULL, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0),
}


@pytest.mark.parametrize("case", list(EMPTY_CASES), ids=list(EMPTY_CASES))
def test_empty_mask_conventions(case: str) -> None:
    pred, gt, dice, iou, sens, prec, spec, hd = EMPTY_CASES[case]
    metrics = metrics_from_counts(confusion_counts(pred[None], gt[None]))
    got = {name: metrics[name].item() for name in METRIC_NAMES}
    assert got["dice"] == dice and got["iou"] == iou
    assert got["sensitivity"] == sens and got["precision"] == prec and got["specificity"] == spec
    assert not any(math.isnan(v) for v in got.values()), "count-based metrics are never NaN"
    value = hd95(pred[None], gt[None]).item()
    assert (math.isnan(value) and math.isnan(hd)) or value == hd
    # The empty ground truth stays empty: it is never scored as an all-foreground mask.
    counts = confusion_counts(pred[None], gt[None])
    assert int(counts.tp + counts.fn) == int(gt.sum())


def test_hd95_by_hand() -> None:
    a = torch.zeros(1, 10, 10, dtype=torch.bool)
    b = torch.zeros(1, 10, 10, dtype=torch.bool)
    a[0, 2, 2] = True
    b[0, 2, 5] = True
    assert hd95(a, b).item() == pytest.approx(3.0)
    b[0, 6, 5] = True  # directed b->a: distances {3, 5}; 95th percentile = 3 + 0.95 * 2 = 4.9
    assert hd95(a, b).item() == pytest.approx(4.9)
    assert hd95(a, b, percentile=100).item() == pytest.approx(5.0)


def _random_blobs(rng: np.random.Generator, n: int, shape: tuple[int, int], fraction: float) -> np.ndarray:
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.standard_normal((n, *shape)), sigma=(0, 3, 3))
    return noise > np.quantile(noise, 1 - fraction, axis=(1, 2), keepdims=True)


@pytest.mark.parametrize("percentile", [95.0, 100.0, 50.0])
def test_hd95_matches_monai(percentile: float) -> None:
    monai_metrics = pytest.importorskip("monai.metrics")
    rng = np.random.default_rng(1234)
    pred = torch.from_numpy(_random_blobs(rng, 16, (48, 64), 0.3))
    gt = torch.from_numpy(_random_blobs(rng, 16, (48, 64), 0.25))
    gt[3] = pred[3]  # identical masks: distance 0
    gt[5, :, :] = False
    gt[5, 10:30, 40:64] = True  # a box touching the image border
    ours = hd95(pred, gt, percentile=percentile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = monai_metrics.compute_hausdorff_distance(
            pred[:, None].float(), gt[:, None].float(), include_background=True, percentile=percentile
        )[:, 0]
    assert ours[3].item() == 0.0
    # MONAI keeps distances in float32 (relative rounding ~6e-8 per value); ours are float64.
    torch.testing.assert_close(ours, ref.double(), rtol=2e-6, atol=1e-6)


def test_meter_reports_mean_over_images_and_pooled_dice() -> None:
    # image A: 1-pixel object, missed -> Dice 0; image B: 8-pixel object, found exactly -> Dice 1.
    gt = torch.zeros(2, 1, 4, 4)
    gt[0, 0, 0, 0] = 1
    gt[1, 0, 2:4, :] = 1
    logits = torch.where(gt > 0, 5.0, -5.0)
    logits[0, 0, 0, 0] = -5.0
    meter = SegmentationMeter()
    meter.update(logits[:1], gt[:1], stems=["a"])
    meter.update(logits[1:], gt[1:], stems=["b"])
    summary = meter.compute()
    assert summary["n_images"] == 2
    assert summary["dice"] == pytest.approx(0.5)  # (0 + 1) / 2: per image, then the mean
    assert summary["dice_std"] == pytest.approx(0.5)  # population std of {0, 1}
    assert summary["dice_global"] == pytest.approx(16 / 17)  # 2*8 / (2*8 + 0 + 1): pooled pixels
    assert summary["iou_global"] == pytest.approx(8 / 9)
    assert summary["precision"] == pytest.approx(1.0)  # image A claims nothing: precision 1 by convention
    assert "hd95" not in summary  # off by default
    rows = meter.per_image()
    assert [r["stem"] for r in rows] == ["a", "b"]
    assert (rows[0]["tp"], rows[0]["fn"], rows[0]["dice"]) == (0, 1, 0.0)
    json.dumps(rows)  # plain Python types


def test_meter_hd95_excludes_undefined_images_and_counts_them() -> None:
    gt = torch.zeros(3, 8, 8, dtype=torch.bool)
    pred = torch.zeros(3, 8, 8, dtype=torch.bool)
    gt[0, 2, 2] = pred[0, 2, 5] = True  # HD95 = 3
    gt[1, 4, 4] = True  # prediction empty: undefined
    # image 2: both empty -> HD95 = 0
    meter = SegmentationMeter(compute_hd95=True)
    meter.update(pred, gt)
    summary = meter.compute()
    assert summary["hd95"] == pytest.approx(1.5)  # mean of {3, 0}
    assert summary["hd95_n_valid"] == 2 and summary["hd95_n_undefined"] == 1
    assert math.isnan(meter.per_image()[1]["hd95"])


def test_meter_accepts_probabilities_and_resets() -> None:
    meter = SegmentationMeter(from_logits=False)
    meter.update(torch.tensor([[[0.9, 0.4]]]), torch.tensor([[[1, 0]]]))
    assert meter.compute()["dice"] == 1.0 and len(meter) == 1
    meter.reset()
    assert meter.n_images == 0
    with pytest.raises(RuntimeError, match="before any update"):
        meter.compute()


def test_reduce_without_process_group_is_a_copy_and_deduplicates() -> None:
    meter = SegmentationMeter(compute_hd95=True)
    gt = torch.zeros(3, 1, 6, 6)
    gt[:, :, 1:4, 1:4] = 1
    logits = torch.randn(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    meter.update(logits, gt, stems=["x", "y", "x"])
    reduced = meter.reduce()
    assert reduced is not meter
    assert json.dumps(reduced.per_image()) == json.dumps(meter.per_image())  # json: NaN-tolerant equality
    assert len(meter.reduce(deduplicate=True)) == 2
    unnamed = SegmentationMeter()
    unnamed.update(logits, gt)
    with pytest.raises(ValueError, match="needs a stem"):
        unnamed.reduce(deduplicate=True)


@pytest.mark.parametrize(
    ("pred", "target", "message"),
    [
        (torch.zeros(2, 2, 4, 4), torch.zeros(2, 1, 4, 4), "one channel"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5), "different images"),
        (torch.zeros(4, 4), torch.zeros(4, 4), "unsqueeze"),
        (torch.zeros(1, 4, 4), torch.full((1, 4, 4), 255.0), "values 0 and 1"),
        (torch.full((1, 4, 4), float("nan")), torch.zeros(1, 4, 4), "NaN"),
        (torch.full((1, 4, 4), 2, dtype=torch.long), torch.zeros(1, 4, 4), "values 0 and 1"),
    ],
    ids=["two_channels", "size_mismatch", "no_batch_dim", "mask_0_255", "nan_logits", "int_pred_not_binary"],
)
def test_meter_rejects_bad_inputs(pred: torch.Tensor, target: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentationMeter().update(pred, target)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="one string per image"):
        SegmentationMeter().update(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), stems=["only-one"])
    with pytest.raises(ValueError, match="threshold"):
        SegmentationMeter(threshold=1.0)
    with pytest.raises(ValueError, match="percentile"):
        hd95(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), percentile=101)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        ConfusionCounts.from_stacked(torch.zeros(3, 3))


def test_library_modules_do_not_import_mlops_or_test_dependencies() -> None:
    code = (
        "import sys, lgmsnet.losses, lgmsnet.metrics, lgmsnet.dist\n"
        "bad = sorted(m for m in ('kfp', 'mlflow', 'dvc', 'great_expectations', 'monai') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at module load: {result.stdout.strip()}"
