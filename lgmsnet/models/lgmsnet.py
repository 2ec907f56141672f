"""The LGMSNet network: one class, variants differ only in constructor arguments."""

from __future__ import annotations

from collections.abc import Sequence
import torch
import torch.nn.functional as F
from torch import nn

from lgmsnet.layers.blocks import (
    ATTENTION_IMPLS,
    ConvNormAct,
    HeteroKernelBlock,
    HybridBlock,
    SkipFusion,
    UpConv,
    conv_nd,
)

__all__ = ["LGMSNet"]


class _EncoderStage(nn.Module):
    """Optional max-pool, a mixing block, and an optional 1×1 projection."""

    def __init__(self, block: nn.Module, proj: nn.Module | None, pool: bool, spatial_dims: int) -> None:
        super().__init__()
        self.pool = (nn.MaxPool2d(2) if spatial_dims == 2 else nn.MaxPool3d(2)) if pool else nn.Identity()
        self.block = block
        self.proj = proj if proj is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.block(self.pool(x)))


class _DecoderStage(nn.Module):
    """Up-convolution, concatenation ``[skip, upsampled]``, then skip fusion and/or a hybrid block."""

    def __init__(self, up: nn.Module, fuse: nn.Module | None, mixer: nn.Module | None) -> None:
        super().__init__()
        self.up = up
        self.fuse = fuse if fuse is not None else nn.Identity()
        self.mixer = mixer if mixer is not None else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.mixer(self.fuse(torch.cat([skip, self.up(x)], dim=1)))


class LGMSNet(nn.Module):
    """LGMSNet: a lightweight U-shaped network with dual-level multiscale fusion (Dong et al., ECAI 2025).

    Encoder: a conv stem, heterogeneous-kernel blocks (local multiscale) on the shallow levels and hybrid
    transformer/convolution blocks (global multiscale) on the deep ones. Decoder: up-convolutions whose
    concatenated skips go through a skip-fusion block and/or a hybrid block. The output is logits (no sigmoid).

    Args:
        in_channels: image channels (1 grey, 3 RGB).
        num_classes: output channels; 1 = binary logits, >1 = multiclass logits.
        dims: widths of the five encoder levels.
        kernel_sizes: depthwise kernels of the heterogeneous-kernel blocks, one per channel group.
        hybrid_splits: (transformer, conv) channel split of each hybrid block, in the order
            encoder level 4, encoder level 5, decoder level 4, decoder level 3.
        heads: attention heads; ``head_dim``: width of each head.
        mlp_ratio: hidden width of the feed-forward = ``mlp_ratio`` × the block width.
        depth: transformer layers per hybrid block.
        patch: sub-grid stride of the sparse attention (tokens attend within one offset of each patch).
        spatial_dims: 2 (images) or 3 (volumes). 3D uses InstanceNorm where the 2D net uses BatchNorm, as the
            reference; the hybrid conv branch keeps BatchNorm.
        attention_impl: ``"sdpa"`` (fused ``scaled_dot_product_attention``) or ``"reference"``.

    Shape:
        input ``(B, in_channels, H, W[, D])`` with every spatial size a multiple of :attr:`size_multiple`
        → logits ``(B, num_classes, H, W[, D])``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        dims: Sequence[int] = (16, 32, 64, 128, 128),
        kernel_sizes: Sequence[int] = (3, 5, 7, 9),
        hybrid_splits: Sequence[Sequence[int]] = ((96, 32), (96, 32), (96, 32), (48, 16)),
        heads: int = 4,
        head_dim: int = 8,
        mlp_ratio: int = 2,
        depth: int = 1,
        patch: int = 2,
        spatial_dims: int = 2,
        attention_impl: str = "sdpa",
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1 (1 grey, 3 RGB), got {in_channels}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (1 = binary logits), got {num_classes}")
        if len(dims) != 5:
            raise ValueError(f"dims must have 5 entries (one per encoder level), got {tuple(dims)}")
        if len(hybrid_splits) != 4:
            raise ValueError(f"hybrid_splits must have 4 (transformer, conv) pairs, got {len(hybrid_splits)}")
        if attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}, got {attention_impl!r}")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.spatial_dims = spatial_dims
        self.size_multiple = 2 ** (len(dims) - 1) * patch
        norm = "batch" if spatial_dims == 2 else "instance"
        c1, c2, c3, c4, c5 = dims
        sd = {"spatial_dims": spatial_dims, "norm": norm}
        silu = {"spatial_dims": spatial_dims, "norm": norm, "act": nn.SiLU}
        hyb = {
            "heads": heads,
            "head_dim": head_dim,
            "patch": patch,
            "depth": depth,
            "attention_impl": attention_impl,
            **sd,
        }
        s = [tuple(p) for p in hybrid_splits]

        self.stem = ConvNormAct(in_channels, c1, 3, bias=True, **sd)
        self.enc1 = _EncoderStage(
            HeteroKernelBlock(c1, kernel_sizes, **sd), ConvNormAct(c1, c1, 1, **silu), False, spatial_dims
        )
        self.enc2 = _EncoderStage(
            HeteroKernelBlock(c1, kernel_sizes, **sd), ConvNormAct(c1, c2, 1, **silu), True, spatial_dims
        )
        self.enc3 = _EncoderStage(
            HeteroKernelBlock(c2, kernel_sizes, **sd), ConvNormAct(c2, c3, 1, **silu), True, spatial_dims
        )
        self.enc4 = _EncoderStage(HybridBlock(c3, c4, s[0], mlp_ratio * c4, **hyb), None, True, spatial_dims)
        self.enc5 = _EncoderStage(HybridBlock(c4, c5, s[1], mlp_ratio * c5, **hyb), None, True, spatial_dims)

        self.dec4 = _DecoderStage(
            UpConv(c5, c4, **sd), None, HybridBlock(2 * c4, c4, s[2], mlp_ratio * c4, **hyb)
        )
        self.dec3 = _DecoderStage(
            UpConv(c4, c3, **sd),
            SkipFusion(2 * c3, c3, **sd),
            HybridBlock(c3, c3, s[3], mlp_ratio * c3, **hyb),
        )
        self.dec2 = _DecoderStage(UpConv(c3, c2, **sd), SkipFusion(2 * c2, c2, **sd), None)
        self.dec1 = _DecoderStage(UpConv(c2, c1, **sd), SkipFusion(2 * c1, c1, **sd), None)
        self.head = conv_nd(spatial_dims)(c1, num_classes, 1)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` with the fix spelled out if ``x`` cannot go through the network."""
        if x.dim() != self.spatial_dims + 2:
            raise ValueError(
                f"expected a {self.spatial_dims + 2}-D input (B, C, {'H, W' if self.spatial_dims == 2 else 'H, W, D'}), "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected {self.in_channels} input channel(s), got {x.shape[1]} (shape {tuple(x.shape)}); "
                f"convert the images or build the model with in_channels={x.shape[1]}"
            )
        bad = [s for s in x.shape[2:] if s % self.size_multiple]
        if bad:
            m = self.size_multiple
            padded = tuple(-(-s // m) * m for s in x.shape[2:])
            raise ValueError(
                f"spatial size {tuple(x.shape[2:])} is not a multiple of {m}; pad (or resize) the input to a "
                f"multiple of {m}, e.g. {padded}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self.check_input(x)
        x1 = self.enc1(self.stem(x))
        x2 = self.enc2(x1)
        x3 = self.enc3(x2)
        x4 = self.enc4(x3)
        x5 = self.enc5(x4)
        d = self.dec4(x5, x4)
        d = self.dec3(d, x3)
        d = self.dec2(d, x2)
        d = self.dec1(d, x1)
        return self.head(d)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Pad ``x`` to the size multiple, run the network, crop back; returns logits of ``x``'s size."""
        pads: list[int] = []
        for s in reversed(x.shape[2:]):
            pads += [0, -(-s // self.size_multiple) * self.size_multiple - s]
        out = self(F.pad(x, pads, mode="replicate") if any(pads) else x)
        return out[(..., *[slice(0, s) for s in x.shape[2:]])]

    def extra_repr(self) -> str:
        return f"spatial_dims={self.spatial_dims}, size_multiple={self.size_multiple}"
