"""DVC data versioning: push → resolve → materialize, tamper/missing detection, credentials policy, S3 on loopback.

Unit tests use a local-folder remote under ``tmp_path``; the ``integration`` tests use the real SeaweedFS S3 server
from :mod:`tests.s3server`. DVC's site cache, global/system config, git's global config and the AWS environment are
isolated per test so nothing leaks between tests or from the developer's machine.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import time
import uuid
from pathlib import Path

import pytest
import yaml

from components.data_version import (
    SECRET_OPTION_NAMES,
    DataVersionError,
    DatasetVersion,
    hash_directory,
    init_data_repo,
    materialize,
    push_dataset,
    resolve_version,
)
from tests.s3server import SeaweedFS

REPO = Path(__file__).resolve().parents[1]

# dvc 3.67's own use of pygtrie; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:_NoneStep.value will soon raise:DeprecationWarning")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No DVC site cache / global config, git global config or AWS credentials leak in or out of a test."""
    iso = tmp_path_factory.mktemp("iso")
    for name in ("DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR"):
        (iso / name).mkdir()
        monkeypatch.setenv(name, str(iso / name))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    # git: no global/system config (so no identity: push_dataset's fallback identity is exercised)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(iso / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(iso / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(iso / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")


def _make_dataset(folder: Path, *, seed: int = 0, n: int = 3) -> None:
    """A tiny dataset folder: images/, masks/ and a yaml, random bytes (deterministic per seed)."""
    import random

    rng = random.Random(seed)
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (folder / sub / f"case-{i:03d}.png").write_bytes(rng.randbytes(200 + 50 * i))
    (folder / "dataset.yaml").write_text(f"seed: {seed}\nn: {n}\n", encoding="utf-8")


def _object_file(storage: Path, md5: str) -> Path:
    return storage / "files" / "md5" / md5[:2] / md5[2:]


def _manifest(storage: Path, version: DatasetVersion) -> list[dict[str, str]]:
    import json

    return json.loads(_object_file(storage, version.md5).read_bytes())


def _overwrite(path: Path, data: bytes) -> None:
    path.chmod(path.stat().st_mode | stat.S_IWUSR)  # DVC stores objects read-only
    path.write_bytes(data)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _no_leftovers(parent: Path, name: str) -> bool:
    return not any(p.name.startswith(f".{name}.") for p in parent.iterdir())


@pytest.fixture
def local_repo(tmp_path: Path) -> tuple[Path, Path, DatasetVersion]:
    """A git + DVC repository with a local remote and one pushed, tagged dataset version."""
    repo, storage = tmp_path / "repo", tmp_path / "storage"
    init_data_repo(repo, "../storage")
    _make_dataset(repo / "data")
    version = push_dataset(repo, "data", "data: first version", tag="data-v1")
    return repo, storage, version


# ----------------------------------------------------------------------------------------------------- unit tests
def test_push_records_dvc_hash_and_commit(local_repo: tuple[Path, Path, DatasetVersion]) -> None:
    repo, storage, version = local_repo
    local = hash_directory(repo / "data")
    assert version.md5 == local.md5 and version.md5.endswith(".dir")
    assert (version.n_files, version.size) == (local.n_files, local.size) == (7, sum(
        p.stat().st_size for p in (repo / "data").rglob("*") if p.is_file()))
    assert version.path == "data" and version.remote == str(storage.resolve())
    assert re.fullmatch(r"[0-9a-f]{40}", version.git_rev)
    assert _object_file(storage, version.md5).is_file()  # the manifest was pushed
    assert all(_object_file(storage, e["md5"]).is_file() for e in _manifest(storage, version))
    dvc_file = yaml.safe_load((repo / "data.dvc").read_text())
    assert dvc_file["outs"][0]["md5"] == version.md5
    config = (repo / ".dvc" / "config").read_text()
    assert "url = ../../storage" in config  # stored relative to .dvc/, so repo + storage can move together


def test_push_unchanged_data_is_a_no_op_and_new_data_is_a_new_version(
    local_repo: tuple[Path, Path, DatasetVersion],
) -> None:
    repo, storage, v1 = local_repo
    again = push_dataset(repo, "data")
    assert again == v1  # same hash, no new commit
    (repo / "data" / "images" / "case-000.png").write_bytes(b"changed")
    v2 = push_dataset(repo, "data", tag="data-v2")
    assert v2.md5 != v1.md5 and v2.git_rev != v1.git_rev
    # the old tag still pins the old content
    assert resolve_version(str(repo), "data", "data-v1") == v1
    assert resolve_version(str(repo), "data", "data-v2").md5 == v2.md5
    with pytest.raises(DataVersionError, match="already points at"):
        push_dataset(repo, "data", tag="data-v1")


def test_resolve_version_by_tag_sha_worktree_and_dvc_file(local_repo: tuple[Path, Path, DatasetVersion]) -> None:
    repo, _, version = local_repo
    assert resolve_version(str(repo), "data", "data-v1") == version
    assert resolve_version(str(repo), "data", version.git_rev) == version
    assert resolve_version(str(repo), "data.dvc", "main") == version
    assert resolve_version(str(repo)) == version  # working tree, committed: pinned to HEAD
    from_file = resolve_version(str(repo / "data.dvc"))
    assert from_file.md5 == version.md5 and from_file.git_rev == ""
    with pytest.raises(DataVersionError, match="does not exist in"):
        resolve_version(str(repo), "data", "no-such-tag")
    with pytest.raises(DataVersionError, match=r"other\.dvc does not exist"):
        resolve_version(str(repo), "other", "data-v1")


def test_materialize_round_trip_into_fresh_folder(
    local_repo: tuple[Path, Path, DatasetVersion], tmp_path_factory: pytest.TempPathFactory
) -> None:
    repo, _, version = local_repo
    out = tmp_path_factory.mktemp("elsewhere") / "dataset"
    got = materialize(str(repo), "data", "data-v1", out, expected_md5=version.md5[:32])
    assert got.md5 == version.md5 and got.git_rev == version.git_rev
    assert (got.n_files, got.size) == (version.n_files, version.size)
    assert hash_directory(out) == hash_directory(repo / "data")
    for src in (repo / "data").rglob("*"):
        if src.is_file():
            assert (out / src.relative_to(repo / "data")).read_bytes() == src.read_bytes()
    assert _no_leftovers(out.parent, out.name)


def test_materialize_by_hash_alone_without_git(
    local_repo: tuple[Path, Path, DatasetVersion], tmp_path: Path
) -> None:
    _, storage, version = local_repo
    out = tmp_path / "by-hash"
    got = materialize(None, "data", None, out, expected_md5=version.md5, remote_config={"url": str(storage)})
    assert got.md5 == version.md5 and got.n_files == version.n_files and got.git_rev == ""
    assert hash_directory(out).md5 == version.md5


def test_tampered_object_is_named_and_out_dir_not_created(
    local_repo: tuple[Path, Path, DatasetVersion], tmp_path: Path
) -> None:
    repo, storage, version = local_repo
    entry = next(e for e in _manifest(storage, version) if e["relpath"] == "masks/case-001.png")
    _overwrite(_object_file(storage, entry["md5"]), b"tampered")
    out = tmp_path / "out"
    with pytest.raises(DataVersionError) as info:
        materialize(str(repo), "data", "data-v1", out)
    message = str(info.value)
    assert "masks/case-001.png" in message and entry["md5"][2:] in message
    assert "tampered" in message and "dvc push" in message
    assert not out.exists() and _no_leftovers(tmp_path, "out")


def test_missing_object_is_named_and_existing_out_dir_untouched(
    local_repo: tuple[Path, Path, DatasetVersion], tmp_path: Path
) -> None:
    repo, storage, version = local_repo
    entry = next(e for e in _manifest(storage, version) if e["relpath"] == "images/case-002.png")
    _object_file(storage, entry["md5"]).unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")
    with pytest.raises(DataVersionError, match=r"missing from remote .*images/case-002\.png"):
        materialize(str(repo), "data", "data-v1", out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and _no_leftovers(tmp_path, "out")


def test_tampered_manifest_is_detected(local_repo: tuple[Path, Path, DatasetVersion], tmp_path: Path) -> None:
    repo, storage, version = local_repo
    manifest = _object_file(storage, version.md5)
    _overwrite(manifest, manifest.read_bytes().replace(b"case-000", b"case-999"))
    with pytest.raises(DataVersionError, match=r"manifest object .*tampered"):
        materialize(str(repo), "data", "data-v1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_materialize_refuses_wrong_pin_and_non_empty_output(
    local_repo: tuple[Path, Path, DatasetVersion], tmp_path: Path
) -> None:
    repo, _, version = local_repo
    with pytest.raises(DataVersionError, match="was expected"):
        materialize(str(repo), "data", "data-v1", tmp_path / "a", expected_md5="0" * 32)
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(DataVersionError, match="not empty"):
        materialize(str(repo), "data", "data-v1", tmp_path / "b")
    got = materialize(str(repo), "data", "data-v1", tmp_path / "b", overwrite=True)
    assert got.md5 == version.md5 and not (tmp_path / "b" / "x").exists()


@pytest.mark.parametrize(
    ("remote_url", "endpoint_url", "match"),
    [
        ("s3://AKIAEXAMPLE:s3cr3tValue@bucket/dvc", None, "credentials in the URL"),
        ("s3://bucket/dvc", "http://user:s3cr3tValue@127.0.0.1:9000", "credentials in the URL"),
        ("gs://bucket/dvc", None, "not supported"),
        ("s3:///dvc", None, "no bucket"),
        ("../storage", "http://127.0.0.1:9000", "only applies to s3"),
    ],
)
def test_init_data_repo_refuses_bad_remotes(tmp_path: Path, remote_url: str, endpoint_url: str | None,
                                            match: str) -> None:
    with pytest.raises(DataVersionError, match=match) as info:
        init_data_repo(tmp_path / "repo", remote_url, endpoint_url=endpoint_url)
    assert "s3cr3tValue" not in str(info.value)  # the secret is never echoed
    assert not (tmp_path / "repo" / ".dvc").exists()


def test_credentials_never_reach_config_or_parameters(local_repo: tuple[Path, Path, DatasetVersion],
                                                      tmp_path: Path) -> None:
    repo, storage, _ = local_repo
    with pytest.raises(DataVersionError, match="secret_access_key") as info:
        materialize(str(repo), "data", "data-v1", tmp_path / "o",
                    remote_config={"url": str(storage), "secret_access_key": "s3cr3tValue"})
    assert "s3cr3tValue" not in str(info.value) and not (tmp_path / "o").exists()

    s3_repo = tmp_path / "s3-repo"
    init_data_repo(s3_repo, "s3://lgmsnet-test/dvc", endpoint_url="http://127.0.0.1:9")
    _make_dataset(s3_repo / "data")
    with (s3_repo / ".dvc" / "config").open("a") as fh:  # someone hand-edits a secret into the committed config
        fh.write("    secret_access_key = s3cr3tValue\n")
    for call in (lambda: push_dataset(s3_repo, "data"), lambda: init_data_repo(s3_repo, "s3://lgmsnet-test/dvc")):
        with pytest.raises(DataVersionError, match=r"secret_access_key.*rotate") as info:
            call()
        assert "s3cr3tValue" not in str(info.value)
    assert not (s3_repo / "data.dvc").exists()
    assert "s3cr3tValue" in (s3_repo / ".dvc" / "config").read_text()  # refused, not silently rewritten


def test_repository_url_with_password_refused_but_ssh_user_allowed(tmp_path: Path) -> None:
    with pytest.raises(DataVersionError, match="credentials in the URL") as info:
        resolve_version("https://ci:ghp_s3cr3tValue@example.invalid/org/data.git", "data", "main")
    assert "s3cr3tValue" not in str(info.value)
    with pytest.raises(DataVersionError, match="Could not clone"):  # passes the credential check, then fails to clone
        resolve_version(f"ssh://git@127.0.0.1:{_closed_port()}/org/data.git", "data", "main")


def test_unreachable_s3_endpoint_fails_fast_and_writes_nothing(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    repo = tmp_path / "repo"
    init_data_repo(repo, "s3://lgmsnet-test/dvc", endpoint_url=endpoint)
    assert f"endpointurl = {endpoint}" in (repo / ".dvc" / "config").read_text()
    _make_dataset(repo / "data")
    started = time.monotonic()
    with pytest.raises(DataVersionError, match=r"not reachable.*nothing was written"):
        push_dataset(repo, "data")
    assert time.monotonic() - started < 20
    assert not (repo / "data.dvc").exists()
    out = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(DataVersionError, match="not reachable"):
        materialize(None, "data", None, out, expected_md5="a" * 32,
                    remote_config={"url": "s3://lgmsnet-test/dvc", "endpointurl": endpoint})
    assert time.monotonic() - started < 20
    assert not out.exists() and _no_leftovers(tmp_path, "out")


def test_push_and_resolve_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(DataVersionError, match="init_data_repo"):
        push_dataset(tmp_path, "data")
    repo = tmp_path / "repo"
    init_data_repo(repo, str(tmp_path / "storage"))
    with pytest.raises(DataVersionError, match="missing or holds no files"):
        push_dataset(repo, "data")
    with pytest.raises(DataVersionError, match="inside the repository"):
        push_dataset(repo, "../elsewhere")
    with pytest.raises(DataVersionError, match="inside the git repository"):
        init_data_repo(repo / "sub", str(tmp_path / "storage"))
    with pytest.raises(DataVersionError, match="needs expected_md5"):
        materialize(None, "data", None, tmp_path / "o")
    with pytest.raises(DataVersionError, match="32 hex digits"):
        materialize(None, "data", None, tmp_path / "o", expected_md5="abc", remote_config={"url": "/x"})


# ------------------------------------------------------------------------------------ the repository's own data.dvc
def test_repository_data_dvc_matches_regenerated_synthetic_dataset(tmp_path: Path) -> None:
    """data.dvc pins the embedded default dataset; regenerating it must give the same hash (never silently stale)."""
    from lgmsnet.data import synthesize

    version = resolve_version(str(REPO / "data.dvc"))
    assert version.path == "data"
    synthesize(tmp_path / "data", n=120, domain="source", seed=0, size=128)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "SYNTHETIC_README.txt", "dataset.yaml", "images", "masks"]
    regenerated = hash_directory(tmp_path / "data")
    assert (regenerated.md5, regenerated.n_files, regenerated.size) == (version.md5, version.n_files, version.size), (
        "data.dvc is stale: regenerate data/ with synthesize(n=120, domain='source', seed=0, size=128) and run "
        "`dvc add data` (see docs/data-versioning.md)"
    )


def test_repository_dvc_config_has_only_a_local_default_remote_and_no_secrets() -> None:
    from configobj import ConfigObj

    text = (REPO / ".dvc" / "config").read_text(encoding="utf-8")
    config = ConfigObj(text.splitlines(), list_values=False, interpolation=False)
    keys = {k.lower() for section in config.values() if isinstance(section, dict) for k in section}
    assert not keys & SECRET_OPTION_NAMES
    assert not re.search(r"(?i)(secret|password|token|passphrase|AKIA[0-9A-Z]{12,})", text)
    default = config["core"]["remote"]
    url = config[f'remote "{default}"']["url"]
    assert "://" not in url and not os.path.isabs(url) and "@" not in url  # a relative local folder
    assert (REPO / ".dvc" / ".gitignore").read_text().split() == ["/config.local", "/tmp", "/cache"]


# ---------------------------------------------------------------------------------------- integration: real S3
@pytest.fixture
def s3_env(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials of the session's SeaweedFS in the environment, and a fresh bucket name."""
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"dvc-{uuid.uuid4().hex[:12]}"
    seaweedfs.make_bucket(bucket)
    return bucket


@pytest.mark.integration
def test_s3_push_then_materialize_from_a_clone_elsewhere(
    seaweedfs: SeaweedFS, s3_env: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    repo = tmp_path / "repo"
    init_data_repo(repo, f"s3://{s3_env}/dvc", endpoint_url=seaweedfs.endpoint_url)
    config_text = (repo / ".dvc" / "config").read_text()
    assert seaweedfs.access_key not in config_text and seaweedfs.secret_key not in config_text
    _make_dataset(repo / "data", seed=7)
    version = push_dataset(repo, "data", tag="data-v1")
    assert version.remote == f"s3://{s3_env}/dvc"
    keys = {o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=s3_env, Prefix="dvc/")["Contents"]}
    assert f"dvc/files/md5/{version.md5[:2]}/{version.md5[2:]}" in keys and len(keys) == version.n_files + 1

    # a "container": only the repository URL and the pinned hash; another folder, no checkout, no DVC cache
    url = f"file://{repo}"
    assert resolve_version(url, "data", "data-v1") == version
    out = tmp_path_factory.mktemp("container") / "data"
    got = materialize(url, "data", "data-v1", out, expected_md5=version.md5)
    assert got.md5 == version.md5 and got.remote == f"s3://{s3_env}/dvc"
    assert hash_directory(out) == hash_directory(repo / "data")


@pytest.mark.integration
def test_s3_tampered_and_missing_objects_are_detected(
    seaweedfs: SeaweedFS, s3_env: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    init_data_repo(repo, f"s3://{s3_env}/dvc", endpoint_url=seaweedfs.endpoint_url)
    _make_dataset(repo / "data", seed=8)
    version = push_dataset(repo, "data")
    client = seaweedfs.client()
    import json

    manifest = json.loads(client.get_object(
        Bucket=s3_env, Key=f"dvc/files/md5/{version.md5[:2]}/{version.md5[2:]}")["Body"].read())
    entry = next(e for e in manifest if e["relpath"] == "images/case-001.png")
    key = f"dvc/files/md5/{entry['md5'][:2]}/{entry['md5'][2:]}"
    client.put_object(Bucket=s3_env, Key=key, Body=b"tampered through the S3 API")
    out = tmp_path / "out"
    with pytest.raises(DataVersionError, match=r"tampered.*images/case-001\.png"):
        materialize(f"file://{repo}", "data", version.git_rev, out)
    assert not out.exists() and _no_leftovers(tmp_path, "out")

    client.delete_object(Bucket=s3_env, Key=key)
    with pytest.raises(DataVersionError, match=r"missing from remote .*images/case-001\.png"):
        materialize(str(repo), "data", version.git_rev, out)
    assert not out.exists() and _no_leftovers(tmp_path, "out")


@pytest.mark.integration
def test_seaweedfs_enforces_its_static_identity(seaweedfs: SeaweedFS) -> None:
    import boto3
    from botocore.exceptions import ClientError

    env = seaweedfs.env()
    assert set(env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "MLFLOW_S3_ENDPOINT_URL",
                        "AWS_ENDPOINT_URL"}
    assert seaweedfs.secret_key not in repr(seaweedfs)
    bad = boto3.session.Session().client(
        "s3", endpoint_url=seaweedfs.endpoint_url, region_name="us-east-1",
        aws_access_key_id=seaweedfs.access_key, aws_secret_access_key="wrong-secret")
    with pytest.raises(ClientError):
        bad.list_buckets()
    seaweedfs.client().list_buckets()
