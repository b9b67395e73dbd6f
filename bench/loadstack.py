"""The production-like server processes of the load bench: gunicorn serving
`annotation_server.wsgi` with several workers, and a Celery worker, both with the
production settings (DJANGO_DEBUG=0, a secret key, REFSET_KEY_ENCRYPTION_KEY,
DJANGO_ALLOWED_HOSTS=127.0.0.1) except what plain HTTP on loopback needs:
DJANGO_SECURE_SSL_REDIRECT=0 and DJANGO_SECURE_COOKIES=0 (HSTS stays as in
production; a client ignores it over HTTP). No Django import here.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ERROR_MARKS = (" ERROR ", "[ERROR]", "[CRITICAL]")  # Django's log format; gunicorn's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_keys() -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "REFSET_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }


def production_env(
    *,
    database_url: str,
    broker_url: str,
    queue: str,
    media_root: str,
    var_dir: str,
    keys: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a production deployment on loopback. `keys` (secret key,
    key-encryption key) default to the ones in os.environ; the key-encryption key
    must be the one the data was seeded with."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REFSET_DEMO", "DJANGO_DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    env.update(keys or {})
    if not env.get("REFSET_KEY_ENCRYPTION_KEY"):
        raise RuntimeError("REFSET_KEY_ENCRYPTION_KEY: the key the data was seeded with")
    env.update(
        DJANGO_SETTINGS_MODULE="annotation_server.settings",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_COOKIES="0",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        REFSET_CELERY_QUEUE=queue,
        REFSET_MEDIA_ROOT=media_root,
        REFSET_VAR_DIR=var_dir,
        REFSET_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


@dataclass
class Stack:
    """gunicorn + a Celery worker; stop() ends both (also after a failed start)."""

    env: dict[str, str]
    log_dir: Path
    workers: int = 4
    threads: int = 4
    port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "gunicorn.log"

    @property
    def worker_log(self) -> Path:
        return self.log_dir / "celery.log"

    def start(self, timeout: float = 90) -> Stack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        py = sys.executable
        self._spawn(
            [
                py,
                "-m",
                "celery",
                "-A",
                "annotation_server",
                "worker",
                "-Q",
                self.env["REFSET_CELERY_QUEUE"],
                "--pool",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
            ],
            self.worker_log,
        )
        self._spawn(
            [
                py,
                "-m",
                "gunicorn",
                "annotation_server.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(self.threads),
                "--timeout",
                "120",
                "--graceful-timeout",
                "10",
                "--no-control-socket",
                "--chdir",
                str(ROOT),
            ],
            self.server_log,
        )
        self._wait_ready(timeout)
        return self

    def _spawn(self, argv: list[str], log: Path) -> None:
        with open(log, "ab") as out:
            self.procs.append(
                subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def _wait_ready(self, timeout: float) -> None:
        """Until /healthz answers 200 (database and broker reachable)."""
        deadline = time.monotonic() + timeout
        ok = False
        while not ok:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[2]} exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=10) as r:
                    ok = r.status == 200
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn not ready:\n{self.log_tail()}") from None
                time.sleep(0.3)

    def warm_up(self, rounds: int = 3) -> None:
        """Let every worker answer a few pages first (imports, URL patterns,
        templates, database connections), so the run measures serving."""
        from concurrent.futures import ThreadPoolExecutor

        def get(path: str) -> None:
            with urllib.request.urlopen(f"{self.base_url}{path}", timeout=60) as r:
                r.read()

        paths = ["/login/", "/healthz"] * (self.workers * self.threads * rounds // 2)
        with ThreadPoolExecutor(self.workers * 2) as pool:
            list(pool.map(get, paths))

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for log in (self.server_log, self.worker_log):
            if log.exists():
                text = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    def errors_logged(self) -> list[str]:
        """Tracebacks and ERROR lines in the server's and the worker's logs."""
        found = []
        for log in (self.server_log, self.worker_log):
            if not log.exists():
                continue
            lines = log.read_text(errors="replace").splitlines()
            for i, line in enumerate(lines):
                if line.startswith("Traceback") or any(m in line for m in ERROR_MARKS):
                    found.append(f"{log.name}: " + "\n  ".join(lines[i : i + 30]))
        return found

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()
