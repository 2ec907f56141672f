"""The project's checkpoint format: a plain dict that rebuilds its own model.

A checkpoint is a ``dict`` saved with :func:`torch.save` and read back with ``weights_only=True``::

    {
        "format": "lgmsnet-checkpoint", "format_version": 1,
        "model_name": "lgmsnet", "model_kwargs": {...},   # create_model(model_name, **model_kwargs)
        "state_dict": {...},                               # model weights
        ...                                                # optional: epoch, optimizer, scheduler, rng, config, metrics
    }

Only primitive containers, numbers, strings and tensors are stored, so loading never executes pickled code.
Writes are atomic: a crash leaves either the old file or the new one, never a truncated file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lgmsnet.models.registry import create_model, list_models

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "atomic_save",
    "convert_official_checkpoint",
    "load_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "lgmsnet-checkpoint"
_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not in the project's format."""


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, **extra: Any) -> Path:
    """Write ``model`` (built by :func:`lgmsnet.create_model`) and ``extra`` entries atomically to ``path``."""
    name = getattr(model, "model_name", None)
    kwargs = getattr(model, "model_kwargs", None)
    if name is None or kwargs is None:
        raise CheckpointError("the model has no model_name/model_kwargs; build it with lgmsnet.create_model(...)")
    inner = model.module if hasattr(model, "module") else model  # DDP / compiled wrappers
    state = {k: v.detach().cpu() for k, v in inner.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": _VERSION,
        "model_name": name,
        "model_kwargs": kwargs,
        "state_dict": state,
        **extra,
    }
    return atomic_save(payload, path)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its format.

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, or not an lgmsnet checkpoint; the message says which.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}. The file is truncated, corrupt, or holds "
            "pickled objects other than tensors and plain containers (only weights_only=True loading is allowed)."
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        hint = (
            " It looks like a bare state dict; if it comes from the authors' code, run "
            f"`lgmsnet convert-official {path} OUT.pt`."
            if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values())
            else ""
        )
        raise CheckpointError(f"{path} is not an lgmsnet checkpoint (no format={CHECKPOINT_FORMAT!r} entry).{hint}")
    if ckpt.get("format_version", 0) > _VERSION:
        raise CheckpointError(
            f"{path} has format_version {ckpt['format_version']}, newer than this lgmsnet ({_VERSION}); upgrade lgmsnet"
        )
    for key in ("model_name", "model_kwargs", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{path} lacks the {key!r} entry")
    return ckpt


def model_from_checkpoint(
    ckpt: dict[str, Any] | str | os.PathLike[str], **overrides: Any
) -> nn.Module:
    """Rebuild the model stored in a checkpoint (a loaded dict or a path), load its weights strictly.

    Args:
        ckpt: the checkpoint dict or its path.
        **overrides: constructor arguments that do not change the weights, e.g. ``attention_impl="reference"``.
    """
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    name = ckpt["model_name"]
    if name not in list_models():
        raise CheckpointError(f"checkpoint model {name!r} is unknown; registered: {', '.join(list_models())}")
    model = create_model(name, **{**ckpt["model_kwargs"], **overrides})
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit model {name!r}: {exc}") from exc
    return model


def _infer_official_kwargs(state_dict: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """Read the variant, input channels and classes off a converted reference state dict."""
    stem = state_dict.get("stem.conv.weight")
    head = state_dict.get("head.weight")
    if stem is None or head is None:
        raise CheckpointError("converted weights lack stem.conv.weight or head.weight")
    spatial_dims = stem.dim() - 2
    name = "lgmsnet" if spatial_dims == 2 else "lgmsnet_3d"
    return name, {"in_channels": int(stem.shape[1]), "num_classes": int(head.shape[0])}


def convert_official_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Turn a state dict saved by the authors' code into an lgmsnet checkpoint.

    Accepts a bare state dict or a dict holding it under ``state_dict``/``model``/``net``. The variant (2D/3D),
    input channels and number of classes are read off the weight shapes. The weights are loaded strictly into the
    rebuilt model before anything is written.
    """
    from lgmsnet.models.convert import convert_official_state_dict

    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"{src} does not exist")
    try:
        raw = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(
            f"cannot read {src} with weights_only=True ({type(exc).__name__}: {exc}). If it is a pickled whole model, "
            "load it in the authors' environment and save `model.state_dict()` instead."
        ) from exc
    if isinstance(raw, dict):
        for key in ("state_dict", "model", "net"):
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw:
        raise CheckpointError(f"{src} holds no state dict (got {type(raw).__name__})")
    converted = convert_official_state_dict(raw)
    name, kwargs = _infer_official_kwargs(converted)
    model = create_model(name, **kwargs)
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{src}: the reference weights do not fit {name!r} with {kwargs}: {exc}") from exc
    return save_checkpoint(dst, model, source={"converted_from": src.name, "converter": "convert_official_state_dict"})
