"""Several RefSet hosts on this machine, one network namespace each (tests/netns.py).

    with ExitStack() as stack:
        cluster = Cluster(tmp_path, stack)          # the LAN and hosts d, w, k1, k2
        cluster.start_data()                        # PostgreSQL, Redis, SeaweedFS on d
        cluster.migrate(); cluster.start_web()      # gunicorn on w
        k1 = cluster.start_worker("k1", ["ingest", "qc"])

- d: PostgreSQL, Redis and SeaweedFS (S3), each bound to d's address only.
- w: the web node, gunicorn (annotation_server.wsgi), DJANGO_DEBUG=0.
- k1, k2, ...: Celery workers, each on the queues it is given.

Every host is a namespace on one bridge (tests.netns.Lan) and runs its processes
under a host name of its own ("refset-k1": what a Job row's `worker` records)
and in a mount namespace of its own where every other host's folder is hidden
under an empty read-only tmpfs: a host sees its own folder (media, cache,
temporary files, exports) and nobody else's, so a file handed over through a
local disk would be missing on the host that needs it. Each RefSet process gets
the environment `env_for(host)` builds: the same variables docs/deploy.md lists.

Everything is stopped, and every namespace and link deleted, by the caller's
ExitStack, also after a failure.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from tests.harness import pg_bin
from tests.netns import Lan, NsHost
from tests.seaweed import REGION, SeaweedHandle, weed_binary
from tests.seaweed import _wait_ready as wait_seaweed

ROOT = Path(__file__).resolve().parent.parent.parent
PY = sys.executable
PG_PORT, REDIS_PORT, WEB_PORT = 5432, 6379, 8000
WEED_PORTS = {"master": 9333, "volume": 8080, "filer": 8888, "s3": 8333}
# Which host a job's queue sends it to is the test's to check; the queues here.
INGEST_QUEUE, QC_QUEUE, EXPORT_QUEUE, DEFAULT_QUEUE = "ingest", "qc", "export", "default"


class ClusterError(RuntimeError):
    """A host's process did not start or answer."""


def _wait_tcp(addr: str, port: int, timeout: float, proc=None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ClusterError(f"{what} exited with status {proc.returncode} while starting")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex((addr, port)) == 0:
                return
        time.sleep(0.1)
    raise ClusterError(f"nothing answered on {addr}:{port} after {timeout:.0f}s ({what})")


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


class Cluster:
    def __init__(
        self,
        tmp: Path,
        stack: ExitStack,
        *,
        workers: tuple[str, ...] = ("k1", "k2"),
        web: bool = True,
        lease_s: int = 3,
    ):
        self.tmp = Path(tmp)
        self.stack = stack
        self.lease_s = lease_s
        self.lan = Lan(stack)
        self.hosts: dict[str, NsHost] = {}
        self.homes = self.tmp / "hosts"
        for name in ("d", *(("w",) if web else ()), *workers):
            self.hosts[name] = self.lan.add_host(name)
            for sub in ("media", "cache", "tmp", "exports", "var", "models"):
                (self.homes / name / sub).mkdir(parents=True, exist_ok=True)
        self.d = self.hosts["d"]
        self.w = self.hosts.get("w")
        self.logs = self.tmp / "logs"
        self.logs.mkdir(exist_ok=True)
        self.secret_key = secrets.token_urlsafe(40)
        self.fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        self.s3: SeaweedHandle | None = None
        self.web_url = f"http://{self.w.addr}:{WEB_PORT}" if self.w else ""
        self.database_url = f"postgresql://postgres@{self.d.addr}:{PG_PORT}/refset"
        self.broker_url = f"redis://{self.d.addr}:{REDIS_PORT}/0"
        self.workers: dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------ commands per host
    def home(self, name: str) -> Path:
        return self.homes / name

    def command(self, name: str, argv: list[str]) -> list[str]:
        """`argv` on host `name`: its namespace, its host name, and a mount
        namespace where the other hosts' folders are empty and read-only."""
        host = self.hosts[name]
        steps = [
            f"mount -t tmpfs -o ro,size=4k refset-hidden {self.home(other)}"
            for other in self.hosts
            if other != name
        ]
        script = " && ".join([*steps, 'hostname "$0"', 'exec "$@"'])
        return [
            "ip",
            "netns",
            "exec",
            host.netns,
            "unshare",
            "--uts",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            host.hostname,
            *argv,
        ]

    def popen(self, name: str, argv: list[str], env: dict, log: str) -> subprocess.Popen:
        with open(self.logs / log, "ab") as out:
            proc = subprocess.Popen(
                self.command(name, argv),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return proc

    def run(self, name: str, argv: list[str], env: dict | None = None, timeout: float = 300):
        done = subprocess.run(
            self.command(name, argv),
            cwd=ROOT,
            env=env if env is not None else self.env_for(name),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise ClusterError(
                f"{' '.join(argv)} on {name} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def log_tail(self, log: str, chars: int = 4000) -> str:
        path = self.logs / log
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # ------------------------------------------------------------ host d
    def start_data(self) -> None:
        self.start_postgres()
        self.start_redis()
        self.start_seaweed()

    def start_postgres(self) -> None:
        # Its own top-level folder: the postgres user cannot enter the test's tmp.
        home = Path(tempfile.mkdtemp(prefix="refset-mh-pg-"))
        self.stack.callback(shutil.rmtree, home, ignore_errors=True)
        data = home / "data"
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(home, "postgres", "postgres")
        subprocess.run(
            [*as_pg, pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            + ["-E", "UTF8", "--locale=C.UTF-8"],
            check=True,
            capture_output=True,
        )
        with open(data / "pg_hba.conf", "a") as hba:  # the LAN's hosts, no password
            hba.write(f"host all all {self.lan.net} trust\n")
        opts = (
            f"-c listen_addresses={self.d.addr} -p {PG_PORT} -k {home} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        ctl = [pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(home / "log")]
        subprocess.run(
            self.command("d", [*as_pg, *ctl, "-w", "start"]),
            check=True,
            capture_output=True,
            env=dict(os.environ),
        )
        self.stack.callback(
            subprocess.run,
            [*as_pg, pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        subprocess.run(
            [*as_pg, pg_bin("createdb"), "-h", self.d.addr, "-p", str(PG_PORT)]
            + ["-U", "postgres", "refset"],
            check=True,
            capture_output=True,
        )

    def start_redis(self) -> None:
        home = self.home("d") / "redis"
        home.mkdir()
        argv = ["redis-server", "--bind", self.d.addr, "--port", str(REDIS_PORT)]
        argv += ["--dir", str(home), "--save", "", "--appendonly", "no", "--protected-mode", "no"]
        proc = self.popen("d", argv, dict(os.environ), "redis.log")
        self.stack.callback(stop_group, proc)
        _wait_tcp(self.d.addr, REDIS_PORT, 30, proc, "redis-server")

    def start_seaweed(self) -> None:
        home = self.home("d") / "weed"
        (home / "data").mkdir(parents=True)
        access, secret = f"refset{secrets.token_hex(6)}", secrets.token_hex(20)
        identity = {
            "name": "refset",
            "credentials": [{"accessKey": access, "secretKey": secret}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        (home / "s3.json").write_text(json.dumps({"identities": [identity]}))
        p = WEED_PORTS
        argv = [weed_binary(), "server", f"-dir={home / 'data'}", f"-ip={self.d.addr}"]
        argv += [f"-ip.bind={self.d.addr}", f"-master.port={p['master']}"]
        argv += ["-master.volumeSizeLimitMB=64", f"-volume.port={p['volume']}", "-volume.max=0"]
        argv += ["-filer", f"-filer.port={p['filer']}", "-s3", f"-s3.port={p['s3']}"]
        argv += [f"-s3.config={home / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        proc = self.popen("d", argv, dict(os.environ), "weed.log")
        self.stack.callback(stop_group, proc, 3)
        self.s3 = SeaweedHandle(
            endpoint_url=f"http://{self.d.addr}:{p['s3']}",
            bucket="refset",
            access_key=access,
            secret_key=secret,
            region=REGION,
            ports=dict(p),
            data_dir=home / "data",
            log_path=self.logs / "weed.log",
            process=proc,
        )
        wait_seaweed(self.s3, proc, 90)

    # ------------------------------------------------------------ RefSet processes
    def env_for(self, name: str, **extra: str) -> dict[str, str]:
        """The environment of a RefSet process on host `name` (web node or worker)."""
        home = self.home(name)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(home),
            "PYTHONDONTWRITEBYTECODE": "1",
            "DJANGO_SETTINGS_MODULE": "annotation_server.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_ALLOWED_HOSTS": ",".join(h.addr for h in self.hosts.values()),
            # Plain HTTP on a private LAN here; behind a TLS proxy in production.
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_SECURE_COOKIES": "0",
            "DJANGO_HSTS_SECONDS": "0",
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.broker_url,
            "REFSET_KEY_ENCRYPTION_KEY": self.fernet_key,
            "REFSET_CELERY_QUEUE": DEFAULT_QUEUE,
            "REFSET_INGEST_QUEUE": INGEST_QUEUE,
            "REFSET_QC_QUEUE": QC_QUEUE,
            "REFSET_EXPORT_QUEUE": EXPORT_QUEUE,
            "REFSET_JOB_LEASE_S": str(self.lease_s),
            "REFSET_VAR_DIR": str(home / "var"),
            "REFSET_MEDIA_ROOT": str(home / "media"),
            "REFSET_STORAGE_CACHE_DIR": str(home / "cache"),
            "REFSET_EXPORT_DIR": str(home / "exports"),
            "REFSET_ASSIST_MODEL_CACHE": str(home / "models"),
            "TMPDIR": str(home / "tmp"),
        }
        if self.s3 is not None:
            env.update(self.s3.environment())
        env.update(extra)
        return env

    def migrate(self) -> None:
        self.run(
            "w" if self.w else "d",
            [PY, "manage.py", "migrate", "--no-input", "-v", "0"],
            timeout=600,
        )

    def web_argv(self, host: str, workers: int = 2, threads: int = 4) -> list[str]:
        argv = [PY, "-m", "gunicorn", "annotation_server.wsgi:application"]
        argv += ["--bind", f"{self.hosts[host].addr}:{WEB_PORT}", "--workers", str(workers)]
        return argv + ["--worker-class", "gthread", "--threads", str(threads), "--timeout", "120"]

    def start_web(self, host: str = "w", workers: int = 2, threads: int = 4) -> subprocess.Popen:
        """gunicorn on `host` (w; d for the single-host layout of the bench)."""
        argv = self.web_argv(host, workers, threads)
        proc = self.popen(host, argv, self.env_for(host, REFSET_ROLE="web"), "web.log")
        self.stack.callback(stop_group, proc)
        self.web_url = f"http://{self.hosts[host].addr}:{WEB_PORT}"
        try:
            _wait_tcp(self.hosts[host].addr, WEB_PORT, 90, proc, "gunicorn")
        except ClusterError as exc:
            raise ClusterError(f"{exc}\n{self.log_tail('web.log')}") from exc
        return proc

    def worker_argv(self, name: str, queues: list[str], concurrency: int = 1) -> list[str]:
        argv = [PY, "-m", "celery", "-A", "annotation_server", "worker", "-Q", ",".join(queues)]
        argv += ["--hostname", f"{name}@{self.hosts[name].hostname}"]
        if concurrency == 1:
            argv += ["--pool", "solo"]
        else:
            argv += ["--pool", "prefork", "--concurrency", str(concurrency)]
        return argv + ["--without-gossip", "--without-mingle", "--loglevel", "WARNING"]

    def worker_env(self, name: str, queues: list[str], **extra: str) -> dict[str, str]:
        """A worker's environment: its role and queues (what /healthz and
        `manage.py healthcheck` report), one ingest process (the solo pool's)."""
        extra = {"REFSET_INGEST_WORKERS": "1", **extra}
        return self.env_for(
            name, REFSET_ROLE="worker", REFSET_WORKER_QUEUES=",".join(queues), **extra
        )

    def healthcheck(self, name: str, queues: list[str]) -> dict:
        """`manage.py healthcheck` on worker host `name` with its environment."""
        argv = [PY, "manage.py", "healthcheck"]
        return json.loads(self.run(name, argv, env=self.worker_env(name, queues)).stdout)

    def start_worker(
        self, name: str, queues: list[str], concurrency: int = 1, **extra: str
    ) -> subprocess.Popen:
        env = self.worker_env(name, queues, **extra)
        proc = self.popen(name, self.worker_argv(name, queues, concurrency), env, f"{name}.log")
        self.stack.callback(stop_group, proc)
        self.workers[name] = proc
        return proc

    def kill_worker(self, name: str) -> None:
        """SIGKILL to the worker's whole process group: no warm shutdown, no ack."""
        proc = self.workers[name]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

    # ------------------------------------------------------------ looking in
    def db(self):
        import psycopg

        return psycopg.connect(self.database_url, autocommit=True)

    def files_under(self, name: str, sub: str = "") -> list[Path]:
        root = self.home(name) / sub
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
