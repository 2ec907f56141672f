"""The installed ``lgmsnet`` console script: library commands plus the MLOps layer's."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from components.cli import main


def test_console_script_has_every_command_group(capsys) -> None:
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "evaluate", "zero-shot", "predict", "export", "convert-official", "data", "registry",
                "serve", "pipeline"):
        assert cmd in out, cmd


def test_data_validate_is_the_great_expectations_one(capsys) -> None:
    try:
        main(["data", "validate", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "--report" in out and "--split-manifest" in out


def test_installed_script_points_at_the_mlops_entry() -> None:
    exe = Path(sys.executable).with_name("lgmsnet")
    script = exe if exe.exists() else shutil.which("lgmsnet")
    assert script, "the lgmsnet console script is not installed: pip install -e '.[dev,mlops]'"
    res = subprocess.run([str(script), "pipeline", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "run" in res.stdout and "schedule" in res.stdout


def test_unknown_command_exits_2(capsys) -> None:
    try:
        main(["no-such-command"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "invalid choice" in capsys.readouterr().err
