"""Inference-time rewrites that keep the outputs of an eval-mode LGMSNet unchanged (to float rounding).

:func:`fold_batchnorm` folds every BatchNorm into a neighbouring convolution:

* ``conv → BN`` (stem, 1×1/3×3 helpers, up-convolutions, the hybrid conv branch): the classic fold into the
  convolution's weight and bias;
* ``act → BN → 1×1 conv`` (inside the skip fusion, where the reference puts the activation before the norm): the BN is
  an affine map per input channel of a 1×1 convolution, so it folds into that convolution's weight and bias exactly
  (a 3×3 convolution would not be exact at the zero-padded borders, so those BNs stay).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lgmsnet.layers.blocks import ConvNormAct, DepthwiseConvBranch, HeteroKernelBlock, SkipFusion

__all__ = ["fold_batchnorm", "optimize_for_inference"]

_BN = (nn.BatchNorm2d, nn.BatchNorm3d)


def _bn_scale_shift(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _fold_output(conv: nn.Module, bn: nn.Module) -> None:
    """``bn(conv(x))`` → ``conv'(x)``."""
    scale, shift = _bn_scale_shift(bn)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.copy_(conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
    new_bias = bias * scale + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def _fold_input(bn: nn.Module, conv: nn.Module) -> None:
    """``conv(bn(x))`` → ``conv'(x)`` for a 1×1, ungrouped ``conv``."""
    scale, shift = _bn_scale_shift(bn)
    w = conv.weight  # (out, in, 1, 1[, 1])
    w2 = w.flatten(1)
    extra = w2 @ shift
    conv.weight.copy_(w * scale.reshape(1, -1, *([1] * (w.dim() - 2))))
    if conv.bias is None:
        conv.bias = nn.Parameter(extra)
    else:
        conv.bias.add_(extra)


@torch.no_grad()
def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return an eval-mode copy of ``model`` with BatchNorms folded into convolutions (see the module doc).

    Args:
        model: an LGMSNet (or any model built from :mod:`lgmsnet.layers`).
        inplace: modify ``model`` itself instead of a deep copy.

    Returns:
        The folded model in eval mode; training it afterwards is not meaningful.
    """
    m = model if inplace else copy.deepcopy(model)
    m.eval()
    for mod in m.modules():
        if isinstance(mod, ConvNormAct) and isinstance(mod.norm, _BN):
            _fold_output(mod.conv, mod.norm)
            mod.norm = nn.Identity()
        elif isinstance(mod, DepthwiseConvBranch):
            if isinstance(mod.norm1, _BN):
                _fold_output(mod.dw, mod.norm1)
                mod.norm1 = nn.Identity()
            if isinstance(mod.norm2, _BN):
                _fold_output(mod.pw, mod.norm2)
                mod.norm2 = nn.Identity()
        elif isinstance(mod, SkipFusion):
            for bn_name, conv_name in (("norm1", "conv2"), ("norm2", "conv3")):
                bn, conv = getattr(mod, bn_name), getattr(mod, conv_name)
                if isinstance(bn, _BN) and conv.groups == 1 and all(k == 1 for k in conv.kernel_size):
                    _fold_input(bn, conv)
                    setattr(mod, bn_name, nn.Identity())
    return m


def optimize_for_inference(model: nn.Module, channels_last: bool = True, merge_kernels: bool = True) -> nn.Module:
    """Fold BatchNorms, merge the heterogeneous depthwise kernels, and switch a 2D model to channels-last.

    The result computes the same logits as ``model.eval()`` to float rounding; it is meant for serving and
    benchmarking, not for training.
    """
    m = fold_batchnorm(model)
    if merge_kernels:
        for mod in m.modules():
            if isinstance(mod, HeteroKernelBlock):
                mod.merge_kernels()
    if channels_last and getattr(m, "spatial_dims", 2) == 2:
        m = m.to(memory_format=torch.channels_last)
    return m
