"""Reusable building blocks of LGMSNet (2D and 3D)."""

from lgmsnet.layers.blocks import (
    ATTENTION_IMPLS,
    Attention,
    ConvNormAct,
    DepthwiseConvBranch,
    FeedForward,
    HeteroKernelBlock,
    HybridBlock,
    SkipFusion,
    TransformerLayer,
    UpConv,
)

__all__ = [
    "ATTENTION_IMPLS",
    "Attention",
    "ConvNormAct",
    "DepthwiseConvBranch",
    "FeedForward",
    "HeteroKernelBlock",
    "HybridBlock",
    "SkipFusion",
    "TransformerLayer",
    "UpConv",
]
