"""Map state dicts of the authors' implementation onto :class:`~lgmsnet.models.lgmsnet.LGMSNet` key names.

The reference model (``MKtinyvit4_CT`` in the authors' code) names its modules ``stem``, ``encoder1..5``,
``Up5..2``, ``Up_conv5..2`` and ``Conv_1x1``. Each rule below maps one reference module path onto ours; a key
that no rule matches is an error, so a checkpoint from a different architecture cannot load half-way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

__all__ = ["convert_official_state_dict"]

# Inside a heterogeneous-kernel block.
_HK = [
    (r"norm_act\.0\.", "norm."),
    (r"local_dwc\.", "dw.0."),
    (r"global_dwc_s\.", "dw.1."),
    (r"global_dwc_m\.", "dw.2."),
    (r"global_dwc_l\.", "dw.3."),
    (r"conv_1x1_bn\.0\.", "reduce.conv."),
    (r"conv_1x1_bn\.1\.", "reduce.norm."),
    (r"conv_nxn_bn\.0\.", "expand.conv."),
    (r"conv_nxn_bn\.1\.", "expand.norm."),
]
# Inside a hybrid transformer/convolution block.
_HYBRID = [
    (r"conv1\.0\.", "local.conv."),
    (r"conv1\.1\.", "local.norm."),
    (r"conv2\.0\.", "proj_in.conv."),
    (r"conv2\.1\.", "proj_in.norm."),
    (r"conv3\.0\.", "proj_out.conv."),
    (r"conv3\.1\.", "proj_out.norm."),
    (r"conv4\.0\.", "fuse.conv."),
    (r"conv4\.1\.", "fuse.norm."),
    (r"conv_spilt\.dwconv3x3(?:x3)?\.", "conv_branch.dw."),
    (r"conv_spilt\.bn1\.", "conv_branch.norm1."),
    (r"conv_spilt\.dwconv1x1(?:x1)?\.", "conv_branch.pw."),
    (r"conv_spilt\.bn2\.", "conv_branch.norm2."),
    (r"transformer\.layers\.(\d+)\.0\.norm\.", r"transformer.\1.attn.norm."),
    (r"transformer\.layers\.(\d+)\.0\.to_qkv\.", r"transformer.\1.attn.qkv."),
    (r"transformer\.layers\.(\d+)\.0\.to_out\.0\.", r"transformer.\1.attn.proj."),
    (r"transformer\.layers\.(\d+)\.1\.net\.0\.", r"transformer.\1.mlp.norm."),
    (r"transformer\.layers\.(\d+)\.1\.net\.1\.", r"transformer.\1.mlp.fc1."),
    (r"transformer\.layers\.(\d+)\.1\.net\.4\.", r"transformer.\1.mlp.fc2."),
]
# Inside a skip-fusion block (reference: one Sequential, activations at 1, 4, 7).
_FUSION = [
    (r"conv\.0\.", "conv1."),
    (r"conv\.2\.", "norm1."),
    (r"conv\.3\.", "conv2."),
    (r"conv\.5\.", "norm2."),
    (r"conv\.6\.", "conv3."),
    (r"conv\.8\.", "norm3."),
]
_SIMPLE = [(r"0\.", "conv."), (r"1\.", "norm.")]
_LEAF = re.compile(r"(weight|bias|running_mean|running_var|num_batches_tracked)$")

# (reference prefix, our prefix, rules for the rest of the key); the prefix may use groups.
_TOP: list[tuple[str, str, list[tuple[str, str]]]] = [
    (r"stem\.conv\.", "stem.", _SIMPLE),
    (r"encoder([123])\.0\.", r"enc\1.block.", _HK),
    (r"encoder([123])\.1\.", r"enc\1.proj.", _SIMPLE),
    (r"encoder([45])\.0\.", r"enc\1.block.", _HYBRID),
    (r"Up5\.up\.", "dec4.up.block.", [(r"1\.", "conv."), (r"2\.", "norm.")]),
    (r"Up4\.up\.", "dec3.up.block.", [(r"1\.", "conv."), (r"2\.", "norm.")]),
    (r"Up3\.up\.", "dec2.up.block.", [(r"1\.", "conv."), (r"2\.", "norm.")]),
    (r"Up2\.up\.", "dec1.up.block.", [(r"1\.", "conv."), (r"2\.", "norm.")]),
    (r"Up_conv5\.", "dec4.mixer.", _HYBRID),
    (r"Up_conv4\.0\.", "dec3.fuse.", _FUSION),
    (r"Up_conv4\.1\.", "dec3.mixer.", _HYBRID),
    (r"Up_conv3\.", "dec2.fuse.", _FUSION),
    (r"Up_conv2\.", "dec1.fuse.", _FUSION),
    (r"Conv_1x1\.", "head.", [(r"", "")]),
]


def _convert_key(key: str) -> str | None:
    for prefix, new_prefix, rules in _TOP:
        m = re.match(prefix, key)
        if not m:
            continue
        rest = key[m.end() :]
        for pattern, repl in rules:
            r = re.match(pattern + _LEAF.pattern, rest)
            if r:
                leaf = r.group(r.lastindex)
                return m.expand(new_prefix) + r.expand(repl) + leaf
        return None
    return None


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a reference (authors' code) LGMSNet state dict to this library's names.

    Works for the 2D and the 3D reference models. A ``module.`` prefix (from ``DataParallel``/DDP) is stripped.
    Tensors are not copied.

    Args:
        state_dict: the reference ``model.state_dict()`` (or a checkpoint's weights).

    Returns:
        A new dict for ``LGMSNet.load_state_dict(..., strict=True)``.

    Raises:
        ValueError: when keys do not belong to the reference architecture (all such keys are listed).
    """
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        k = key[len("module.") :] if key.startswith("module.") else key
        new = _convert_key(k)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" … (+{len(unknown) - 10} more)" if len(unknown) > 10 else "")
        raise ValueError(
            f"{len(unknown)} key(s) are not LGMSNet reference keys: {shown}. Expected the state dict of the authors' "
            "MKtinyvit4_CT model (keys such as 'stem.conv.0.weight', 'encoder4.0.transformer.layers.0.0.to_qkv.weight')."
        )
    return out
