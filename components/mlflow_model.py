"""LGMSNet as an MLflow ``python_function`` model that segments images of any size.

Why a custom pyfunc and not ``mlflow.pytorch.log_model``: MLflow 3 saves PyTorch models with ``torch.export``
("pt2") by default, which traces ``forward`` for the input example's shapes. LGMSNet's ``forward`` needs sizes that
are multiples of 32; the padding/cropping lives in ``model.predict`` and the resize/normalisation in the data layer,
so an exported graph would freeze one image size and drop the preprocessing. Here the model is stored as an
lgmsnet checkpoint (read back with ``torch.load(weights_only=True)``, so loading runs no pickled code) and this
module, named as the pyfunc ``loader_module``, rebuilds it and applies **the same preprocessing as**
``lgmsnet evaluate`` / ``lgmsnet predict`` (no train/serve skew).

Prediction contract of ``mlflow.pyfunc.load_model(uri).predict(model_input, params)``:

* ``model_input``

  - a ``numpy.ndarray`` batch ``(B, H, W, C)``: all images one size; or
  - a ``list`` (or tuple) of arrays ``(H, W, C)`` or ``(H, W)``, each of any size (grouped by size internally).

  ``C`` is 1 or 3 (converted to the model's channels as :func:`lgmsnet.data.read_image` does: grey replicated to
  RGB, RGB reduced to luminance). dtype ``uint8`` (0–255), or float in ``[0, 1]`` (quantised to uint8 as
  ``round(x * 255)`` so that it goes through exactly the training preprocessing). Any ``H, W >= 1`` is valid.
* ``params`` (optional): ``threshold`` (probability in (0, 1), default 0.5) and ``output``: ``"mask"`` (default,
  uint8 ``{0, 1}``) or ``"probability"`` (float32 foreground probability in ``[0, 1]``).
* output: for an array batch, an array ``(B, H, W)``; for a list, a list of ``(H, W)`` arrays; always at each
  image's native size.

Image size policy: as :func:`lgmsnet.evaluation.resolve_image_policy` with ``image_size=None``: images are resized
to the training size recorded in the checkpoint's config (bilinear, then the training normalisation) and the
logits resized back to the native size; a checkpoint without that record runs at native size (replicate-padded to
the model's size multiple, logits cropped back).

The MLflow model folder holds ``MLmodel`` and ``data/lgmsnet/``: ``checkpoint.pt`` (weights and constructor kwargs, no
optimiser state), ``serving.json`` (the contract above, machine-readable) and, when given, ``model.onnx`` (a
fixed-size ONNX export for other runtimes). Loading needs ``lgmsnet`` and ``components`` importable (install this
project into the serving image).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

if TYPE_CHECKING:
    from components.tracking import TrackingSettings

__all__ = [
    "DEFAULT_PARAMS",
    "MODEL_ARTIFACT_NAME",
    "ModelLogResult",
    "SegmentationModel",
    "log_model",
    "serving_signature",
]

log = logging.getLogger(__name__)

MODEL_ARTIFACT_NAME = "model"
CHECKPOINT_FILE = "checkpoint.pt"
SERVING_FILE = "serving.json"
DATA_DIR = "lgmsnet"
"""The folder MLflow copies under the model's ``data/`` (``data/lgmsnet/checkpoint.pt`` …)."""
ONNX_FILE = "model.onnx"
MODEL_ID_TAG = "lgmsnet.model_id"
"""Run tag recording the MLflow logged-model id, so registration finds the model without searching."""

DEFAULT_PARAMS: dict[str, Any] = {"threshold": 0.5, "output": "mask"}
_OUTPUTS = ("mask", "probability")
_MAX_BATCH = 16
_MAX_PARAM = 6000
# the checkpoint entries worth serving; optimiser/scheduler/RNG state stay in the training run
_SERVED_KEYS = ("config", "data", "metrics", "epoch", "lgmsnet_version")
# MLflow's fluent model logging reads a process-wide tracking URI; serialise the switch
_FLUENT_LOCK = threading.Lock()


class SegmentationModel:
    """An lgmsnet checkpoint wrapped for prediction on raw images of any size (the pyfunc implementation).

    Args:
        checkpoint: an lgmsnet checkpoint file (loaded with ``weights_only=True``) or an already loaded dict.
        device: torch device; never chosen implicitly.

    Raises:
        CheckpointError: not a binary (1 or 2 classes) 2D model with 1 or 3 input channels.
    """

    def __init__(self, checkpoint: str | os.PathLike[str] | Mapping[str, Any], device: str = "cpu") -> None:
        from lgmsnet.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
        from lgmsnet.evaluation import resolve_image_policy

        ckpt = dict(checkpoint) if isinstance(checkpoint, Mapping) else load_checkpoint(checkpoint)
        model = model_from_checkpoint(ckpt)
        where = checkpoint if not isinstance(checkpoint, Mapping) else ckpt.get("model_name")
        self.num_classes = int(getattr(model, "num_classes", 1))
        self.in_channels = int(getattr(model, "in_channels", 3))
        if self.num_classes not in (1, 2):
            raise CheckpointError(
                f"checkpoint {where} has num_classes={self.num_classes}; the served model segments one foreground "
                "class and accepts 1 (one logit) or 2 (background/foreground) classes."
            )
        if self.in_channels not in (1, 3) or getattr(model, "spatial_dims", 2) != 2:
            raise CheckpointError(
                f"checkpoint {where} is not a 2D model with 1 or 3 input channels "
                f"(in_channels={self.in_channels}, spatial_dims={getattr(model, 'spatial_dims', 2)})."
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.policy = resolve_image_policy(None, ckpt)
        self._transform = None
        if self.policy.mode == "resize" and self.policy.image_size:
            from lgmsnet.data import build_transforms

            self._transform = build_transforms(
                "none", self.policy.image_size, train=False, in_channels=self.in_channels
            )

    # -- input handling ------------------------------------------------------------------------------------------
    def _as_images(self, model_input: Any) -> tuple[list[np.ndarray], bool]:
        """Split the input into ``H x W x in_channels`` uint8 images; True when the input was an array batch."""
        if isinstance(model_input, np.ndarray):
            if model_input.ndim != 4:
                raise ValueError(
                    f"an array input must be a batch (B, H, W, C); received shape {model_input.shape}. Wrap one "
                    "image as image[None], or pass a list of (H, W, C) / (H, W) arrays (sizes may differ)."
                )
            items: Sequence[Any] = list(model_input)
            batched = True
        elif isinstance(model_input, (list, tuple)):
            items = model_input
            batched = False
        else:
            raise TypeError(
                f"model_input must be a numpy array (B, H, W, C) or a list of arrays (H, W[, C]); received "
                f"{type(model_input).__name__}. Convert images with numpy.asarray(PIL.Image.open(path))."
            )
        if len(items) == 0:
            raise ValueError("model_input holds no image; pass at least one (H, W, C) image.")
        return [self._one_image(item, i) for i, item in enumerate(items)], batched

    def _one_image(self, item: Any, index: int) -> np.ndarray:
        array = np.asarray(item)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3) or min(array.shape[:2]) < 1:
            raise ValueError(
                f"image {index} has shape {array.shape}; expected (H, W) grey, (H, W, 1) grey or (H, W, 3) RGB "
                "with H, W >= 1."
            )
        if array.dtype == np.uint8:
            pixels = array
        elif np.issubdtype(array.dtype, np.floating):
            finite = np.isfinite(array)
            low, high = (float(array.min()), float(array.max())) if finite.all() else (np.nan, np.nan)
            if not (low >= 0.0 and high <= 1.0):
                raise ValueError(
                    f"image {index} is {array.dtype} with values in [{low}, {high}]; float images must lie in [0, 1]. "
                    "Divide 0-255 images by 255 or pass them as uint8."
                )
            pixels = np.rint(array * 255.0).astype(np.uint8)
        elif np.issubdtype(array.dtype, np.integer):  # e.g. JSON over REST arrives as int64
            low, high = int(array.min()), int(array.max())
            if low < 0 or high > 255:
                raise ValueError(
                    f"image {index} is {array.dtype} with values in [{low}, {high}]; integer images must lie in "
                    "[0, 255] (8-bit). Rescale 16-bit images to 8 bits first."
                )
            pixels = array.astype(np.uint8)
        else:
            raise TypeError(f"image {index} has dtype {array.dtype}; pass uint8 (0-255) or float in [0, 1].")
        if self.in_channels == 3:
            return np.ascontiguousarray(np.repeat(pixels[..., None], 3, axis=2)) if pixels.ndim == 2 else pixels
        if pixels.ndim == 3:
            pixels = np.asarray(Image.fromarray(pixels).convert("L"))  # ITU-R 601-2 luminance, as read_image
        return pixels[..., None]

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        from lgmsnet.data import normalize_image

        if self._transform is not None:
            array = np.asarray(self._transform(image=image)["image"], dtype=np.float32)
        else:
            array = normalize_image(image, self.in_channels)
        if array.ndim == 2:
            array = array[..., None]
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    @staticmethod
    def _params(params: Mapping[str, Any] | None) -> tuple[float, str]:
        merged = {**DEFAULT_PARAMS, **(params or {})}
        unknown = sorted(set(merged) - set(DEFAULT_PARAMS))
        if unknown:
            raise ValueError(f"unknown params {unknown}; allowed: {sorted(DEFAULT_PARAMS)}.")
        threshold = float(merged["threshold"])
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"params['threshold'] must be a probability in (0, 1); received {merged['threshold']!r}.")
        output = str(merged["output"])
        if output not in _OUTPUTS:
            raise ValueError(f"params['output'] must be one of {_OUTPUTS}; received {merged['output']!r}.")
        return threshold, output

    # -- prediction ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def logits(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Foreground logits ``(H, W)`` at each image's native size (images already ``H x W x in_channels`` uint8)."""
        inputs = [self._tensor(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):
            groups.setdefault(tuple(x.shape), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(inputs)
        for indices in groups.values():
            for start in range(0, len(indices), _MAX_BATCH):
                chunk = indices[start : start + _MAX_BATCH]
                batch = torch.stack([inputs[i] for i in chunk]).to(self.device)
                logit = _foreground_logit(self.model.predict(batch)).float()
                for j, i in enumerate(chunk):
                    one = logit[j : j + 1]
                    native = tuple(images[i].shape[:2])
                    if tuple(one.shape[-2:]) != native:
                        one = F.interpolate(one, size=native, mode="bilinear", align_corners=False)
                    out[i] = one[0, 0].cpu()
        return [t for t in out if t is not None]

    def predict(
        self, model_input: np.ndarray | Sequence[np.ndarray], params: Mapping[str, Any] | None = None
    ) -> np.ndarray | list[np.ndarray]:
        """Segment images (see the module docstring for the contract).

        Args:
            model_input: an array batch ``(B, H, W, C)`` or a list of ``(H, W[, C])`` arrays of any sizes.
            params: ``{"threshold": 0.5, "output": "mask" | "probability"}`` (both optional).

        Returns:
            ``(B, H, W)`` array for an array input, else a list of ``(H, W)`` arrays: uint8 ``{0, 1}`` masks or
            float32 probabilities.

        Raises:
            ValueError, TypeError: the input or params break the contract (the message says what is allowed).
        """
        from lgmsnet.metrics import binarize

        threshold, output = self._params(params)
        images, batched = self._as_images(model_input)
        results: list[np.ndarray] = []
        for logit in self.logits(images):
            if output == "probability":
                results.append(torch.sigmoid(logit).numpy().astype(np.float32))
            else:
                results.append(binarize(logit[None], threshold=threshold)[0].numpy().astype(np.uint8))
        return np.stack(results) if batched else results


def _foreground_logit(logits: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` foreground logit: the single channel, or ``l1 - l0`` for two classes (as evaluation does)."""
    return logits if logits.shape[1] == 1 else logits[:, 1:2] - logits[:, 0:1]


def _load_pyfunc(data_path: str) -> SegmentationModel:
    """MLflow's ``loader_module`` hook: rebuild the model from ``data/lgmsnet/`` of a logged model."""
    root = Path(data_path)
    device = os.environ.get("LGMSNET_SERVING_DEVICE", "cpu")
    return SegmentationModel(root / CHECKPOINT_FILE, device=device)


# --------------------------------------------------------------------------------------------- logging


@dataclass(frozen=True)
class ModelLogResult:
    """What :func:`log_model` logged.

    Attributes:
        run_id: the run the model belongs to.
        model_id: MLflow's logged-model id.
        model_uri: ``models:/<model_id>`` (loadable with ``mlflow.pyfunc.load_model``).
        artifact_path: the model's name within the run.
        onnx_logged: whether ``data/lgmsnet/model.onnx`` is part of the model.
    """

    run_id: str
    model_id: str
    model_uri: str
    artifact_path: str
    onnx_logged: bool


def serving_signature() -> Any:
    """The model signature: a params schema (threshold, output) and no fixed input schema.

    No input schema on purpose: a tensor schema would force one image size per call and reject a list of
    differently sized images; the input is checked by :meth:`SegmentationModel.predict` instead.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    return ModelSignature(
        inputs=None,
        params=ParamSchema(
            [ParamSpec("threshold", "double", DEFAULT_PARAMS["threshold"]), ParamSpec("output", "string", "mask")]
        ),
    )


def _requirements() -> list[str]:
    """Pinned runtime requirements (given explicitly: MLflow's inference would import the model in a subprocess)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("torch", "numpy", "pillow", "pyyaml", "albumentations", "opencv-python-headless", "mlflow"):
        try:
            reqs.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            reqs.append(dist)
    return reqs


@contextmanager
def _fluent_tracking_uri(uri: str | None) -> Iterator[None]:
    """Point MLflow's process-wide (fluent) tracking URI at ``uri`` for the block, then restore it.

    MLflow's own switch clears ``MLFLOW_TRACKING_URI`` on the way out when no URI had been set in-process; the
    caller's environment variable is restored here.
    """
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _FLUENT_LOCK:
        if uri is None:
            yield
            return
        saved = os.environ.get("MLFLOW_TRACKING_URI")
        try:
            with _use_tracking_uri(uri):
                yield
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved


def _check_onnx(path: Path) -> None:
    """Refuse a missing or malformed ONNX file before anything is logged."""
    if not path.is_file():
        raise FileNotFoundError(f"onnx_path {path} does not exist; export it with `lgmsnet export` or pass None.")
    try:
        import onnx
    except ImportError:  # optional dependency: log the file unchecked
        log.warning("onnx is not installed; %s is logged without a format check", path)
        return
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for a bad file
        raise ValueError(f"onnx_path {path} is not a valid ONNX model ({type(exc).__name__}: {exc}); export it "
                         "again with `lgmsnet export --checkpoint CKPT`.") from exc


def _slim_checkpoint(ckpt: Mapping[str, Any], path: Path) -> None:
    from lgmsnet.checkpoint import atomic_save

    payload = {k: ckpt[k] for k in ("format", "format_version", "model_name", "model_kwargs", "state_dict")}
    payload.update({k: ckpt[k] for k in _SERVED_KEYS if k in ckpt})
    atomic_save(payload, path)


def log_model(
    run_id: str,
    checkpoint: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str] | None = None,
    name: str = MODEL_ARTIFACT_NAME,
    *,
    tracking_uri: str | None = None,
    settings: TrackingSettings | None = None,
) -> ModelLogResult:
    """Log an lgmsnet checkpoint to an existing run as a pyfunc model (and the ONNX export inside it).

    The model's ``data/lgmsnet/`` folder holds the weights-only checkpoint, ``serving.json`` and, when ``onnx_path`` is
    given, ``model.onnx``. The run gets the tag ``lgmsnet.model_id`` for registration.

    Args:
        run_id: the MLflow run (e.g. :attr:`components.tracking.MLflowWriter.run_id`).
        checkpoint: lgmsnet checkpoint file (``best.pt``).
        onnx_path: an ONNX export of the same weights (:func:`lgmsnet.export.export_onnx`); None for none.
        name: the model's name within the run.
        tracking_uri: MLflow tracking URI (default: ``MLFLOW_TRACKING_URI`` / MLflow's default).
        settings: :class:`components.tracking.TrackingSettings` (retries, timeouts).

    Returns:
        :class:`ModelLogResult`.

    Raises:
        CheckpointError: the checkpoint is unreadable or not a servable model.
        FileNotFoundError: ``onnx_path`` does not exist.
        ValueError: ``onnx_path`` is not a valid ONNX model.
        TrackingError: the tracking server is unreachable (after bounded retries) or refused the model.
    """
    import mlflow
    from mlflow.models import Model

    from components import tracking
    from lgmsnet.checkpoint import load_checkpoint

    uri = tracking.resolve_tracking_uri(tracking_uri)
    ckpt = load_checkpoint(checkpoint)
    served = SegmentationModel(ckpt)  # fail before anything is written
    if onnx_path is not None:
        _check_onnx(Path(onnx_path))
    tmp = Path(tempfile.mkdtemp(prefix="lgmsnet-model-"))
    try:
        data = tmp / DATA_DIR
        data.mkdir()
        _slim_checkpoint(ckpt, data / CHECKPOINT_FILE)
        contract = {
            "input": "numpy array (B, H, W, C) or list of (H, W[, C]) arrays; uint8 0-255 or float in [0, 1]; C 1 or 3",
            "output": "(B, H, W) array for an array input, list of (H, W) arrays for a list; mask {0,1} or probability",
            "params": DEFAULT_PARAMS,
            "image_size_policy": served.policy.to_dict(),
            "model_name": ckpt["model_name"],
            "model_kwargs": ckpt["model_kwargs"],
            "in_channels": served.in_channels,
            "num_classes": served.num_classes,
            "onnx": ONNX_FILE if onnx_path is not None else None,
        }
        (data / SERVING_FILE).write_text(json.dumps(contract, indent=1, default=str) + "\n", encoding="utf-8")
        if onnx_path is not None:
            shutil.copyfile(onnx_path, data / ONNX_FILE)
        with tracking.bounded_http(settings), tracking.translate_errors(uri, f"log the model of run {run_id}"):
            tracking.check_tracking_server(uri, settings)
            client = tracking.client(uri)
            run = client.get_run(run_id)
            # Create the logged model in the run's experiment ourselves: Model.log would otherwise put it in the
            # process's active experiment (the Default one when none is set), not the run's.
            logged = client.create_logged_model(
                experiment_id=run.info.experiment_id,
                name=name,
                source_run_id=run_id,
                params={k: v[:_MAX_PARAM] for k, v in run.data.params.items()},
                tags={"lgmsnet.model_name": str(ckpt["model_name"])},
            )
            with _fluent_tracking_uri(uri):
                info = Model.log(
                    artifact_path=None,
                    name=name,
                    flavor=mlflow.pyfunc,
                    run_id=run_id,
                    model_id=logged.model_id,
                    loader_module=__name__,
                    data_path=str(data),
                    signature=serving_signature(),
                    input_example=np.zeros((1, 32, 32, served.in_channels), np.uint8),
                    pip_requirements=_requirements(),
                    metadata={"lgmsnet_model_name": ckpt["model_name"], "serving_contract": SERVING_FILE},
                )
            client.set_tag(run_id, MODEL_ID_TAG, info.model_id)
            if onnx_path is not None:
                client.set_tag(run_id, "lgmsnet.onnx", f"{info.model_uri}/data/{DATA_DIR}/{ONNX_FILE}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("logged model %s of run %s (%s)", info.model_uri, run_id, name)
    return ModelLogResult(
        run_id=run_id,
        model_id=info.model_id,
        model_uri=info.model_uri,
        artifact_path=name,
        onnx_logged=onnx_path is not None,
    )
