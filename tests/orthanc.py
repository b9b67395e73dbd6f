"""A throw-away Orthanc PACS for tests and benchmarks.

    with run_orthanc(tmp_path) as orthanc:
        orthanc.upload(path)                      # POST /instances
        PacsClient(orthanc.dicomweb_url).search_studies(PatientID="...")

Orthanc 1.10 has no bind-address option: its HTTP and DICOM ports listen on every
interface. So, when this process may create network namespaces (we run as root),
Orthanc runs inside a private namespace made here, ``refset-orth-XXXXXX``, which
holds only ``lo`` and one end of a veth pair. The other end stays on the host.
The pair gets a private /30 from 10.203.0.0/16, picked at random and checked against
the addresses already in use: host side ``10.203.A.B+1``, namespace side
``10.203.A.B+2``. The namespace has no default route and the host does not route
for it, so Orthanc can talk only to this host's end of the pair, and only this
host can reach Orthanc, at ``http://10.203.A.B+2:PORT``. Clients (the test process
itself) stay on the host and use ``handle.url`` / ``handle.dicomweb_url``.

If ``ip netns add`` is not permitted, Orthanc runs on the host instead, with
random high HTTP and DICOM ports and ``RemoteAccessAllowed: false``; it is
reachable at 127.0.0.1 (``handle.isolated`` is False and a warning says so).

DIMSE: Orthanc's AE title is ``handle.dicom_aet`` at ``handle.host:handle.dicom_port``;
``modalities`` lists the peers it knows (a DICOM listener on this host binds
``handle.peer_host`` to be reachable from inside the namespace).

Configuration: storage and index in ``tmpdir``, only the DICOMweb plugin loaded
(from /usr/share/orthanc/plugins), ``DicomWeb.Root = /dicom-web/``, no
authentication, ``HttpCompressionEnabled: false`` (with compression on, Orthanc
gzips every response to clients that accept it, which distorts timings).

On exit, also after a failure while starting, Orthanc is killed, the veth pair and
the namespace are deleted.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests import netns

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


class OrthancError(RuntimeError):
    """Orthanc could not be started."""


@dataclass
class OrthancHandle:
    url: str  # http://HOST:PORT (no trailing slash)
    dicomweb_url: str  # http://HOST:PORT/dicom-web
    host: str
    http_port: int
    dicom_port: int
    config: dict
    isolated: bool  # True: inside a private network namespace
    netns: str | None = None
    # This host's address as Orthanc sees it (the host end of the veth pair, or
    # 127.0.0.1): a DICOM listener here bound to it is reachable from Orthanc.
    peer_host: str = "127.0.0.1"
    dicom_aet: str = "REFSETTEST"
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.http_port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = self.connection()
        try:
            headers = {"Content-Type": "application/dicom"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def get_json(self, path: str):
        status, body = self.request("GET", path)
        if status != 200:
            raise OrthancError(f"GET {path}: HTTP {status}")
        return json.loads(body)

    def upload(self, data: bytes | str | os.PathLike) -> dict:
        """Store one DICOM file (bytes or a path) through POST /instances."""
        if not isinstance(data, bytes):
            data = Path(data).read_bytes()
        status, body = self.request("POST", "/instances", data)
        if status != 200:
            raise OrthancError(f"POST /instances: HTTP {status}: {body[:200]!r}")
        return json.loads(body)

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The namespace helpers live in tests/netns.py (shared with tests/multihost/).
_netns_usable = netns.netns_usable


def _make_netns(stack: ExitStack) -> tuple[str, str, str]:
    """Create the namespace and veth pair; return (namespace, Orthanc's address,
    the host end's address)."""
    try:
        return netns.veth_namespace(stack, "refset-orth", "ro")
    except netns.NetnsError as exc:
        raise OrthancError(str(exc)) from exc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def _wait_ready(handle: OrthancHandle, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OrthancError(
                f"Orthanc exited with status {proc.returncode} while starting:\n{handle.log_tail()}"
            )
        try:
            conn = http.client.HTTPConnection(handle.host, handle.http_port, timeout=2)
            conn.request("GET", "/system")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200 and body:
                return
            last = f"HTTP {resp.status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise OrthancError(
        f"Orthanc did not answer {handle.url}/system within {timeout:.0f}s ({last}):\n"
        f"{handle.log_tail()}"
    )


@contextmanager
def run_orthanc(
    tmpdir: str | os.PathLike,
    *,
    isolate: bool | None = None,
    timeout: float = 60.0,
    modalities: dict[str, tuple[str, int]] | None = None,
) -> Iterator[OrthancHandle]:
    """Start Orthanc with its data in ``tmpdir``; yield a handle; always stop it.

    ``isolate``: None picks a network namespace when permitted; True demands it.
    ``modalities``: DICOM peers Orthanc knows, AE title -> (host, port) (its
    DicomModalities: they may C-FIND/C-MOVE/C-GET, and C-MOVE may send to them).
    A host of None stands for ``handle.peer_host``, the address at which this
    host is reachable from Orthanc (known only once the namespace exists).
    """
    if not Path(ORTHANC).exists():
        raise OrthancError(f"Orthanc is not installed ({ORTHANC} missing)")
    if not Path(PLUGIN).exists():
        raise OrthancError(f"the Orthanc DICOMweb plugin is not installed ({PLUGIN} missing)")
    tmp = Path(tmpdir)
    (tmp / "storage").mkdir(parents=True, exist_ok=True)
    if isolate is None:
        isolate = _netns_usable()
    with ExitStack() as stack:
        if isolate:
            ns, host, peer_host = _make_netns(stack)
            # A fresh namespace has every port free; still avoid the well-known ones.
            http_port = 20000 + secrets.randbelow(20000)
            dicom_port = http_port + 1
        else:
            warnings.warn(
                "ip netns add is not permitted: Orthanc runs on the host, on random "
                "ports, with RemoteAccessAllowed false",
                stacklevel=3,
            )
            ns, host, peer_host = None, "127.0.0.1", "127.0.0.1"
            http_port, dicom_port = _free_port(), _free_port()
        config = {
            "Name": "RefSetTestPACS",
            "StorageDirectory": str(tmp / "storage"),
            "IndexDirectory": str(tmp / "storage"),
            "Plugins": [PLUGIN],
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "REFSETTEST",
            "RemoteAccessAllowed": bool(isolate),  # the host reaches it over the veth
            "AuthenticationEnabled": False,
            "HttpCompressionEnabled": False,
            "SaveJobs": False,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomModalities": {
                aet: [aet, peer_host if addr is None else addr, port]
                for aet, (addr, port) in (modalities or {}).items()
            },
        }
        config_path = tmp / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2))
        log_path = tmp / "orthanc.log"
        cmd = [ORTHANC, str(config_path)]
        if ns:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        stack.callback(_stop, proc)
        handle = OrthancHandle(
            url=f"http://{host}:{http_port}",
            dicomweb_url=f"http://{host}:{http_port}/dicom-web",
            host=host,
            http_port=http_port,
            dicom_port=dicom_port,
            config=config,
            isolated=bool(ns),
            netns=ns,
            peer_host=peer_host,
            log_path=log_path,
            process=proc,
        )
        _wait_ready(handle, proc, timeout)
        yield handle
