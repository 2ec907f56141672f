"""Whole networks, the variant registry and the converter for the authors' checkpoints."""

from lgmsnet.models.convert import convert_official_state_dict
from lgmsnet.models.lgmsnet import LGMSNet
from lgmsnet.models.registry import create_model, list_models, register_model, variant_kwargs

__all__ = ["LGMSNet", "convert_official_state_dict", "create_model", "list_models", "register_model", "variant_kwargs"]
