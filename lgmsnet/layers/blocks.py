"""Reusable LGMSNet building blocks, for 2D and 3D inputs.

Every block takes ``spatial_dims`` (2 or 3) and builds the matching ``Conv2d``/``Conv3d`` and
normalisation layers, so the same class serves both variants. Names follow what the block does,
not the reference implementation; :mod:`lgmsnet.models.convert` maps the reference key names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

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
    "conv_nd",
    "make_norm",
]

ATTENTION_IMPLS = ("sdpa", "reference")


def conv_nd(spatial_dims: int) -> type[nn.Module]:
    """Return ``nn.Conv2d`` or ``nn.Conv3d`` for ``spatial_dims`` 2 or 3."""
    if spatial_dims == 2:
        return nn.Conv2d
    if spatial_dims == 3:
        return nn.Conv3d
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")


def make_norm(kind: str, channels: int, spatial_dims: int) -> nn.Module:
    """Build a normalisation layer.

    Args:
        kind: ``"batch"`` (BatchNorm), ``"instance"`` (InstanceNorm, affine=False, as the 3D reference) or
            ``"group4"`` (GroupNorm with 4 groups).
        channels: number of channels.
        spatial_dims: 2 or 3.
    """
    if kind == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels)
    if kind == "group4":
        return nn.GroupNorm(4, channels)
    raise ValueError(f"unknown norm kind {kind!r}; valid: batch, instance, group4")


class ConvNormAct(nn.Module):
    """Convolution → normalisation → activation (activation may be ``None``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        spatial_dims: int = 2,
        norm: str = "batch",
        act: type[nn.Module] | None = nn.ReLU,
        bias: bool = False,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.conv = conv_nd(spatial_dims)(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias, groups=groups
        )
        self.norm = make_norm(norm, out_channels, spatial_dims)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class HeteroKernelBlock(nn.Module):
    """Local multiscale block: depthwise kernels of different sizes on channel groups.

    The ``C`` channels are split into ``len(kernel_sizes)`` equal groups; group ``i`` goes through a depthwise
    convolution with kernel ``kernel_sizes[i]``. The result is added to the input, normalised (GroupNorm) and
    activated (GELU), squeezed to ``C/4`` and expanded back to ``C`` (1×1 then 3×3, BN + SiLU each), and the block
    input is added again.

    Shape:
        input ``(B, C, *spatial)`` → output ``(B, C, *spatial)``.
    """

    def __init__(
        self,
        channels: int,
        kernel_sizes: Sequence[int] = (3, 5, 7, 9),
        *,
        spatial_dims: int = 2,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        groups = len(kernel_sizes)
        if channels % groups or channels % 4:
            raise ValueError(
                f"HeteroKernelBlock needs channels divisible by 4 and by the {groups} kernel groups, got {channels}"
            )
        self.split = channels // groups
        conv = conv_nd(spatial_dims)
        self.dw = nn.ModuleList(
            conv(self.split, self.split, k, padding=k // 2, groups=self.split, bias=True) for k in kernel_sizes
        )
        self.norm = nn.GroupNorm(4, channels)
        self.act = nn.GELU()
        self.reduce = ConvNormAct(channels, channels // 4, 1, spatial_dims=spatial_dims, norm=norm, act=nn.SiLU)
        self.expand = ConvNormAct(channels // 4, channels, 3, spatial_dims=spatial_dims, norm=norm, act=nn.SiLU)
        self.merged: nn.Module | None = None

    @torch.no_grad()
    def merge_kernels(self) -> None:
        """Replace the per-group depthwise convolutions by one depthwise convolution with the largest kernel.

        Each group's kernel is zero-padded to the largest size, so the output is unchanged (the extra taps add
        exact zeros) while one convolution call replaces a split, four calls and a concatenation. For inference:
        trained further, the zero taps would learn and change the architecture. Not reversible.
        """
        if self.merged is not None:
            return
        first = self.dw[0]
        kmax = max(c.kernel_size[0] for c in self.dw)
        channels = self.split * len(self.dw)
        dims = first.weight.dim() - 2
        merged = conv_nd(dims)(channels, channels, kmax, padding=kmax // 2, groups=channels, bias=True)
        merged.weight.zero_()
        for i, conv in enumerate(self.dw):
            o = (kmax - conv.kernel_size[0]) // 2
            region = (slice(i * self.split, (i + 1) * self.split), slice(None)) + (slice(o, o + conv.kernel_size[0]),) * dims
            merged.weight[region] = conv.weight
            merged.bias[i * self.split : (i + 1) * self.split] = conv.bias
        self.merged = merged.to(first.weight.device, first.weight.dtype)
        del self.dw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged is not None:
            y = self.merged(x) + x
        else:
            parts = torch.split(x, self.split, dim=1)
            y = torch.cat([conv(p) for conv, p in zip(self.dw, parts)], dim=1) + x
        y = self.act(self.norm(y))
        return self.expand(self.reduce(y)) + x


class DepthwiseConvBranch(nn.Module):
    """Convolution branch of the hybrid block: depthwise 3×3 → BN → ReLU → per-channel 1×1 → BN, plus residual.

    BatchNorm is kept in 3D too, as in the reference.
    """

    def __init__(self, channels: int, *, spatial_dims: int = 2) -> None:
        super().__init__()
        conv = conv_nd(spatial_dims)
        self.dw = conv(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.norm1 = make_norm("batch", channels, spatial_dims)
        self.act = nn.ReLU()
        self.pw = conv(channels, channels, 1, groups=channels, bias=False)
        self.norm2 = make_norm("batch", channels, spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.pw(self.act(self.norm1(self.dw(x))))) + x


class Attention(nn.Module):
    """Pre-norm multi-head self-attention over token sequences, no positional encoding.

    Args:
        dim: token width.
        heads: number of heads.
        head_dim: width of each head.
        impl: ``"sdpa"`` (``F.scaled_dot_product_attention``, the default) or ``"reference"`` (explicit
            matmul-softmax, as the authors' code). Both compute the same function.

    Shape:
        input ``(B, N, dim)`` → output ``(B, N, dim)`` (the residual is added by the caller).
    """

    def __init__(self, dim: int, heads: int = 4, head_dim: int = 8, impl: str = "sdpa") -> None:
        super().__init__()
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
        self.heads = heads
        self.head_dim = head_dim
        self.impl = impl
        inner = heads * head_dim
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
            out = torch.matmul(attn.softmax(dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))


class FeedForward(nn.Module):
    """Pre-norm MLP: LayerNorm → Linear → SiLU → Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class TransformerLayer(nn.Module):
    """``x = attn(x) + x; x = mlp(x) + x`` (no final norm)."""

    def __init__(self, dim: int, hidden: int, heads: int, head_dim: int, impl: str) -> None:
        super().__init__()
        self.attn = Attention(dim, heads, head_dim, impl)
        self.mlp = FeedForward(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(x) + x
        return self.mlp(x) + x


def _to_subgrid_tokens(x: torch.Tensor, patch: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``(B, C, H, W[, D])`` → ``(B·patch^n, H/p·W/p[·D/p], C)``: one sequence per offset inside each patch."""
    b, c, *sp = x.shape
    n = len(sp)
    grid = [s // patch for s in sp]
    # (B, C, g1, p, g2, p[, g3, p])
    x = x.reshape(b, c, *[v for g in grid for v in (g, patch)])
    # → (B, p, p[, p], g1, g2[, g3], C)
    perm = [0] + [3 + 2 * i for i in range(n)] + [2 + 2 * i for i in range(n)] + [1]
    x = x.permute(*perm)
    return x.reshape(b * patch**n, math.prod(grid), c), (b, c, *grid)


def _from_subgrid_tokens(x: torch.Tensor, meta: tuple[int, ...], patch: int) -> torch.Tensor:
    """Inverse of :func:`_to_subgrid_tokens`."""
    b, c, *grid = meta
    n = len(grid)
    x = x.reshape(b, *([patch] * n), *grid, c)
    # (B, p.., g.., C) → (B, C, g1, p, g2, p, ...)
    perm = [0, 1 + 2 * n]
    for i in range(n):
        perm += [1 + n + i, 1 + i]
    x = x.permute(*perm)
    return x.reshape(b, c, *[g * patch for g in grid])


class HybridBlock(nn.Module):
    """Global multiscale block: a sparse transformer and a depthwise conv branch side by side.

    ``x → conv3×3 (in→C) → conv1×1``; the first ``split[0]`` channels go to a transformer that attends within each
    of the ``patch^n`` interleaved sub-grids (one token sequence per offset inside each ``patch``-sized cell), the
    last ``split[1]`` to :class:`DepthwiseConvBranch`; the two are concatenated, mixed by a 1×1 conv, concatenated
    with the block input and fused by a 3×3 conv to ``C`` channels.

    Shape:
        input ``(B, in, *spatial)``, each spatial size divisible by ``patch`` → output ``(B, C, *spatial)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        split: tuple[int, int],
        mlp_dim: int,
        *,
        depth: int = 1,
        heads: int = 4,
        head_dim: int = 8,
        patch: int = 2,
        attention_impl: str = "sdpa",
        spatial_dims: int = 2,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if sum(split) != channels:
            raise ValueError(f"hybrid split {split} must add up to the block width {channels}")
        self.split = tuple(split)
        self.patch = patch
        kw = {"spatial_dims": spatial_dims, "norm": norm, "act": nn.SiLU}
        self.local = ConvNormAct(in_channels, channels, 3, **kw)
        self.proj_in = ConvNormAct(channels, channels, 1, **kw)
        self.conv_branch = DepthwiseConvBranch(split[1], spatial_dims=spatial_dims)
        self.transformer = nn.Sequential(
            *[TransformerLayer(split[0], mlp_dim, heads, head_dim, attention_impl) for _ in range(depth)]
        )
        self.proj_out = ConvNormAct(channels, channels, 1, **kw)
        self.fuse = ConvNormAct(channels + in_channels, channels, 3, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj_in(self.local(x))
        xt, xc = torch.split(y, self.split, dim=1)
        tokens, meta = _to_subgrid_tokens(xt, self.patch)
        xt = _from_subgrid_tokens(self.transformer(tokens), meta, self.patch)
        y = self.proj_out(torch.cat([xt, self.conv_branch(xc)], dim=1))
        return self.fuse(torch.cat([y, x], dim=1))


class SkipFusion(nn.Module):
    """Fuse a concatenated skip: grouped 3×3 → GELU → norm → 1×1 (×4 width) → GELU → norm → 1×1 → GELU → norm.

    Activation comes before normalisation and there is no residual, as in the reference.
    """

    def __init__(self, in_channels: int, out_channels: int, *, spatial_dims: int = 2, norm: str = "batch") -> None:
        super().__init__()
        conv = conv_nd(spatial_dims)
        hidden = 4 * out_channels
        self.conv1 = conv(in_channels, in_channels, 3, padding=1, groups=2)
        self.norm1 = make_norm(norm, in_channels, spatial_dims)
        self.conv2 = conv(in_channels, hidden, 1)
        self.norm2 = make_norm(norm, hidden, spatial_dims)
        self.conv3 = conv(hidden, out_channels, 1)
        self.norm3 = make_norm(norm, out_channels, spatial_dims)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.act(self.conv1(x)))
        x = self.norm2(self.act(self.conv2(x)))
        return self.norm3(self.act(self.conv3(x)))


class UpConv(nn.Module):
    """×2 (bi/tri)linear upsampling (align_corners=False) → 3×3 conv (bias) → norm → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, spatial_dims: int = 2, norm: str = "batch") -> None:
        super().__init__()
        self.mode = "bilinear" if spatial_dims == 2 else "trilinear"
        self.block = ConvNormAct(in_channels, out_channels, 3, spatial_dims=spatial_dims, norm=norm, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode=self.mode, align_corners=False)
        return self.block(x)
