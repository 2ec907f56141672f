"""Model cards: what a registered model version is for, what it was trained and tested on, and its limits.

Pure: :func:`build_model_card` assembles a :class:`ModelCard` from plain data (model info, metrics, the gate
decision, the dataset version); :func:`render_markdown` and :func:`render_html` render it (the HTML is
self-contained, every value escaped). :mod:`components.registry` logs both files as run artifacts and links them
from the model version. Synthetic training data is flagged in the title, the data section and the limitations.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from components.gate import GateDecision

__all__ = ["ModelCard", "build_model_card", "render_html", "render_markdown", "write_model_card"]

INTENDED_USE = (
    "Research and education: binary segmentation of one lesion class (e.g. polyps in colonoscopy frames) in "
    "2D RGB or grey images, as a lightweight baseline and for studying domain shift. Not a medical device: do not "
    "use it for diagnosis or any clinical decision."
)

_STATIC_LIMITATIONS = (
    "Not validated for clinical use; outputs must not drive diagnosis or treatment.",
    "One foreground class: every pixel is lesion or background; touching lesions are not separated.",
    "Scores are per-image means on the named datasets; other devices, centres, populations and modalities are "
    "untested and may be much worse (see the zero-shot results for one measured shift).",
    "Input images are resized to the training size and masks resized back; very small lesions may be lost.",
)


@dataclass
class ModelCard:
    """Everything a model card shows.

    Attributes:
        name: registered model name.
        version: model version (None for a candidate that was not registered).
        run_id: the training run.
        created_at: ISO time of the card.
        model: architecture info (``model_name``, ``model_kwargs``, ``image_size_policy``, ``n_parameters``).
        dataset: the training data version (``name``, ``source``, ``md5``/``fingerprint``, ``synthetic``,
            ``licence``).
        in_domain: ``{metric: value}`` on the in-domain test split.
        zero_shot: ``{target: {metric: value}}`` on unseen datasets.
        other_metrics: remaining metrics (parameters, latency, ...).
        decision: the gate decision.
        limitations: known limitations.
        licence_notes: terms of use of the training data.
        intended_use: what the model is for.
    """

    name: str
    version: str | None
    run_id: str
    created_at: str
    model: dict[str, Any]
    dataset: dict[str, Any]
    in_domain: dict[str, float]
    zero_shot: dict[str, dict[str, float]]
    other_metrics: dict[str, float]
    decision: GateDecision
    limitations: list[str] = field(default_factory=list)
    licence_notes: list[str] = field(default_factory=list)
    intended_use: str = INTENDED_USE

    @property
    def synthetic(self) -> bool:
        """Trained on synthetic data."""
        return bool(self.dataset.get("synthetic"))

    @property
    def title(self) -> str:
        """Card title (names synthetic training data)."""
        version = f" version {self.version}" if self.version else " (candidate, not registered)"
        return f"Model card: {self.name}{version}" + (" — TRAINED ON SYNTHETIC DATA" if self.synthetic else "")


def _split_metrics(
    metrics: Mapping[str, Any],
) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, float]]:
    in_domain: dict[str, float] = {}
    zero_shot: dict[str, dict[str, float]] = {}
    other: dict[str, float] = {}
    for key, value in sorted(metrics.items()):
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if key.startswith("in_domain."):
            in_domain[key.removeprefix("in_domain.")] = number
        elif key.startswith("zero_shot.") and key.count(".") >= 2:
            target, metric = key.removeprefix("zero_shot.").rsplit(".", 1)
            zero_shot.setdefault(target, {})[metric] = number
        else:
            other[key] = number
    return in_domain, zero_shot, other


def build_model_card(
    *,
    name: str,
    version: str | None,
    run_id: str,
    metrics: Mapping[str, Any],
    decision: GateDecision,
    dataset: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
    extra_limitations: Sequence[str] = (),
    created_at: datetime | None = None,
) -> ModelCard:
    """Assemble a card from plain data.

    Args:
        name: registered model name.
        version: model version, or None for an unregistered candidate.
        run_id: the training run id.
        metrics: the gate metrics (``in_domain.*``, ``zero_shot.<target>.*``, others).
        decision: the gate decision.
        dataset: :meth:`components.tracking.DatasetVersion.to_dict` of the training data.
        model: ``model_name``, ``model_kwargs``, ``image_size_policy`` (the model's ``serving.json``).
        extra_limitations: further limitations to list.
        created_at: card time (default: now, UTC).
    """
    data = dict(dataset or {})
    info = dict(model or {})
    in_domain, zero_shot, other = _split_metrics(metrics)
    if "model.parameters" in other:
        info.setdefault("n_parameters", int(other["model.parameters"]))
    limitations = list(_STATIC_LIMITATIONS)
    if data.get("synthetic"):
        limitations.insert(0, "TRAINED ON SYNTHETIC DATA (generated shapes, not medical images): its scores say "
                              "nothing about performance on real images. For pipeline testing only.")
    if not zero_shot:
        limitations.append("No zero-shot evaluation was recorded: behaviour under domain shift is unmeasured.")
    policy = info.get("image_size_policy") or {}
    if policy.get("image_size"):
        limitations.append(f"Trained and run at {policy['image_size']}x{policy['image_size']} pixels "
                           "(inputs of any size are resized to it and back).")
    limitations += list(extra_limitations)
    licence = data.get("licence")
    notes = []
    if data.get("synthetic"):
        notes.append("Training data is SYNTHETIC (lgmsnet.data.synthetic): no third-party licence applies.")
    if licence and not data.get("synthetic"):
        notes.append(f"Training data terms: {licence}")
    if not licence and not data.get("synthetic"):
        notes.append("The training data's licence was not recorded: check its provenance before any use of this "
                     "model beyond research (public polyp datasets such as Kvasir-SEG and CVC-ClinicDB are "
                     "research/education only, non-commercial, and require citation).")
    notes.append("The model weights inherit the training data's terms of use.")
    return ModelCard(
        name=name,
        version=version,
        run_id=run_id,
        created_at=(created_at or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        model=info,
        dataset=data,
        in_domain=in_domain,
        zero_shot=zero_shot,
        other_metrics=other,
        decision=decision,
        limitations=limitations,
        licence_notes=notes,
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _sections(card: ModelCard) -> list[tuple[str, list[tuple[str, str]] | list[str] | str]]:
    data = card.dataset
    data_rows = [
        ("name", str(data.get("name", "unknown"))),
        ("source", str(data.get("source", "unknown"))),
        ("version (DVC md5)", str(data.get("md5") or "not DVC-tracked")),
        ("content fingerprint", str(data.get("fingerprint") or "n/a")),
        ("synthetic", "YES — not medical images" if card.synthetic else "no"),
    ]
    model = card.model
    model_rows = [
        ("architecture", str(model.get("model_name", "lgmsnet"))),
        ("constructor kwargs", str(model.get("model_kwargs", "n/a"))),
        ("parameters", _fmt(model["n_parameters"]) if "n_parameters" in model else "n/a"),
        ("image size policy", str((model.get("image_size_policy") or {}).get("interpolation", "n/a"))),
        ("training run", card.run_id),
    ]
    decision = card.decision
    gate = [("verdict", "PASSED" if decision.passed else "FAILED"),
            ("policy", f"{decision.policy_name or 'unnamed'} v{decision.policy_version} "
                       f"({decision.policy_digest[:12]})")]
    gate += [(f"{c.status}", f"{c.name}: candidate {_fmt(c.candidate) if c.candidate is not None else 'n/a'}"
              + (f", limit {_fmt(c.bound)}" if c.bound is not None else "") + (f" — {c.reason}" if c.reason else ""))
             for c in decision.checks]
    gate += [("note", n) for n in decision.notes]
    zs = [(target, ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(m.items()))) for target, m in card.zero_shot.items()]
    return [
        ("Intended use", card.intended_use),
        ("Model", model_rows),
        ("Training data", data_rows),
        ("In-domain evaluation (per-image mean, held-out test split)",
         [(k, _fmt(v)) for k, v in card.in_domain.items()] or [("—", "not recorded")]),
        ("Zero-shot evaluation (unseen datasets)", zs or [("—", "not recorded")]),
        ("Other metrics", [(k, _fmt(v)) for k, v in card.other_metrics.items()] or [("—", "none")]),
        ("Quality gate", gate),
        ("Limitations", card.limitations),
        ("Licence notes", card.licence_notes),
    ]


def render_markdown(card: ModelCard) -> str:
    """The card as Markdown."""
    lines = [f"# {card.title}", "", f"*Generated {card.created_at} from run `{card.run_id}`.*", ""]
    for title, body in _sections(card):
        lines += [f"## {title}", ""]
        if isinstance(body, str):
            lines.append(body)
        elif body and isinstance(body[0], tuple):
            lines += ["| item | value |", "|---|---|"]
            lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in body]  # type: ignore[misc]
        else:
            lines += [f"- {item}" for item in body]
        lines.append("")
    return "\n".join(lines)


def render_html(card: ModelCard) -> str:
    """The card as a self-contained HTML page (all values escaped)."""
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(card.title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
        ".warn{color:#a00;font-weight:bold}</style></head><body>",
        f"<h1>{e(card.title)}</h1>",
        f"<p><em>Generated {e(card.created_at)} from run <code>{e(card.run_id)}</code>.</em></p>",
    ]
    if card.synthetic:
        parts.append('<p class="warn">Trained on synthetic data: not medical images.</p>')
    for title, body in _sections(card):
        parts.append(f"<h2>{e(title)}</h2>")
        if isinstance(body, str):
            parts.append(f"<p>{e(body)}</p>")
        elif body and isinstance(body[0], tuple):
            rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in body)  # type: ignore[misc]
            parts.append(f"<table>{rows}</table>")
        else:
            parts.append("<ul>" + "".join(f"<li>{e(str(item))}</li>" for item in body) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_model_card(card: ModelCard, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``model_card.md`` and ``model_card.html`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "model_card.md"
    page = out / "model_card.html"
    md.write_text(render_markdown(card), encoding="utf-8")
    page.write_text(render_html(card), encoding="utf-8")
    return md, page
