"""`make test`: start PostgreSQL and Redis on loopback in temporary directories,
run the checks and the whole suite against them, stop every server, also on
failure or Ctrl-C.

    python -m tests.harness [pytest args...]

Steps: manage.py check, makemigrations --check, ruff check, ruff format --check,
lint-imports (the app layering contract), pytest (xdist). The suite's own
fixtures start a Celery worker and headless Chromium where a test needs them.
Every step runs; the exit status is the first failing step's.
"""

from __future__ import annotations

import base64
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def log(msg: str) -> None:
    print(f"[harness] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (run tests/install_system_packages.sh)")
    return found[-1]


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    def __init__(self, stack: ExitStack):
        self.dir = Path(tempfile.mkdtemp(prefix="refset-pg-"))
        stack.callback(shutil.rmtree, self.dir, ignore_errors=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        subprocess.run(
            as_postgres(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        subprocess.run(
            as_postgres(
                [
                    pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    opts,
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        stack.callback(self.stop)
        subprocess.run(
            as_postgres(
                [
                    pg_bin("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "refset",
                ]
            ),
            check=True,
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/refset"
        log(f"PostgreSQL on 127.0.0.1:{self.port} ({self.dir})")

    def stop(self) -> None:
        subprocess.run(
            as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        log("PostgreSQL stopped")


class Redis:
    def __init__(self, stack: ExitStack):
        self.dir = Path(tempfile.mkdtemp(prefix="refset-redis-"))
        stack.callback(shutil.rmtree, self.dir, ignore_errors=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        stack.callback(self.stop)
        wait_port(self.port)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        log(f"Redis on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        log("Redis stopped")


def run(step: str, cmd: list[str], env: dict) -> int:
    log(f"{step}: {' '.join(cmd)}")
    started = time.monotonic()
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    log(f"{step}: exit {code} in {time.monotonic() - started:.0f}s")
    return code


def main(argv: list[str]) -> int:
    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    with ExitStack() as stack:
        pg = Postgres(stack)
        redis = Redis(stack)
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update(
            DATABASE_URL=pg.url,
            CELERY_BROKER_URL=redis.url,
            DJANGO_SETTINGS_MODULE="annotation_server.settings",
            REFSET_VAR_DIR=str(Path(tempfile.mkdtemp(prefix="refset-var-"))),
            REFSET_TEST_ARTIFACTS=str(artifacts),
            REFSET_KEY_ENCRYPTION_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            # Playwright's sync API runs an event loop in the test thread.
            DJANGO_ALLOW_ASYNC_UNSAFE="true",
            PYTHONDONTWRITEBYTECODE="1",
        )
        stack.callback(shutil.rmtree, env["REFSET_VAR_DIR"], ignore_errors=True)
        ruff = str(Path(PY).parent / "ruff")
        steps = [
            ("django check", [PY, "manage.py", "check", "--fail-level", "WARNING"]),
            ("migrations", [PY, "manage.py", "makemigrations", "--check", "--dry-run"]),
            ("ruff", [ruff, "check", "."]),
            ("ruff format", [ruff, "format", "--check", "."]),
            # The layering contract (pyproject.toml [tool.importlinter]).
            ("import layers", [str(Path(PY).parent / "lint-imports"), "--no-cache"]),
            (
                "pytest",
                [
                    PY,
                    "-m",
                    "pytest",
                    "-n",
                    env.get("REFSET_TEST_WORKERS", "2"),
                    "--dist",
                    "loadgroup",
                    *argv,
                ],
            ),
        ]
        failed = [(step, code) for step, cmd in steps if (code := run(step, cmd, env)) != 0]
        if failed:
            log("FAILED: " + ", ".join(f"{step} (exit {code})" for step, code in failed))
            return failed[0][1]
        log("all steps passed")
        return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        sys.exit(130)
