"""Reusable building blocks of LGMSNet (2D and 3D)."""

from lgmsnet.layers import blocks
from lgmsnet.layers.blocks import *  # noqa: F403 - the blocks module defines the public surface

__all__ = list(blocks.__all__)
