"""How fast our ingest is, against pydicom I/O and Orthanc's REST ingest, in one run.

    .venv/bin/python bench/ingest.py [--slices 300] [--repeat 3]

On a synthetic chest CT (``python -m fixtures ct --slices 300``, 512x512, 16-bit):

  (a) pydicom read + write of the same files: the practical limit for anything
      that parses and rewrites DICOM in Python;
  (b) Orthanc 1.10 REST ingest (POST /instances) with 1 and 4 client threads over
      http.client, a fresh Orthanc (DICOMweb plugin only, HttpCompressionEnabled
      false) for each run, in a private network namespace (tests/orthanc.py);
  (c) our ingest(): validate, de-identify, store, index, against a
      temporary SQLite database and media folder (fresh project per run), without
      the follow-up jobs (the series pixel stream pre-build and image QC, which
      run on workers after the import; bench/qc_vs_ingest.py times QC); twice:
      serially (1 process) and with its pool of worker processes (--workers);
  (d) our pull(): WADO-RS retrieve of the study from Orthanc + ingest().

Prints the median over --repeat runs in files/s and MB/s, the ratios
ours / pydicom and ours / Orthanc, and CPU time per file of (a) and (c) (wall
time counts other people's load; CPU time much less). Machines are shared and
noisy: quote ratios.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pydicom  # noqa: E402

import fixtures  # noqa: E402
from tests.orthanc import run_orthanc  # noqa: E402


def setup_django(var_dir: Path) -> None:
    for name in ("DATABASE_URL", "REFSET_MEDIA_ROOT"):
        os.environ.pop(name, None)
    os.environ["REFSET_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "annotation_server.settings"
    os.environ.setdefault(
        "REFSET_KEY_ENCRYPTION_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode()
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def new_project(n: int):
    from tests.factories import ProjectFactory

    return ProjectFactory(slug=f"bench-{n}", name=f"Bench {n}")


# CPU seconds per run: the process, plus its worker processes for ours
CPU: dict[str, list[float]] = {"pydicom": [], "ours1": [], "ours": []}
WORKERS: dict[str, int] = {}  # worker processes each of our variants used


def bench_pydicom(files: list[Path], out: Path) -> float:
    t0, c0 = time.perf_counter(), time.process_time()
    for f in files:
        pydicom.dcmread(f).save_as(out / f.name)
    CPU["pydicom"].append(time.process_time() - c0)
    return time.perf_counter() - t0


def post_all(host: str, port: int, blobs: list[bytes], threads: int) -> float:
    errors: list[str] = []

    def worker(chunk: list[bytes]) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        for data in chunk:
            conn.request(
                "POST", "/instances", body=data, headers={"Content-Type": "application/dicom"}
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(f"HTTP {resp.status}")
        conn.close()

    chunks = [blobs[i::threads] for i in range(threads)]
    pool = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"Orthanc refused {len(errors)} files: {errors[:3]}")
    return elapsed


def bench_orthanc(blobs: list[bytes], threads: int, tmp: Path) -> tuple[float, dict]:
    with run_orthanc(tmp) as orthanc:
        elapsed = post_all(orthanc.host, orthanc.http_port, blobs, threads)
        count = len(orthanc.get_json("/instances"))
        assert count == len(blobs), f"Orthanc holds {count} of {len(blobs)} instances"
        return elapsed, orthanc.config


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_ours(folder: Path, n: int, workers: int | None, label: str) -> float:
    from annotation_server.imaging.ingest.pipeline import ingest
    from annotation_server.imaging.ingest.sources import Limits, from_paths

    project = new_project(n)
    t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    report = ingest(
        project,
        from_paths([folder], Limits()),
        source="bench",
        prebuild_streams=False,
        run_qc=False,
        workers=workers,
    )
    elapsed = time.perf_counter() - t0
    CPU[label].append(time.process_time() - c0 + _children_cpu() - k0)
    WORKERS[label] = report.workers
    s = report.summary()
    assert s["rejected"] == 0 and s["imported"] > 0, s
    return elapsed


def bench_pull(blobs: list[bytes], study_uid: str, n: int, tmp: Path) -> float:
    from annotation_server.imaging.pacs import PacsClient, pull

    with run_orthanc(tmp) as orthanc:
        post_all(orthanc.host, orthanc.http_port, blobs, 4)
        project = new_project(n)
        t0 = time.perf_counter()
        report = pull(
            project,
            PacsClient(orthanc.dicomweb_url),
            [study_uid],
            prebuild_streams=False,
            run_qc=False,
        )
        elapsed = time.perf_counter() - t0
    s = report.summary()
    assert s["imported"] == len(blobs), s
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="ingest worker processes (default: the REFSET_INGEST_WORKERS setting, "
        "else one per CPU); a serial run (1) is always measured alongside",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="refset-bench-") as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.perf_counter()
        truth = fixtures.generate_ct(tmp / "ct", slices=args.slices, seed=0)
        (tmp / "ct" / "truth.json").unlink()
        files = sorted((tmp / "ct").glob("*.dcm"))
        blobs = [f.read_bytes() for f in files]
        mb = sum(len(b) for b in blobs) / 1e6
        print(
            f"data: {len(files)} CT slices 512x512, {mb:.1f} MB "
            f"(generated in {time.perf_counter() - t0:.1f} s)"
        )
        setup_django(tmp / "var")
        times: dict[str, list[float]] = {
            k: [] for k in ("pydicom", "orthanc1", "orthanc4", "ours1", "ours", "pull")
        }
        config = {}
        for i in range(args.repeat):
            out = tmp / f"copy{i}"
            out.mkdir()
            times["pydicom"].append(bench_pydicom(files, out))
            for threads in (1, 4):
                elapsed, config = bench_orthanc(blobs, threads, tmp / f"orthanc{i}-{threads}")
                times[f"orthanc{threads}"].append(elapsed)
            times["ours1"].append(bench_ours(tmp / "ct", 200 + i, 1, "ours1"))
            times["ours"].append(bench_ours(tmp / "ct", i, args.workers, "ours"))
            times["pull"].append(
                bench_pull(blobs, truth["study_instance_uid"], 100 + i, tmp / f"pull{i}")
            )
            print(
                f"run {i + 1}/{args.repeat}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            )
        print(
            "Orthanc "
            + ", ".join(
                f"{k}={config[k]}"
                for k in ("HttpCompressionEnabled", "Plugins", "DicomWeb", "AuthenticationEnabled")
            )
            + "; storage compression off (default), SQLite index, namespace + veth, "
            "client http.client keep-alive"
        )
        labels = {
            "pydicom": "(a) pydicom read+write",
            "orthanc1": "(b) Orthanc POST /instances, 1 thread",
            "orthanc4": "(b) Orthanc POST /instances, 4 threads",
            "ours1": "(c) our ingest(), serial (1 process)",
            "ours": f"(c) our ingest(), {WORKERS['ours']} worker processes",
            "pull": "(d) our pull() from Orthanc (WADO-RS + ingest)",
        }
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\nmedian of {args.repeat} runs, {len(files)} files, {mb:.1f} MB")
        for k, label in labels.items():
            print(f"  {label:50s} {len(files) / med[k]:7.1f} files/s {mb / med[k]:7.1f} MB/s")
        rate = {k: len(files) / v for k, v in med.items()}
        print(
            f"\nratios (throughput), ours with {WORKERS['ours']} worker processes: "
            f"ours/pydicom {rate['ours'] / rate['pydicom']:.2f}, "
            f"ours/Orthanc-1 {rate['ours'] / rate['orthanc1']:.2f}, "
            f"ours/Orthanc-4 {rate['ours'] / rate['orthanc4']:.2f}, "
            f"ours/ours-serial {rate['ours'] / rate['ours1']:.2f}, "
            f"pull/Orthanc-1 {rate['pull'] / rate['orthanc1']:.2f}\n"
            f"serial (1 process): ours/pydicom {rate['ours1'] / rate['pydicom']:.2f}, "
            f"ours/Orthanc-1 {rate['ours1'] / rate['orthanc1']:.2f}, "
            f"ours/Orthanc-4 {rate['ours1'] / rate['orthanc4']:.2f}"
        )
        cpu = {k: statistics.median(v) * 1000 / len(files) for k, v in CPU.items()}
        print(
            f"CPU per file (the process, all threads, and for ours its worker processes; "
            f"less sensitive to the machine's load than wall time): pydicom "
            f"{cpu['pydicom']:.2f} ms, ours serial {cpu['ours1']:.2f} ms, ours with "
            f"{WORKERS['ours']} workers {cpu['ours']:.2f} ms; "
            f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )


if __name__ == "__main__":
    main()
