"""A real ``mlflow server`` process for the integration tier: PostgreSQL backend + S3 (SeaweedFS) artifacts.

:class:`MLflowServer` starts ``python -m mlflow server`` on a free 127.0.0.1 port, waits for ``/health`` and stops it
(SIGTERM, then SIGKILL). :func:`postgres_database` creates a fresh PostgreSQL database per test session
(``lgmsnet_test_<random>``) and drops it afterwards. Fixtures (session scope):

* ``mlflow_server``: PostgreSQL backend, ``--artifacts-destination s3://<bucket>/mlflow`` on the ``seaweedfs``
  fixture of :mod:`tests.s3server` (the server holds the S3 credentials; clients only talk HTTP to it);
* ``mlflow_server_sqlite``: SQLite backend and local artifacts (no PostgreSQL/S3 needed).

PostgreSQL is reached through ``LGMSNET_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``, an
administrative database used to create/drop the test database); a missing server or driver fails the fixture with
that hint (the integration tier is never skipped silently). Use in a test module with
``from tests.mlflowserver import mlflow_server  # noqa: F401`` (or list ``tests.mlflowserver`` in the root
conftest's ``pytest_plugins``).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest

__all__ = [
    "DEFAULT_PG_DSN",
    "MLflowServer",
    "MLflowServerError",
    "free_port",
    "mlflow_server",
    "mlflow_server_sqlite",
    "postgres_database",
]

logger = logging.getLogger(__name__)

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# variables of the calling shell that would redirect the server (or leak into it)
_STRIP_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
              "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
              "AWS_SESSION_TOKEN", "AWS_PROFILE")


class MLflowServerError(RuntimeError):
    """The MLflow server could not be started or answered no health check; the message has the log tail."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MLflowServer:
    """``mlflow server`` on 127.0.0.1 as a context manager.

    Args:
        workdir: folder for the log (``mlflow-server.log``) and, by default, local artifacts.
        backend_store_uri: ``postgresql://...`` or ``sqlite:///...``.
        artifacts_destination: ``s3://bucket/prefix`` or a local folder URI (default: ``workdir/artifacts``);
            artifacts are proxied by the server (``--serve-artifacts``), clients need no storage credentials.
        env: extra environment of the server process (S3 endpoint and credentials).
        port: port (default: a free one).
        workers: server worker processes (1 keeps CI light; requests still run concurrently in it).
        start_timeout: seconds to wait for ``/health`` (the first start runs the database migrations).

    Attributes:
        url: ``http://127.0.0.1:<port>`` (the tracking URI).
        log_path: the server's combined stdout/stderr.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        backend_store_uri: str,
        *,
        artifacts_destination: str | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        workers: int = 1,
        start_timeout: float = 180.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.backend_store_uri = backend_store_uri
        self.artifacts_destination = artifacts_destination or (self.workdir / "artifacts").as_uri()
        self.extra_env = dict(env or {})
        self.port = port or free_port()
        self.workers = workers
        self.start_timeout = start_timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "mlflow-server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def __repr__(self) -> str:
        return f"MLflowServer(url={self.url!r}, backend={_redact(self.backend_store_uri)!r}, running={self.running})"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The server command line."""
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", self.backend_store_uri,
            "--serve-artifacts",
            "--artifacts-destination", self.artifacts_destination,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", str(self.workers),
        ]

    def start(self) -> MLflowServer:
        """Start the server and wait until ``GET /health`` answers 200.

        Raises:
            MLflowServerError: the process exited or stayed unhealthy past ``start_timeout`` (log tail included).
        """
        if self.running:
            return self
        import requests

        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _STRIP_ENV}
        env.update(self.extra_env)
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        env.setdefault("DO_NOT_TRACK", "true")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        started = time.monotonic()
        self._proc = subprocess.Popen(
            self.command(), cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        last = ""
        while time.monotonic() - started < self.start_timeout:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise MLflowServerError(f"mlflow server exited with status {code} before answering /health.\n"
                                        f"{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    logger.info("mlflow server %s ready in %.1f s", self.url, time.monotonic() - started)
                    return self
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}"
            time.sleep(0.25)
        self.stop()
        raise MLflowServerError(f"mlflow server {self.url} not healthy within {self.start_timeout:.0f} s (last: "
                                f"{last}).\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group, wait ``timeout`` s, then SIGKILL. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(proc.pid, sig)  # the server's own session: uvicorn/gunicorn workers included
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    logger.warning("mlflow server (pid %d) ignored %s", proc.pid, sig.name)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> MLflowServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` of the server log (credentials redacted)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        for secret in self.extra_env.values():
            if len(secret) >= 16:
                text = text.replace(secret, "***")
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])


def _redact(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return urlunparse(parsed._replace(netloc=netloc))
    return uri


@contextmanager
def postgres_database(admin_dsn: str | None = None, prefix: str = "lgmsnet_test") -> Iterator[str]:
    """Create a fresh database ``<prefix>_<random>`` and yield its SQLAlchemy URI (``postgresql+psycopg2://``).

    The database is dropped afterwards (``WITH (FORCE)``, so open connections of a killed server do not block it).

    Args:
        admin_dsn: a DSN of an existing database with CREATE DATABASE rights (default ``LGMSNET_TEST_PG_DSN`` or
            :data:`DEFAULT_PG_DSN`).
        prefix: database name prefix.

    Raises:
        MLflowServerError: psycopg2 is missing or PostgreSQL is unreachable (the message says what to do).
    """
    dsn = admin_dsn or os.environ.get("LGMSNET_TEST_PG_DSN", DEFAULT_PG_DSN)
    try:
        import psycopg2
    except ImportError as exc:
        raise MLflowServerError("PostgreSQL tests need the psycopg2 driver: pip install psycopg2-binary") from exc
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        admin = psycopg2.connect(dsn, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise MLflowServerError(
            f"PostgreSQL at {_redact(dsn)} is unreachable ({str(exc).strip()}); start it (e.g. `pg_ctlcluster 15 "
            "main start`) or point LGMSNET_TEST_PG_DSN at a server where this user may CREATE DATABASE."
        ) from exc
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        parsed = urlparse(dsn)
        # name the driver: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not installed
        uri = urlunparse(parsed._replace(scheme="postgresql+psycopg2", path=f"/{name}"))
        logger.info("created PostgreSQL database %s", name)
        yield uri
    finally:
        try:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            logger.info("dropped PostgreSQL database %s", name)
        finally:
            admin.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, seaweedfs: Any) -> Iterator[MLflowServer]:
    """``mlflow server`` with a fresh PostgreSQL database and S3 artifacts on the session's SeaweedFS."""
    workdir = tmp_path_factory.mktemp("mlflow-server")
    bucket = f"mlflow-{secrets.token_hex(3)}"
    seaweedfs.make_bucket(bucket)
    try:
        with postgres_database() as backend:
            server = MLflowServer(workdir, backend, artifacts_destination=f"s3://{bucket}/mlflow",
                                  env=seaweedfs.env())
            try:
                server.start()
            except MLflowServerError as exc:
                pytest.fail(str(exc), pytrace=False)
            try:
                yield server
            finally:
                server.stop()
    except MLflowServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def mlflow_server_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """``mlflow server`` with a SQLite backend and local artifacts (no PostgreSQL or S3 needed)."""
    workdir = tmp_path_factory.mktemp("mlflow-server-sqlite")
    server = MLflowServer(workdir, f"sqlite:///{workdir / 'mlflow.db'}")
    try:
        server.start()
    except MLflowServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
