"""The ``lgmsnet`` console script: the library's commands plus the MLOps layer's.

``lgmsnet.cli`` (the library) knows nothing of kfp/mlflow/dvc/great_expectations; this module adds, through its
extension hook, the commands that need them: ``data validate`` (Great Expectations, replacing the library's basic
check), ``data profile``/``data drift``, ``registry ...``, ``serve ...`` and ``pipeline ...``. Their heavy imports
happen inside the command handlers, so ``lgmsnet --help`` stays fast and works without the ``mlops`` extra.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lgmsnet.cli import main as _library_main

__all__ = ["main"]


def _drop_subcommand(group: argparse._SubParsersAction, name: str) -> None:
    """Remove ``name`` from an argparse sub-command group so that a richer implementation can take its place."""
    group._name_parser_map.pop(name, None)  # noqa: SLF001 - argparse has no public removal API
    group._choices_actions[:] = [a for a in group._choices_actions if a.dest != name]  # noqa: SLF001


def _extend(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from components.registry_cli import register_commands as register_registry
    from components.serve_cli import register_commands as register_serve
    from components.validate_cli import register as register_validation
    from pipelines.cli import register_commands as register_pipeline

    _drop_subcommand(groups["data"], "validate")
    register_validation(groups["data"])
    register_registry(sub)
    register_serve(sub)
    register_pipeline(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lgmsnet`` console script."""
    return _library_main(argv, extensions=[_extend])


if __name__ == "__main__":
    sys.exit(main())
