"""LGMSNet: a lightweight medical image segmentation network and its training/evaluation engine.

The model library is pure PyTorch: importing :mod:`lgmsnet` never imports kfp, mlflow, dvc or great_expectations.
"""

from lgmsnet.models import LGMSNet, convert_official_state_dict, create_model, list_models, register_model

__version__ = "0.1.0"

__all__ = ["LGMSNet", "__version__", "convert_official_state_dict", "create_model", "list_models", "register_model"]
