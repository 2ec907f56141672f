"""Model registry: variants of :class:`~lgmsnet.models.lgmsnet.LGMSNet` registered by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from lgmsnet.models.lgmsnet import LGMSNet

__all__ = ["create_model", "list_models", "register_model", "variant_kwargs"]

_REGISTRY: dict[str, dict[str, Any]] = {}
_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, builder: Callable[..., nn.Module] | None = None, **defaults: Any) -> None:
    """Register ``name``: an :class:`LGMSNet` built with ``defaults`` (overridable at creation).

    ``builder`` registers another network under the same contract (``builder(in_channels=..., num_classes=...,
    **kwargs) -> nn.Module``), e.g. a peer baseline for benchmarks; LGMSNet variants leave it ``None``.
    """
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = dict(defaults)
    _BUILDERS[name] = builder or LGMSNet


def list_models() -> list[str]:
    """Return the registered model names, sorted."""
    return sorted(_REGISTRY)


def variant_kwargs(name: str) -> dict[str, Any]:
    """Return a copy of the constructor defaults of variant ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return dict(_REGISTRY[name])


def create_model(name: str = "lgmsnet", in_channels: int = 3, num_classes: int = 1, **kwargs: Any) -> nn.Module:
    """Build a registered LGMSNet variant.

    Args:
        name: a name from :func:`list_models`.
        in_channels: 1 (grey) or 3 (RGB), or any positive count.
        num_classes: 1 for binary logits, >1 for multiclass logits.
        **kwargs: override any :class:`LGMSNet` constructor argument, e.g. ``attention_impl="reference"``.

    Returns:
        The model, with ``model_name`` and ``model_kwargs`` attributes that rebuild it
        (``create_model(model.model_name, **model.model_kwargs)``); checkpoints store both.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or invalid arguments.
    """
    defaults = variant_kwargs(name)
    init = {**defaults, "in_channels": in_channels, "num_classes": num_classes, **kwargs}
    try:
        model = _BUILDERS[name](**init)
    except TypeError as exc:  # unknown keyword
        raise ValueError(f"bad argument for model {name!r}: {exc}") from exc
    model.model_name = name
    model.model_kwargs = {"in_channels": in_channels, "num_classes": num_classes, **_plain(kwargs)}
    return model


def _plain(obj: Any) -> Any:
    """Tuples → lists recursively, so kwargs survive YAML/JSON and ``torch.load(weights_only=True)``."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


register_model("lgmsnet")
register_model("lgmsnet_3d", spatial_dims=3)
# Tiny variants: same topology, a fraction of the width; for tests and smoke runs.
_TINY = {"dims": (8, 8, 16, 16, 16), "hybrid_splits": ((8, 8), (8, 8), (8, 8), (8, 8)), "heads": 2, "head_dim": 4}
register_model("lgmsnet_tiny", **_TINY)
register_model("lgmsnet_tiny_3d", spatial_dims=3, **_TINY)
