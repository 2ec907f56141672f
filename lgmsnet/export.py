"""Export to ONNX with an ONNX Runtime parity check.

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional (``pip install 'lgmsnet[export]'``) and imported here, at
the point of use.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lgmsnet.inference import fold_batchnorm

__all__ = ["ExportResult", "export_onnx", "onnx_parity"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote and how closely ONNX Runtime matches PyTorch."""

    path: Path
    input_shape: tuple[int, ...]
    max_abs_diff: float | None


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise RuntimeError(
            f"ONNX export needs the {module!r} package; install it with `pip install 'lgmsnet[export]'`"
        ) from exc


def onnx_parity(model: nn.Module, path: str | os.PathLike[str], x: torch.Tensor) -> float:
    """Max absolute difference between ``model(x)`` and ONNX Runtime (CPU) on ``x``, relative to the logits' scale.

    Returns ``max|ort − torch| / max(1, max|torch|)``: trained networks produce logits of tens, where float32
    rounding alone differs by more than 1e-4 in absolute terms.
    """
    _require("onnxruntime")
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    return float(np.max(np.abs(got - ref)) / max(1.0, float(np.max(np.abs(ref)))))


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    image_size: int | tuple[int, ...] = 256,
    *,
    opset: int = 18,
    fold_bn: bool = True,
    check: bool = True,
    tolerance: float = 1e-4,
) -> ExportResult:
    """Export an eval-mode model to ONNX (dynamic batch axis), atomically, and check it against PyTorch.

    Args:
        model: an LGMSNet.
        path: the ``.onnx`` file to write.
        image_size: spatial size of the example input (an int for square/cubic inputs).
        opset: ONNX opset.
        fold_bn: fold BatchNorms first (see :func:`lgmsnet.inference.fold_batchnorm`).
        check: run ONNX Runtime on a random input and compare with PyTorch.
        tolerance: the largest accepted difference (max-abs, relative to the logits' scale when they exceed 1, see
            :func:`onnx_parity`); above it, the file is removed and ``RuntimeError`` raised.
    """
    _require("onnx")
    _require("onnxscript")
    path = Path(path)
    m = fold_batchnorm(model) if fold_bn else model.eval()
    spatial_dims = getattr(m, "spatial_dims", 2)
    size = (image_size,) * spatial_dims if isinstance(image_size, int) else tuple(image_size)
    # batch 2: torch.export specialises a size-1 dimension to a constant
    x = torch.randn(2, getattr(m, "in_channels", 3), *size, generator=torch.Generator().manual_seed(0))
    if hasattr(m, "check_input"):
        m.check_input(x)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(
            m,
            (x,),
            tmp,
            input_names=["image"],
            output_names=["logits"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=({0: batch},),
            external_data=False,
            verbose=False,
        )
        diff = None
        if check:
            diff = onnx_parity(m, tmp, torch.cat([x, -x, 0.5 * x], 0))
            log.info("ONNX Runtime parity: max abs diff (scaled) %.3g", diff)
            if not diff <= tolerance:
                raise RuntimeError(f"ONNX Runtime output differs from PyTorch by {diff:.3g} > {tolerance:g}")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return ExportResult(path=path, input_shape=tuple(x.shape), max_abs_diff=diff)
