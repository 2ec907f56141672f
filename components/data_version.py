"""Dataset versioning with DVC: a git commit pins a ``.dvc`` file, the ``.dvc`` file pins a content hash.

One typed function per step:

* :func:`init_data_repo` — ``git init`` + ``dvc init`` if needed, and the default remote (a local folder or
  ``s3://bucket/prefix`` with an optional ``endpointurl``). Credentials never enter ``.dvc/config``: they come from
  the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``...).
* :func:`push_dataset` — ``dvc add`` + ``dvc push`` of a dataset folder, then a git commit of its ``.dvc`` file.
* :func:`resolve_version` — (repo, path, rev) → the folder's ``.dir`` md5, read from the ``.dvc`` file with
  ``git show``; no data is downloaded.
* :func:`materialize` — fetch exactly the files of a pinned version from the remote, by md5 (no DVC cache, no
  checkout of the project needed), verify the ``.dir`` manifest and every file against their md5s, and move the
  folder into place atomically.

DVC is used in-process (``dvc.repo.Repo`` for add/push, ``dvc.fs.get_cloud_fs`` for remote access); git is called
as a subprocess. The remote layout is DVC 3's: ``<remote>/files/md5/<2 hex>/<30 hex>[.dir]``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = [
    "DEFAULT_REMOTE_NAME",
    "SECRET_OPTION_NAMES",
    "DataVersionError",
    "DatasetVersion",
    "DirectoryHash",
    "hash_directory",
    "init_data_repo",
    "materialize",
    "push_dataset",
    "resolve_version",
]

logger = logging.getLogger(__name__)

DEFAULT_REMOTE_NAME = "storage"
# DVC remote options that hold credentials (any backend). They must come from the environment, never from a
# config file that is committed to git, nor from pipeline parameters.
SECRET_OPTION_NAMES = frozenset(
    {
        "access_key_id",
        "secret_access_key",
        "session_token",
        "password",
        "passphrase",
        "key_id",
        "key_secret",
        "account_key",
        "sas_token",
        "client_secret",
        "connection_string",
        "sse_customer_key",
        "gdrive_client_secret",
        "token",
    }
)
_SUPPORTED_SCHEMES = ("s3",)
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_REMOTE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GIT_TIMEOUT_S = 600
_CONNECT_TIMEOUT_S = 5.0
_FALLBACK_GIT_IDENTITY = ("-c", "user.name=lgmsnet-data", "-c", "user.email=lgmsnet-data@localhost")


class DataVersionError(RuntimeError):
    """A dataset version could not be created, resolved or materialized; the message says what to do."""


@dataclass(frozen=True)
class DatasetVersion:
    """One pinned version of a dataset folder.

    Attributes:
        path: the folder's path inside the repository (posix, e.g. ``"data"``).
        md5: DVC's ``.dir`` hash of the folder, with the ``.dir`` suffix (the value in the ``.dvc`` file).
        n_files: number of files in the folder.
        size: total size of the files in bytes.
        remote: URL of the DVC remote that holds the objects (never with credentials); ``""`` if unknown.
        git_rev: full commit sha of the ``.dvc`` file; ``""`` for an uncommitted or git-less ``.dvc`` file.
    """

    path: str
    md5: str
    n_files: int
    size: int
    remote: str
    git_rev: str


@dataclass(frozen=True)
class DirectoryHash:
    """DVC-compatible hash of a local folder (what ``dvc add`` would write into the ``.dvc`` file).

    Attributes:
        md5: ``<md5 of the manifest>.dir``.
        n_files: number of files.
        size: total bytes.
    """

    md5: str
    n_files: int
    size: int


@dataclass(frozen=True)
class _Resolved:
    version: DatasetVersion
    remote_conf: dict[str, Any] | None  # the default remote's options (local paths made absolute), if any


# ---------------------------------------------------------------------------------------------------------- helpers
def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_bytes(entries: list[dict[str, str]]) -> bytes:
    """The bytes DVC 3 stores as a ``.dir`` object (and hashes into the ``.dir`` md5)."""
    ordered = sorted(({"md5": e["md5"], "relpath": e["relpath"]} for e in entries), key=lambda e: e["relpath"])
    return json.dumps(ordered, sort_keys=True).encode("utf-8")


def hash_directory(data_dir: str | os.PathLike[str]) -> DirectoryHash:
    """Compute the DVC 3 ``.dir`` hash of a local folder without DVC (and without writing anything).

    Every regular file under ``data_dir`` counts (a ``.dvcignore`` is not applied).

    Args:
        data_dir: the dataset folder.

    Returns:
        The folder's :class:`DirectoryHash`.

    Raises:
        DataVersionError: ``data_dir`` is not a folder or holds no files.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataVersionError(f"Dataset folder {root} does not exist or is not a folder; pass the folder to hash.")
    entries: list[dict[str, str]] = []
    size = 0
    for path in sorted(root.rglob("*")):
        if path.is_file():
            entries.append({"md5": _file_md5(path), "relpath": path.relative_to(root).as_posix()})
            size += path.stat().st_size
    if not entries:
        raise DataVersionError(f"Dataset folder {root} holds no files; there is nothing to version.")
    md5 = hashlib.md5(_manifest_bytes(entries), usedforsecurity=False).hexdigest()
    return DirectoryHash(md5=f"{md5}.dir", n_files=len(entries), size=size)


def _normalize_md5(value: str, what: str) -> str:
    text = str(value).strip().lower()
    bare = text[: -len(".dir")] if text.endswith(".dir") else text
    if not _MD5_RE.match(bare):
        raise DataVersionError(
            f"{what} must be a DVC directory hash (32 hex digits, optionally with '.dir'), got {value!r}; copy it "
            f"from the `md5:` line of the .dvc file or from resolve_version()."
        )
    return f"{bare}.dir"


def _check_no_credentials_in_url(url: str, what: str, *, allow_username: bool = False) -> None:
    """Refuse ``scheme://user:secret@host`` (and, unless ``allow_username``, ``scheme://user@host``)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return
    if parts.password is not None or not allow_username:
        safe = f"{parts.scheme}://<credentials>@{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
        raise DataVersionError(
            f"{what} {safe} carries credentials in the URL; URLs end up in .dvc/config, git, pipeline parameters "
            f"and logs. Remove them and provide credentials through the environment instead: AWS_ACCESS_KEY_ID / "
            f"AWS_SECRET_ACCESS_KEY for S3, a git credential helper for git (in Kubernetes: from a Secret)."
        )


def _check_no_secret_options(options: Mapping[str, Any], where: str) -> None:
    found = sorted(k for k in options if str(k).lower() in SECRET_OPTION_NAMES)
    if found:
        raise DataVersionError(
            f"{where} holds credential option(s) {found}; credentials must come from the environment "
            f"(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN or AWS_PROFILE), never from a config "
            f"file or a pipeline parameter. Remove {found} and set the environment variables."
        )


def _secret_options_in_config(config: Mapping[str, Any]) -> list[str]:
    """Dotted names of credential options anywhere in a parsed DVC config."""
    found: list[str] = []
    for section, body in config.items():
        if isinstance(body, Mapping):
            found += [f"{section}.{sub}" for sub in _secret_options_in_config(body)]
        elif str(section).lower() in SECRET_OPTION_NAMES:
            found.append(str(section))
    return found


def _check_endpoint(endpoint_url: str, timeout: float = _CONNECT_TIMEOUT_S) -> None:
    """Fail fast (one TCP connect, bounded by ``timeout``) when an S3 endpoint does not accept connections."""
    parts = urlsplit(endpoint_url)
    host = parts.hostname
    if parts.scheme not in {"http", "https"} or not host:
        raise DataVersionError(
            f"S3 endpoint URL {endpoint_url!r} is not an http(s) URL; use e.g. 'http://seaweedfs.storage:8333'."
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise DataVersionError(
            f"S3 endpoint {endpoint_url} is not reachable ({exc}). Check the remote's endpointurl, that the S3 "
            f"server is running and that this machine/pod may connect to {host}:{port}; nothing was written."
        ) from exc


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # a private repo URL fails instead of waiting for a password
    env["DVC_NO_ANALYTICS"] = "1"  # git hooks installed by `dvc install` run dvc
    return env


def _git(args: list[str], cwd: Path | None = None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=_subprocess_env(),
            stdin=subprocess.DEVNULL,  # never wait for a password or host-key prompt
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise DataVersionError("`git` is not installed; install git (e.g. apt-get install git) and retry.") from exc
    except subprocess.TimeoutExpired as exc:
        raise DataVersionError(f"`git {' '.join(args)}` took longer than {_GIT_TIMEOUT_S} s; check the URL.") from exc
    if check and proc.returncode != 0:
        raise DataVersionError(
            f"`git {' '.join(args)}` failed in {cwd or os.getcwd()} (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    return proc


def _git_toplevel(path: Path) -> Path | None:
    proc = _git(["rev-parse", "--show-toplevel"], cwd=path, check=False)
    return Path(proc.stdout.strip()).resolve() if proc.returncode == 0 else None


@contextlib.contextmanager
def _quiet_dvc() -> Iterator[None]:
    """Keep DVC's CLI hints ("You can now commit...") off the caller's stdout while a DVC call runs.

    ``import dvc`` attaches stdout handlers to the ``dvc`` logger and DVC's ``ui`` prints to stdout; both are meant
    for the CLI. The ``dvc`` logger is raised to WARNING for the duration of the call (and restored), and ``ui``
    output is captured and re-logged at DEBUG.
    """
    dvc_logger = logging.getLogger("dvc")
    previous = dvc_logger.level
    dvc_logger.setLevel(max(previous, logging.WARNING))
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        dvc_logger.setLevel(previous)
        text = buffer.getvalue().strip()
        if text:
            logger.debug("dvc: %s", text)


def _dvc_error(exc: Exception, action: str) -> DataVersionError:
    return DataVersionError(f"{action} failed: {type(exc).__name__}: {exc}")


def _validate_remote_url(remote_url: str, repo_dir: Path) -> tuple[str, bool]:
    """Return (url for .dvc/config, is_local). Local paths are made absolute (relative ones against repo_dir)."""
    text = str(remote_url).strip()
    if not text:
        raise DataVersionError("remote_url is empty; pass a local folder or 's3://bucket/prefix'.")
    _check_no_credentials_in_url(text, "Remote URL")
    parts = urlsplit(text)
    if len(parts.scheme) > 1:  # "C:" style drive letters are not URLs
        if parts.scheme == "file":
            return str(Path(parts.path).resolve()), True
        if parts.scheme not in _SUPPORTED_SCHEMES:
            raise DataVersionError(
                f"Remote URL scheme {parts.scheme!r} is not supported (got {text!r}); use a local folder or "
                f"'s3://bucket/prefix' (any S3-compatible server via endpoint_url)."
            )
        if not parts.netloc:
            raise DataVersionError(f"S3 remote URL {text!r} has no bucket; use 's3://bucket/prefix'.")
        return text.rstrip("/"), False
    path = Path(text).expanduser()
    return str((path if path.is_absolute() else repo_dir / path).resolve()), True


# ------------------------------------------------------------------------------------------------------ init / push
def init_data_repo(
    repo_dir: str | os.PathLike[str],
    remote_url: str,
    *,
    remote_name: str = DEFAULT_REMOTE_NAME,
    endpoint_url: str | None = None,
) -> None:
    """Make ``repo_dir`` a git + DVC repository whose default DVC remote is ``remote_url``.

    Idempotent: an existing git repository or ``.dvc`` folder is kept; the remote ``remote_name`` is (re)written
    with only ``url`` (and ``endpointurl``) and made the default. The changed DVC files are staged, not committed
    (:func:`push_dataset` commits them with the first dataset).

    Args:
        repo_dir: the repository root (created if missing). It must not be a sub-folder of another git repository.
        remote_url: a local folder (relative paths are taken relative to ``repo_dir`` and stored relative to
            ``.dvc/``, so the pair can move together) or ``s3://bucket/prefix``.
        remote_name: name of the DVC remote.
        endpoint_url: S3 endpoint of an S3-compatible server (SeaweedFS, MinIO, Ceph), e.g.
            ``http://seaweedfs.storage:8333``; only with ``s3://`` URLs.

    Raises:
        DataVersionError: credentials in a URL, an unsupported scheme, an endpoint with a local remote, a bad
            remote name, ``repo_dir`` inside another git repository, or a git/DVC failure.
    """
    root = Path(repo_dir).expanduser().resolve()
    if not _REMOTE_NAME_RE.match(remote_name or ""):
        raise DataVersionError(
            f"remote_name {remote_name!r} is not a valid DVC remote name; use letters, digits, '_', '-' or '.'."
        )
    url, is_local = _validate_remote_url(remote_url, root)
    if endpoint_url is not None:
        _check_no_credentials_in_url(endpoint_url, "endpoint_url")
        if is_local:
            raise DataVersionError(
                f"endpoint_url={endpoint_url!r} only applies to s3:// remotes, but remote_url {remote_url!r} is a "
                f"local folder; drop endpoint_url or use 's3://bucket/prefix'."
            )
        if urlsplit(endpoint_url).scheme not in {"http", "https"}:
            raise DataVersionError(
                f"endpoint_url {endpoint_url!r} is not an http(s) URL; use e.g. 'http://seaweedfs.storage:8333'."
            )
    root.mkdir(parents=True, exist_ok=True)

    toplevel = _git_toplevel(root)
    if toplevel is None:
        _git(["init", "--quiet", "--initial-branch=main"], cwd=root)
        logger.info("Initialized git repository in %s", root)
    elif toplevel != root:
        raise DataVersionError(
            f"{root} is inside the git repository {toplevel}; initialize the data repository at {toplevel} or in a "
            f"folder outside it."
        )

    from dvc.config_schema import RelPath
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with _quiet_dvc():
            if not (root / ".dvc").is_dir():
                Repo.init(os.fspath(root)).close()
                logger.info("Initialized DVC in %s", root)
            with Repo(os.fspath(root)) as repo:
                with repo.config.edit("repo") as conf:
                    secrets = _secret_options_in_config(conf)
                    if secrets:  # not silently dropped: they may already be in git history and need rotating
                        raise DataVersionError(
                            f"{root / '.dvc' / 'config'} holds credential option(s) {secrets}; remove them (`dvc "
                            f"remote modify --unset <remote> <option>`), rotate the keys if they were ever committed, "
                            f"and use AWS_* environment variables."
                        )
                    options: dict[str, Any] = {"url": RelPath(url) if is_local else url}
                    if endpoint_url is not None:
                        options["endpointurl"] = endpoint_url.rstrip("/")
                    conf["remote"][remote_name] = options
                    conf["core"]["remote"] = remote_name
    except DvcException as exc:
        raise _dvc_error(exc, f"Setting up DVC in {root}") from exc
    _git(["add", "--", *[p for p in (".dvc/config", ".dvc/.gitignore", ".dvcignore") if (root / p).exists()]],
         cwd=root)
    logger.info("DVC default remote %r -> %s%s", remote_name, url,
                f" (endpoint {endpoint_url})" if endpoint_url else "")


def _read_dvc_file(text: str, source: str) -> tuple[str, int | None, int | None, str]:
    """Parse a ``.dvc`` file: (md5 with .dir, nfiles, size, path)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataVersionError(f"{source} is not valid YAML ({exc}); restore it from git or re-run `dvc add`.") from exc
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        raise DataVersionError(
            f"{source} must track exactly one output (an `outs:` list with one entry), got {outs!r}; track one "
            f"dataset folder per .dvc file (`dvc add <folder>`)."
        )
    out = outs[0]
    md5 = str(out.get("md5", ""))
    if not md5.endswith(".dir"):
        raise DataVersionError(
            f"{source} tracks a single file or has no hash (md5={md5!r}); only dataset folders are supported: "
            f"`dvc add <folder>`."
        )
    if out.get("hash") != "md5":
        raise DataVersionError(
            f"{source} was written by DVC 2 (no `hash: md5` line; objects use the legacy layout); migrate it with "
            f"`dvc cache migrate --dvc-files` and push again."
        )
    nfiles = out.get("nfiles")
    size = out.get("size")
    return (
        _normalize_md5(md5, f"md5 in {source}"),
        int(nfiles) if nfiles is not None else None,
        int(size) if size is not None else None,
        str(out.get("path", "")),
    )


def _remote_conf_from_config(config: Mapping[str, Any], config_dir: Path | None) -> dict[str, Any] | None:
    """The default remote's options from a parsed ``.dvc/config`` (local relative paths made absolute)."""
    core = config.get("core") or {}
    name = core.get("remote") if isinstance(core, Mapping) else None
    if not name:
        return None
    remotes = {}
    for section, body in config.items():
        match = re.match(r'^remote\s+"(.+)"$', str(section).strip())
        if match and isinstance(body, Mapping):
            remotes[match.group(1).lower()] = dict(body)
    options = remotes.get(str(name).lower())
    if options is None or "url" not in options:
        return None
    url = str(options["url"])
    if not re.match(r"^\w+://", url) and not os.path.isabs(url):
        if config_dir is None:
            return {**options, "url": url, "_relative": True}
        options["url"] = os.path.normpath(os.path.join(config_dir, url))
    return options


def push_dataset(
    repo_dir: str | os.PathLike[str],
    data_dir_rel: str = "data",
    message: str | None = None,
    *,
    tag: str | None = None,
    remote: str | None = None,
    jobs: int | None = None,
) -> DatasetVersion:
    """Version a dataset folder: ``dvc add``, ``dvc push``, and a git commit of its ``.dvc`` file.

    Only the ``.dvc`` file, the ``.gitignore`` next to it and DVC's own config files are committed (other staged
    changes of the repository stay staged). Re-running on unchanged data pushes nothing and commits nothing.

    Args:
        repo_dir: repository root prepared by :func:`init_data_repo`.
        data_dir_rel: the dataset folder, relative to ``repo_dir``.
        message: git commit message (default: ``"data: version <folder> <md5>"``).
        tag: optional git tag for the commit (e.g. ``"data-v1"``); an existing tag must already point at it.
        remote: DVC remote name (default: the repository's default remote).
        jobs: parallel uploads (DVC's default when None).

    Returns:
        The committed :class:`DatasetVersion` (``git_rev`` is the new HEAD).

    Raises:
        DataVersionError: no git/DVC repository, a missing or empty folder, credentials in ``.dvc/config``, an
            unreachable S3 endpoint (checked before anything is written), or a DVC/git failure.
    """
    root = Path(repo_dir).expanduser().resolve()
    if not (root / ".dvc").is_dir() or _git_toplevel(root) != root:
        raise DataVersionError(
            f"{root} is not the root of a git + DVC repository; run init_data_repo({str(root)!r}, <remote_url>) first."
        )
    rel = PurePosixPath(str(data_dir_rel).replace(os.sep, "/"))
    if rel.is_absolute() or ".." in rel.parts or str(rel) in {"", "."}:
        raise DataVersionError(
            f"data_dir_rel must be a folder path inside the repository (e.g. 'data'), got {data_dir_rel!r}."
        )
    data_dir = root / rel
    if not data_dir.is_dir() or not any(p.is_file() for p in data_dir.rglob("*")):
        raise DataVersionError(f"Dataset folder {data_dir} is missing or holds no files; create the dataset first.")

    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dvc_file = rel.with_name(rel.name + ".dvc")
    try:
        with _quiet_dvc(), Repo(os.fspath(root)) as repo:
            secrets = _secret_options_in_config(repo.config.load_one("repo"))
            if secrets:
                raise DataVersionError(
                    f"{root / '.dvc' / 'config'} holds credential option(s) {secrets}, which would be committed to "
                    f"git; remove them (`dvc remote modify --unset <remote> <option>`), rotate the keys if they were "
                    f"ever committed, and use AWS_* environment variables."
                )
            remote_name = remote or repo.config["core"].get("remote")
            if not remote_name or remote_name not in repo.config["remote"]:
                raise DataVersionError(
                    f"No DVC remote {remote_name!r} in {root}; configure one with init_data_repo(..., remote_url=...) "
                    f"(remotes: {sorted(repo.config['remote'])})."
                )
            options = repo.config["remote"][remote_name]
            remote_url = str(options["url"])
            if options.get("endpointurl"):
                _check_endpoint(str(options["endpointurl"]))
            # DVC resolves relative targets against the process's cwd, not the repository: pass absolute paths.
            repo.add(os.fspath(data_dir))
            pushed = repo.push(targets=[os.fspath(root / dvc_file)], remote=remote_name, jobs=jobs)
    except DvcException as exc:
        raise _dvc_error(exc, f"Versioning {data_dir} (dvc add + push to {remote or 'the default remote'})") from exc
    logger.info("Pushed %d object(s) of %s to %s", pushed, rel, remote_url)

    md5, nfiles, size, _ = _read_dvc_file((root / dvc_file).read_text(encoding="utf-8"), str(root / dvc_file))
    candidates = [dvc_file.as_posix(), (rel.parent / ".gitignore").as_posix(), ".dvc/config", ".dvc/.gitignore",
                  ".dvcignore"]
    present = [p for p in candidates if (root / p).exists()]
    _git(["add", "--", *present], cwd=root)
    changed = _git(["diff", "--cached", "--name-only", "--", *present], cwd=root).stdout.split()
    if changed:
        identity = [] if _git(["config", "user.email"], cwd=root, check=False).stdout.strip() else list(
            _FALLBACK_GIT_IDENTITY
        )
        _git([*identity, "commit", "--quiet", "-m", message or f"data: version {rel} {md5}", "--", *changed], cwd=root)
    git_rev = _git(["rev-parse", "HEAD"], cwd=root).stdout.strip()
    if tag:
        if _git(["check-ref-format", f"refs/tags/{tag}"], cwd=root, check=False).returncode != 0:
            raise DataVersionError(f"tag {tag!r} is not a valid git tag name; use e.g. 'data-v1'.")
        existing = _git(["rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}"], cwd=root, check=False)
        if existing.returncode == 0:
            if existing.stdout.strip() != git_rev:
                raise DataVersionError(
                    f"git tag {tag!r} already points at {existing.stdout.strip()[:12]}, not at {git_rev[:12]}; pick a "
                    f"new tag name (dataset tags should never move)."
                )
        else:
            _git(["tag", tag, git_rev], cwd=root)
    version = DatasetVersion(
        path=rel.as_posix(),
        md5=md5,
        n_files=nfiles if nfiles is not None else 0,
        size=size if size is not None else 0,
        remote=remote_url,
        git_rev=git_rev,
    )
    logger.info("Dataset %s = %s (%d files, %d bytes) at commit %s", version.path, md5, version.n_files,
                version.size, git_rev[:12])
    return version


# ------------------------------------------------------------------------------------------------------------ resolve
def _dvc_file_rel(path: str) -> str:
    rel = PurePosixPath(str(path).replace(os.sep, "/"))
    if rel.is_absolute() or ".." in rel.parts or str(rel) in {"", "."}:
        raise DataVersionError(f"path must be a dataset path inside the repository (e.g. 'data'), got {path!r}.")
    return rel.as_posix() if rel.suffix == ".dvc" else rel.as_posix() + ".dvc"


def _parse_config(text: str, source: str) -> dict[str, Any]:
    from configobj import ConfigObj, ConfigObjError

    try:
        return dict(ConfigObj(text.splitlines(), list_values=False, interpolation=False))
    except ConfigObjError as exc:
        raise DataVersionError(f"{source} is not a valid DVC config ({exc}); restore it from git.") from exc


def _resolve_in_git(git_dir_args: list[str], cwd: Path | None, rev: str, dvc_rel: str, label: str,
                    config_dir: Path | None) -> _Resolved:
    proc = _git([*git_dir_args, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=cwd, check=False)
    if proc.returncode != 0:
        raise DataVersionError(
            f"Revision {rev!r} does not exist in {label}; pass a commit sha, branch or tag of that repository."
        )
    sha = proc.stdout.strip()
    shown = _git([*git_dir_args, "show", f"{sha}:{dvc_rel}"], cwd=cwd, check=False)
    if shown.returncode != 0:
        raise DataVersionError(
            f"{dvc_rel} does not exist in {label} at {rev} ({sha[:12]}); check `path` (the dataset folder, e.g. "
            f"'data') and the revision."
        )
    md5, nfiles, size, _ = _read_dvc_file(shown.stdout, f"{label}@{sha[:12]}:{dvc_rel}")
    config_proc = _git([*git_dir_args, "show", f"{sha}:.dvc/config"], cwd=cwd, check=False)
    remote_conf = None
    if config_proc.returncode == 0:
        config = _parse_config(config_proc.stdout, f"{label}@{sha[:12]}:.dvc/config")
        remote_conf = _remote_conf_from_config(config, config_dir)
    version = DatasetVersion(
        path=dvc_rel[: -len(".dvc")],
        md5=md5,
        n_files=nfiles or 0,
        size=size or 0,
        remote=str(remote_conf["url"]) if remote_conf else "",
        git_rev=sha,
    )
    return _Resolved(version, remote_conf)


def _resolve(repo: str, path: str, rev: str | None) -> _Resolved:
    text = str(repo).strip()
    if not text:
        raise DataVersionError("repo is empty; pass a git URL, a local repository path or a .dvc file.")
    _check_no_credentials_in_url(text, "Repository URL", allow_username=True)  # ssh://git@host is fine
    local = Path(text).expanduser()
    if local.is_file():
        if local.suffix != ".dvc":
            raise DataVersionError(f"{local} is a file but not a .dvc file; pass a repository or a .dvc file.")
        md5, nfiles, size, out_path = _read_dvc_file(local.read_text(encoding="utf-8"), str(local))
        root = next((p for p in local.resolve().parents if (p / ".dvc").is_dir()), None)
        remote_conf = None
        if root is not None and (root / ".dvc" / "config").is_file():
            config = _parse_config((root / ".dvc" / "config").read_text(encoding="utf-8"), str(root / ".dvc/config"))
            remote_conf = _remote_conf_from_config(config, root / ".dvc")
        version = DatasetVersion(
            path=out_path or local.name[: -len(".dvc")],
            md5=md5,
            n_files=nfiles or 0,
            size=size or 0,
            remote=str(remote_conf["url"]) if remote_conf else "",
            git_rev="",
        )
        return _Resolved(version, remote_conf)

    dvc_rel = _dvc_file_rel(path)
    if local.is_dir():
        root = local.resolve()
        toplevel = _git_toplevel(root)
        if rev is None:
            dvc_file = root / dvc_rel
            if not dvc_file.is_file():
                raise DataVersionError(
                    f"{dvc_file} does not exist; version the dataset with push_dataset() or check `path`."
                )
            md5, nfiles, size, _ = _read_dvc_file(dvc_file.read_text(encoding="utf-8"), str(dvc_file))
            config_file = root / ".dvc" / "config"
            remote_conf = None
            if config_file.is_file():
                remote_conf = _remote_conf_from_config(
                    _parse_config(config_file.read_text(encoding="utf-8"), str(config_file)), root / ".dvc"
                )
            git_rev = ""
            if toplevel == root:
                clean = _git(["diff", "--quiet", "HEAD", "--", dvc_rel], cwd=root, check=False).returncode == 0
                tracked = _git(["ls-files", "--error-unmatch", dvc_rel], cwd=root, check=False).returncode == 0
                if clean and tracked:
                    git_rev = _git(["rev-parse", "HEAD"], cwd=root).stdout.strip()
                else:
                    logger.warning("%s has uncommitted changes; the version is not pinned by a commit", dvc_file)
            version = DatasetVersion(
                path=dvc_rel[: -len(".dvc")],
                md5=md5,
                n_files=nfiles or 0,
                size=size or 0,
                remote=str(remote_conf["url"]) if remote_conf else "",
                git_rev=git_rev,
            )
            return _Resolved(version, remote_conf)
        if toplevel != root:
            raise DataVersionError(
                f"{root} is not the root of a git repository (rev={rev!r} needs git); pass the repository root."
            )
        return _resolve_in_git([], root, rev, dvc_rel, str(root), root / ".dvc")

    # A remote git URL: a bare clone in a temporary folder, read with `git show`.
    with tempfile.TemporaryDirectory(prefix="lgmsnet-data-repo-") as tmp:
        clone = Path(tmp) / "repo.git"
        proc = _git(["clone", "--quiet", "--bare", text, str(clone)], check=False)
        if proc.returncode != 0:
            raise DataVersionError(
                f"Could not clone {text} ({proc.stderr.strip() or 'git clone failed'}); check the URL and that this "
                f"machine has read access (a token in a git credential helper, never in the URL)."
            )
        return _resolve_in_git(["--git-dir", str(clone)], None, rev or "HEAD", dvc_rel, text, None)


def resolve_version(repo: str, path: str = "data", rev: str | None = None) -> DatasetVersion:
    """Resolve a dataset version to its content hash without downloading any data.

    Args:
        repo: a git URL (cloned bare into a temporary folder), a local repository root, or a ``.dvc`` file.
        path: the dataset folder inside the repository (``"data"`` reads ``data.dvc``); ignored for a ``.dvc`` file.
        rev: commit sha, branch or tag. None means the working tree for a local repository and the default branch
            for a URL.

    Returns:
        The :class:`DatasetVersion` (``git_rev`` is the full commit sha; ``""`` for an uncommitted local file).

    Raises:
        DataVersionError: the repository, revision or ``.dvc`` file does not exist or is not a DVC 3 folder output.
    """
    return _resolve(repo, path, rev).version


# -------------------------------------------------------------------------------------------------------- materialize
def _object_path(fs: Any, root: str, md5: str) -> str:
    return fs.join(root, "files", "md5", md5[:2], md5[2:])


def _safe_relpath(relpath: Any, object_name: str) -> str:
    rel = PurePosixPath(str(relpath))
    if not relpath or rel.is_absolute() or ".." in rel.parts or "\\" in str(relpath):
        raise DataVersionError(
            f"Manifest {object_name} lists an unsafe path {relpath!r}; the remote object is corrupt or hostile. Push "
            f"the dataset again from a good copy (`dvc push`)."
        )
    return rel.as_posix()


def _open_remote(remote_conf: Mapping[str, Any]) -> tuple[Any, str]:
    from dvc.config import ConfigError as DvcConfigError
    from dvc.fs import get_cloud_fs

    try:
        cls, fs_conf, fs_path = get_cloud_fs(None, **remote_conf)
        return cls(**fs_conf), fs_path
    except (DvcConfigError, ValueError, TypeError) as exc:
        raise DataVersionError(f"Invalid remote configuration {sorted(remote_conf)}: {exc}") from exc


def _describe_remote(remote_conf: Mapping[str, Any]) -> str:
    url = str(remote_conf.get("url", ""))
    endpoint = remote_conf.get("endpointurl")
    return f"{url} (endpoint {endpoint})" if endpoint else url


def _fetch(fs: Any, rpath: str, lpath: Path) -> None:
    lpath.parent.mkdir(parents=True, exist_ok=True)
    fs.get_file(rpath, os.fspath(lpath))


def materialize(
    repo: str | None,
    path: str,
    rev: str | None,
    out_dir: str | os.PathLike[str],
    *,
    expected_md5: str | None = None,
    remote_config: Mapping[str, Any] | None = None,
    jobs: int = 8,
    overwrite: bool = False,
) -> DatasetVersion:
    """Download exactly one dataset version into ``out_dir``, verified, atomically.

    The version is resolved with :func:`resolve_version` (a git clone of ``repo`` is enough; no project checkout,
    no DVC cache). The ``.dir`` manifest and then every file are fetched from the remote by md5, the manifest is
    checked against the pinned ``.dir`` md5 and every file against its manifest md5, and only then is the temporary
    folder renamed to ``out_dir``. On any error ``out_dir`` is left as it was (not created).

    Args:
        repo: git URL, local repository root or ``.dvc`` file; None to fetch by ``expected_md5`` alone (then
            ``remote_config`` must give the remote ``url``).
        path: dataset folder inside the repository (e.g. ``"data"``).
        rev: commit sha, branch or tag (None: working tree / default branch, see :func:`resolve_version`).
        out_dir: destination folder; must be absent or empty unless ``overwrite``.
        expected_md5: the ``.dir`` md5 the caller pinned (with or without ``.dir``); a different resolved hash is
            an error.
        remote_config: DVC remote options without credentials. With ``url`` it replaces the repository's default
            remote (e.g. ``{"url": "s3://bucket/dvc", "endpointurl": "http://seaweedfs:8333"}``); without ``url``
            its keys are laid over the default remote's options. Credentials come from the environment.
        jobs: parallel downloads.
        overwrite: replace a non-empty ``out_dir`` (swapped out only after the new data is verified).

    Returns:
        The materialized :class:`DatasetVersion` (``remote`` is the remote actually read).

    Raises:
        DataVersionError: unresolvable version, hash mismatch with ``expected_md5``, credentials in
            ``remote_config``, unreachable endpoint, missing or tampered objects (named, with the fix), or a
            non-empty ``out_dir``.
    """
    target = Path(out_dir).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise DataVersionError(
            f"Output folder {target} exists and is not empty; pass overwrite=True or choose a new folder."
        )
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise DataVersionError(f"jobs must be a positive int (parallel downloads), got {jobs!r}.")
    overrides = dict(remote_config or {})
    _check_no_secret_options(overrides, "remote_config")
    for key in ("url", "endpointurl"):
        if key in overrides:
            _check_no_credentials_in_url(str(overrides[key]), f"remote_config[{key!r}]")

    if repo is None:
        if expected_md5 is None or "url" not in overrides:
            raise DataVersionError(
                "materialize(repo=None, ...) fetches by hash alone and needs expected_md5 and remote_config={'url': "
                "...}; or pass the git repository (URL or path) that pins the version."
            )
        md5 = _normalize_md5(expected_md5, "expected_md5")
        version = DatasetVersion(path=str(path), md5=md5, n_files=0, size=0, remote="", git_rev="")
        base_conf: dict[str, Any] | None = None
    else:
        resolved = _resolve(repo, path, rev)
        version, base_conf = resolved.version, resolved.remote_conf
        if expected_md5 is not None:
            expected = _normalize_md5(expected_md5, "expected_md5")
            if expected != version.md5:
                raise DataVersionError(
                    f"{repo}@{rev or 'HEAD'}:{version.path} resolves to {version.md5}, but {expected} was expected; "
                    f"pin the commit that produced {expected} (rev=...) or update expected_md5."
                )
    if "url" in overrides:
        remote_conf = overrides
    elif base_conf is not None:
        remote_conf = {**base_conf, **overrides}
    else:
        raise DataVersionError(
            f"{repo} defines no default DVC remote; pass remote_config={{'url': 's3://bucket/prefix', "
            f"'endpointurl': ...}}."
        )
    if remote_conf.pop("_relative", False):
        raise DataVersionError(
            f"The default remote of {repo} is a relative local path ({remote_conf['url']!r}) that only exists next to "
            f"a checkout; pass remote_config={{'url': ...}} with the remote this machine can reach."
        )
    _check_no_secret_options(remote_conf, "The remote configuration")
    if remote_conf.get("endpointurl"):
        _check_endpoint(str(remote_conf["endpointurl"]))
    where = _describe_remote(remote_conf)
    fs, fs_root = _open_remote(remote_conf)

    # 1. The manifest (.dir object), checked against the pinned hash.
    dir_md5 = version.md5[: -len(".dir")]
    dir_object = _object_path(fs, fs_root, version.md5)
    try:
        manifest_raw = fs.cat_file(dir_object)
    except FileNotFoundError as exc:
        raise DataVersionError(
            f"The manifest of {version.path} ({version.md5}) is missing from remote {where} (object {dir_object}). "
            f"Push the dataset again from a good copy: `dvc push {version.path}.dvc`."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any backend error (auth, network) is reported with the remote
        raise DataVersionError(
            f"Could not read {dir_object} from remote {where}: {type(exc).__name__}: {exc}. Check the credentials "
            f"(AWS_* environment variables) and the remote URL."
        ) from exc
    actual_dir_md5 = hashlib.md5(manifest_raw, usedforsecurity=False).hexdigest()
    if actual_dir_md5 != dir_md5:
        raise DataVersionError(
            f"The manifest object {dir_object} on remote {where} is corrupt or was tampered with (md5 "
            f"{actual_dir_md5}, expected {dir_md5}). Push the dataset again from a good copy: "
            f"`dvc push {version.path}.dvc`."
        )
    try:
        entries = json.loads(manifest_raw)
        if not isinstance(entries, list):
            raise TypeError(f"expected a list, got {type(entries).__name__}")
        files = [(_safe_relpath(e["relpath"], dir_object), _normalize_md5(e["md5"], "manifest md5")[:-4])
                 for e in entries]
    except (ValueError, TypeError, KeyError) as exc:
        raise DataVersionError(f"The manifest object {dir_object} is not a DVC directory listing ({exc}).") from exc

    # 2. Every file, into a hidden sibling of out_dir (same file system: the final rename is atomic).
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
    tmp_dir.mkdir()
    try:
        failures: dict[str, BaseException] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {
                pool.submit(_fetch, fs, _object_path(fs, fs_root, md5), tmp_dir / rel): rel for rel, md5 in files
            }
            for future in concurrent.futures.as_completed(futures):
                exc = future.exception()
                if exc is not None:
                    failures[futures[future]] = exc
        by_rel = dict(files)
        missing = sorted(rel for rel, exc in failures.items() if isinstance(exc, FileNotFoundError))
        if missing:
            shown = ", ".join(f"{rel} (object {_object_path(fs, fs_root, by_rel[rel])})" for rel in missing[:5])
            raise DataVersionError(
                f"{len(missing)} file(s) of {version.path}@{version.md5} are missing from remote {where}: {shown}"
                f"{' ...' if len(missing) > 5 else ''}. Push the dataset again from a good copy: "
                f"`dvc push {version.path}.dvc` (or push_dataset())."
            )
        if failures:
            rel, exc = sorted(failures.items())[0]
            raise DataVersionError(
                f"Could not download {len(failures)} file(s) of {version.path} from remote {where}; first: {rel}: "
                f"{type(exc).__name__}: {exc}. Check the credentials (AWS_* environment variables) and the network."
            ) from exc
        # 3. Verify every file against the manifest.
        bad = []
        total = 0
        for rel, md5 in files:
            local = tmp_dir / rel
            actual = _file_md5(local)
            total += local.stat().st_size
            if actual != md5:
                bad.append((rel, md5, actual))
        if bad:
            shown = "; ".join(
                f"{rel}: object {_object_path(fs, fs_root, md5)} has md5 {actual}, expected {md5}"
                for rel, md5, actual in bad[:5]
            )
            raise DataVersionError(
                f"{len(bad)} file(s) of {version.path}@{version.md5} on remote {where} are corrupt or were tampered "
                f"with: {shown}{' ...' if len(bad) > 5 else ''}. Push the dataset again from a good copy: "
                f"`dvc push {version.path}.dvc` (objects that already exist are not re-uploaded, so first delete the "
                f"bad objects from the remote)."
            )
        if version.n_files and version.n_files != len(files):
            logger.warning("%s: the .dvc file says %d files, the manifest lists %d", version.path, version.n_files,
                           len(files))
        # 4. Into place.
        if target.exists():
            old_dir = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
            os.rename(target, old_dir)
            os.rename(tmp_dir, target)
            shutil.rmtree(old_dir, ignore_errors=True)
        else:
            os.rename(tmp_dir, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    result = DatasetVersion(
        path=version.path,
        md5=version.md5,
        n_files=len(files),
        size=total,
        remote=str(remote_conf.get("url", "")),
        git_rev=version.git_rev,
    )
    logger.info("Materialized %s %s (%d files, %d bytes) from %s into %s", result.path, result.md5, result.n_files,
                result.size, where, target)
    return result
