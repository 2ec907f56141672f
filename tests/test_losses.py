"""Tests for lgmsnet.losses: the reference BCE + soft Dice loss and its multiclass counterpart."""

from __future__ import annotations

import math
import re

import pytest
import torch

from lgmsnet.losses import BCEDiceLoss, CEDiceLoss, bce_dice_loss, ce_dice_loss, soft_dice_per_sample

LN3 = math.log(3.0)


def _tiny_example() -> tuple[torch.Tensor, torch.Tensor]:
    """A 2x1x2x2 batch whose sigmoid probabilities are simple fractions.

    sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4.
    """
    logits = torch.tensor(
        [
            [[[0.0, LN3], [-LN3, 0.0]]],  # p = [[0.50, 0.75], [0.25, 0.50]]
            [[[LN3, LN3], [LN3, -LN3]]],  # p = [[0.75, 0.75], [0.75, 0.25]]
        ],
        dtype=torch.float64,
    )
    target = torch.tensor(
        [
            [[[1.0, 1.0], [0.0, 0.0]]],
            [[[0.0, 0.0], [0.0, 0.0]]],  # empty ground truth
        ],
        dtype=torch.float64,
    )
    return logits, target


def test_bce_dice_loss_matches_hand_computation() -> None:
    logits, target = _tiny_example()
    # BCE per pixel: -ln p where g = 1, -ln(1 - p) where g = 0.
    #   sample 1: ln 2 (p=.5,g=1) + ln 4/3 (p=.75,g=1) + ln 4/3 (p=.25,g=0) + ln 2 (p=.5,g=0)
    #   sample 2: 3 * ln 4 (p=.75,g=0) + ln 4/3 (p=.25,g=0)
    #   sum = 2 ln2 + 2 ln(4/3) + 6 ln2 + ln(4/3) = 8 ln2 + 3 ln(4/3); mean over 8 pixels.
    bce = (8 * 0.6931471805599453 + 3 * 0.28768207245178085) / 8
    assert bce == pytest.approx(0.8010279577, abs=1e-9)
    # Dice sample 1: sum(p*g) = 0.5 + 0.75 = 1.25, sum(p) = 2.0, sum(g) = 2 -> (2.5 + s) / (4 + s)
    # Dice sample 2: sum(p*g) = 0, sum(p) = 2.5, sum(g) = 0          -> s / (2.5 + s)
    s = 1e-5
    dice_1 = (2.5 + s) / (4.0 + s)
    dice_2 = s / (2.5 + s)
    expected = 0.5 * bce + (1.0 - (dice_1 + dice_2) / 2)
    assert expected == pytest.approx(1.0880115101, abs=1e-9)

    loss = bce_dice_loss(logits, target)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    # The module wrapper, and a target without the channel dimension, give the same value.
    assert BCEDiceLoss()(logits, target[:, 0]).item() == pytest.approx(expected, abs=1e-12)


def test_bce_weight_and_smooth_are_used() -> None:
    logits, target = _tiny_example()
    bce = (8 * math.log(2) + 3 * math.log(4 / 3)) / 8
    dice_term = 1.0 - ((2.5 + 1.0) / (4.0 + 1.0) + 1.0 / (2.5 + 1.0)) / 2
    loss = bce_dice_loss(logits, target, bce_weight=2.0, smooth=1.0)
    assert loss.item() == pytest.approx(2.0 * bce + dice_term, abs=1e-12)
    assert "bce_weight=2.0" in repr(BCEDiceLoss(bce_weight=2.0, smooth=1.0))


def test_perfect_prediction_has_near_zero_loss_and_gradients_flow() -> None:
    target = torch.zeros(2, 1, 8, 8)
    target[0, 0, 2:6, 2:6] = 1.0
    logits = (target * 2 - 1) * 30.0
    assert bce_dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)

    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    bce_dice_loss(logits, target).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_low_precision_logits_do_not_overflow_the_dice_sums() -> None:
    # 256x256 probabilities near 1 sum to ~65k, beyond float16's max (65504): the Dice must run in float32.
    logits = torch.full((1, 1, 256, 256), 10.0, dtype=torch.float16)
    target = torch.ones(1, 1, 256, 256, dtype=torch.float16)
    loss = bce_dice_loss(logits, target)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss) and loss.item() < 1e-3


def test_soft_dice_per_sample_values() -> None:
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # sample 1: 2*1 / (1 + 1) = 1; sample 2: 2*0.5 / (1 + 1) = 0.5
    torch.testing.assert_close(soft_dice_per_sample(probs, target, smooth=0.0), torch.tensor([1.0, 0.5]))


def test_ce_dice_with_two_classes_equals_bce_dice() -> None:
    # softmax([0, x])[1] = sigmoid(x) and CE on [0, x] equals BCE-with-logits on x, so with the background class
    # excluded from the Dice both losses must agree exactly.
    torch.manual_seed(0)
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    target = (torch.rand(3, 6, 6) > 0.6).long()
    two_class = torch.cat([torch.zeros_like(x), x], dim=1)
    expected = bce_dice_loss(x, target.double(), bce_weight=0.5)
    torch.testing.assert_close(ce_dice_loss(two_class, target, ce_weight=0.5), expected)
    torch.testing.assert_close(CEDiceLoss()(two_class, target[:, None]), expected)


def test_ce_dice_include_background_and_gradients() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.randint(0, 4, (2, 8, 8))
    with_bg = ce_dice_loss(logits, target, include_background=True)
    without_bg = ce_dice_loss(logits, target)
    assert with_bg.item() != pytest.approx(without_bg.item())
    without_bg.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("logits_shape", "target_shape", "logits_dtype", "message"),
    [
        ((2, 2, 4, 4), (2, 2, 4, 4), torch.float32, "ce_dice_loss"),  # two channels: wrong loss
        ((2, 1, 4, 4), (2, 1, 4, 5), torch.float32, "same shape"),  # spatial mismatch
        ((2, 1, 4, 4), (3, 4, 4), torch.float32, "received (3, 4, 4)"),  # batch mismatch
        ((4, 4), (4, 4), torch.float32, "(N, 1, *spatial)"),  # no batch/channel dims
        ((2, 1, 4, 4), (2, 1, 4, 4), torch.int64, "floating point"),  # integer logits
    ],
)
def test_bce_dice_loss_rejects_bad_inputs(
    logits_shape: tuple[int, ...], target_shape: tuple[int, ...], logits_dtype: torch.dtype, message: str
) -> None:
    logits = torch.zeros(logits_shape, dtype=logits_dtype)
    target = torch.zeros(target_shape)
    with pytest.raises(ValueError, match=re.escape(message)):
        bce_dice_loss(logits, target)


@pytest.mark.parametrize(
    ("logits", "target", "message"),
    [
        (torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), "C >= 2"),
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4), "integer class indices"),
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long), "target of shape"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.long), torch.zeros(2, 4, 4, dtype=torch.long), "floating point"),
    ],
)
def test_ce_dice_loss_rejects_bad_inputs(logits: torch.Tensor, target: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ce_dice_loss(logits, target)
