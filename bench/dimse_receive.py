"""Receiving a CT over C-STORE: RefSet's DICOM listener vs Orthanc's own DIMSE port.

    .venv/bin/python bench/dimse_receive.py [--slices 300] [--repeat 3]

One synthetic chest CT (fixtures.generate_ct, 512x512, 16-bit; 60 slices by
default, --slices 300 for the full series) is sent with dcmtk's ``storescu``
(one association, the same command line for both) to:

  (a) Orthanc 1.10 (Debian), a fresh one per run, in its private network
      namespace (tests/orthanc.py), DICOMweb plugin only; it stores and indexes
      each instance before it answers the C-STORE;
  (b) RefSet's listener (annotation_server/imaging/dimse/listener.py), in this
      process on loopback, a fresh project per run with a DicomRoute for the
      sender, a temporary SQLite database and media folder. It answers each
      C-STORE once the object passed the ingest validator and is spooled, and
      imports the association (de-identify, burned-in text check, store, index,
      case) when it ends, serially (a process with pynetdicom's threads is never
      forked into the ingest pool); without the follow-up jobs (stream pre-build,
      QC), as bench/ingest.py.

Printed per target, median over --repeat runs: the time until storescu exits
(every object acknowledged) and, for RefSet, the time until the association's
import job has finished (stored, de-identified and indexed: what Orthanc's
figure includes). Ratios RefSet / Orthanc for both. Shared, noisy machines:
quote the ratios, and note that Orthanc is reached over a veth pair and RefSet
over loopback.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fixtures  # noqa: E402
from bench.ingest import setup_django  # noqa: E402
from tests.orthanc import run_orthanc  # noqa: E402

STORESCU = shutil.which("storescu") or "/usr/bin/storescu"
CALLING = "BENCHSCU"


def storescu(files: list[Path], host: str, port: int, called: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        [STORESCU, "-aet", CALLING, "-aec", called, host, str(port), *map(str, files)],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"storescu to {called}@{host}:{port} failed:\n{done.stderr[-2000:]}")
    return elapsed


def bench_orthanc(files: list[Path], tmp: Path) -> float:
    with run_orthanc(tmp) as orthanc:
        elapsed = storescu(files, orthanc.host, orthanc.dicom_port, orthanc.dicom_aet)
        stored = len(orthanc.get_json("/instances"))
    if stored != len(files):
        raise SystemExit(f"Orthanc stored {stored} of {len(files)} instances")
    return elapsed


def bench_refset(files: list[Path], n: int) -> tuple[float, float]:
    from annotation_server.imaging.dimse.listener import Listener, ListenerConfig
    from annotation_server.imaging.models import DicomRoute
    from annotation_server.jobs.models import Job
    from tests.factories import ProjectFactory

    project = ProjectFactory(slug=f"bench-dimse-{n}", name=f"Bench DIMSE {n}")
    DicomRoute.objects.filter(calling_ae_title=CALLING).update(active=False)  # earlier runs
    DicomRoute.objects.create(project=project, calling_ae_title=CALLING, allowed_host="127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ListenerConfig(ae_title="REFSET", port=port, bind="127.0.0.1")
    listener = Listener(config, follow_up=False)
    listener.start()
    try:
        t0 = time.perf_counter()
        received = storescu(files, "127.0.0.1", port, "REFSET")
        while True:
            job = Job.objects.filter(project=project, params__source="dimse").first()
            if job is not None and job.finished:
                break
            time.sleep(0.02)
        imported = time.perf_counter() - t0
    finally:
        listener.stop()
    summary = job.result.get("summary", {})
    if job.state != Job.State.SUCCEEDED or summary.get("imported") != len(files):
        raise SystemExit(f"RefSet import: {job.state} {summary} {job.error[:500]}")
    return received, imported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=60, help="CT slices (300: the full series)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="refset-bench-dimse-") as tmpdir:
        tmp = Path(tmpdir)
        setup_django(tmp / "var")
        fixtures.generate_ct(tmp / "ct", slices=args.slices, seed=7)
        files = sorted((tmp / "ct").glob("*.dcm"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} CT slices, {mb:.0f} MB, storescu, {args.repeat} run(s) each")
        orthanc, received, imported = [], [], []
        for n in range(args.repeat):
            orthanc.append(bench_orthanc(files, tmp / f"orthanc-{n}"))
            r, i = bench_refset(files, n)
            received.append(r)
            imported.append(i)
        o, r, i = (statistics.median(x) for x in (orthanc, received, imported))
        count = len(files)
        print(f"Orthanc C-STORE (stored+indexed)      {o:7.2f} s  {count / o:7.1f} files/s")
        print(f"RefSet  C-STORE acknowledged          {r:7.2f} s  {count / r:7.1f} files/s")
        print(f"RefSet  C-STORE + import finished     {i:7.2f} s  {count / i:7.1f} files/s")
        print(f"ratio RefSet/Orthanc time: acknowledged {r / o:.2f}x, imported {i / o:.2f}x")


if __name__ == "__main__":
    main()
