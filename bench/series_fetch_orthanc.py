"""Series fetch: our streamed series body vs Orthanc's WADO-RS, in one run.

    .venv/bin/python bench/series_fetch_orthanc.py [--slices 300] [--repeat 3]

On one synthetic chest CT (fixtures.generate_ct, 512x512, 16-bit, truth.json removed),
stored both in RefSet and in Orthanc 1.10 (tests/orthanc.py: DICOMweb plugin only,
HttpCompressionEnabled false, private network namespace reached over a veth pair):

  (a) ours: GET /api/v1/series/{id}/pixels/ through gunicorn (2 sync workers) on a free
      loopback port (temporary SQLite database, session cookie of the project's
      manager; set-up shared with bench/series_fetch.py; both workers warmed up with
      a few GETs of the series' JSON first): time until the first frame record is
      fully received, and time to the end of the body;
  (b) Orthanc WADO-RS frames, GET /dicom-web/studies/{s}/series/{se}/instances/{sop}/
      frames/1 (Accept: multipart/related; type="application/octet-stream") for every
      instance in slice order, over 1 keep-alive connection, then over 6 (one thread
      and one connection each, slices dealt round-robin): time until slice 1's frame is
      fully received, and time until all frames are;
  (c) Orthanc WADO-RS series retrieve, GET /dicom-web/studies/{s}/series/{se}
      (multipart/related; type="application/dicom"): time to the end of the body.

Orthanc's own UIDs (REST /series/{id}/instances) are used for (b) and (c). The client
is http.client throughout, without Accept-Encoding. Prints medians over --repeat runs
and the ratios Orthanc time / our time. Machines are shared and noisy: quote ratios.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from series_fetch import PASSWORD, USER, free_port, get  # noqa: E402

import fixtures  # noqa: E402
from tests.orthanc import run_orthanc  # noqa: E402

CONNECTIONS = 6
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"'
SERIES_ACCEPT = 'multipart/related; type="application/dicom"'

# As bench/series_fetch.py's SETUP, but indexes the files written by generate_ct.
SETUP = """
import django, pydicom
from pathlib import Path
django.setup()
from django.contrib.auth import get_user_model
from annotation_server.accounts.models import Role
from annotation_server.projects.models import LabelSchema, Project
from annotation_server.projects.services import grant_role
from annotation_server.imaging.services import index_datasets
user = get_user_model().objects.create_user({user!r}, password={password!r})
project = Project.objects.create(slug="bench", name="bench", modality="CT",
                                 label_schema=LabelSchema.objects.first())
grant_role(project, user, Role.MANAGER)
datasets = [pydicom.dcmread(f) for f in sorted(Path({folder!r}).glob("*.dcm"))]
series = index_datasets(project, datasets).series[0]
from django.test import Client
browser = Client()
browser.force_login(user)
print(browser.cookies["sessionid"].value)
print(series.pk, series.instances.count())
"""


def _sigterm(signum, frame):  # run the finally blocks (stop the servers) on SIGTERM too
    raise SystemExit(f"signal {signum}")


def start_ours(folder: Path, tmp: Path) -> tuple[subprocess.Popen, int, str, str, int]:
    """Index ``folder`` into a temporary database; start runserver; return its details."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        REFSET_VAR_DIR=str(tmp),
        REFSET_MEDIA_ROOT=str(tmp / "media"),
        DJANGO_SETTINGS_MODULE="annotation_server.settings",
        PYTHONPATH=str(ROOT),
    )
    py = sys.executable
    migrate = subprocess.run(
        [py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if migrate.returncode:
        raise SystemExit(f"migrate failed:\n{migrate.stdout}{migrate.stderr}")
    script = SETUP.format(user=USER, password=PASSWORD, folder=str(folder))
    out = subprocess.run(
        [py, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    lines = out.splitlines()
    session = lines[-2]
    series_id, count = lines[-1].split(" ")
    port = free_port()
    server = subprocess.Popen(
        [
            py,
            "-m",
            "gunicorn",
            "annotation_server.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "sync",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)
    except BaseException:
        stop(server)
        raise
    return server, port, session, series_id, int(count)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass


def upload_all(orthanc, files: list[Path], threads: int = 4) -> None:
    errors: list[BaseException] = []

    def worker(chunk: list[Path]) -> None:
        try:
            for f in chunk:
                orthanc.upload(f)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(files[i::threads],)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]


def orthanc_uids(orthanc) -> tuple[str, str, list[str]]:
    """(StudyInstanceUID, SeriesInstanceUID, SOP Instance UIDs in slice order)."""
    (series_id,) = orthanc.get_json("/series")
    series = orthanc.get_json(f"/series/{series_id}")
    study = orthanc.get_json(f"/studies/{series['ParentStudy']}")
    instances = orthanc.get_json(f"/series/{series_id}/instances")
    instances.sort(key=lambda i: int(i["MainDicomTags"].get("InstanceNumber", 0)))
    return (
        study["MainDicomTags"]["StudyInstanceUID"],
        series["MainDicomTags"]["SeriesInstanceUID"],
        [i["MainDicomTags"]["SOPInstanceUID"] for i in instances],
    )


def fetch(conn: http.client.HTTPConnection, path: str, accept: str) -> int:
    conn.request("GET", path, headers={"Accept": accept})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {resp.status}: {body[:200]!r}")
    return len(body)


def orthanc_frames(orthanc, paths: list[str], connections: int) -> tuple[float, float, int]:
    """Fetch every frame path; (s until paths[0] is received, s until all are, bytes)."""
    done: dict[int, float] = {}
    sizes: list[int] = []
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        conn = orthanc.connection(timeout=120)
        try:
            for i in range(k, len(paths), connections):
                sizes.append(fetch(conn, paths[i], FRAME_ACCEPT))
                done[i] = time.perf_counter()
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    end = time.perf_counter()
    if errors:
        raise errors[0]
    assert len(done) == len(paths), (len(done), len(paths))
    return done[0] - start, end - start, sum(sizes)


def warm_up(port: int, series_pk: str, auth: str, rounds: int = 3) -> None:
    """Let every gunicorn worker serve requests before anything is timed (Orthanc is
    warm from the uploads): concurrent connections, so the workers share them."""

    def one() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for _ in range(rounds):
                conn.request("GET", f"/api/v1/series/{series_pk}/", headers={"Cookie": auth})
                conn.getresponse().read()
        finally:
            conn.close()

    pool = [threading.Thread(target=one) for _ in range(6)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def orthanc_series(orthanc, path: str) -> tuple[float, int]:
    conn = orthanc.connection(timeout=300)
    try:
        start = time.perf_counter()
        size = fetch(conn, path, SERIES_ACCEPT)
        return time.perf_counter() - start, size
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    med = statistics.median
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "ours_cold_first",
            "ours_cold_all",
            "ours_first",
            "ours_all",
            "o1_first",
            "o1_all",
            "o6_first",
            "o6_all",
            "oseries_all",
        )
    }
    with tempfile.TemporaryDirectory(prefix="refset-bench-") as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.perf_counter()
        fixtures.generate_ct(tmp / "ct", slices=args.slices, seed=args.seed)
        (tmp / "ct" / "truth.json").unlink()
        files = sorted((tmp / "ct").glob("*.dcm"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"data: {len(files)} CT slices 512x512, {mb:.1f} MB of DICOM "
            f"(generated in {time.perf_counter() - t0:.1f} s)"
        )
        t0 = time.perf_counter()
        server, port, session, series_pk, count = start_ours(tmp / "ct", tmp / "var")
        try:
            assert count == len(files), (count, len(files))
            print(f"ours: indexed {count} slices, gunicorn up in {time.perf_counter() - t0:.1f} s")
            with run_orthanc(tmp / "orthanc") as orthanc:
                t0 = time.perf_counter()
                upload_all(orthanc, files)
                study_uid, series_uid, sops = orthanc_uids(orthanc)
                assert len(sops) == len(files), (len(sops), len(files))
                print(
                    f"Orthanc: {len(sops)} instances stored in {time.perf_counter() - t0:.1f} s, "
                    f"at {orthanc.url} ({'namespace + veth' if orthanc.isolated else 'host'})"
                )
                root = "/" + orthanc.dicomweb_url.split("/", 3)[3].strip("/")
                series_path = f"{root}/studies/{study_uid}/series/{series_uid}"
                frame_paths = [f"{series_path}/instances/{sop}/frames/1" for sop in sops]
                auth = f"sessionid={session}"
                sizes = {}
                warm_up(port, series_pk, auth)
                # the first fetch builds the stored stream (decoding every frame)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                try:
                    first, total, sizes["ours_cold"] = get(
                        conn, f"/api/v1/series/{series_pk}/pixels/", auth, first_chunk=True
                    )
                finally:
                    conn.close()
                times["ours_cold_first"] = [first] * args.repeat
                times["ours_cold_all"] = [total] * args.repeat
                for run in range(args.repeat):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                    try:
                        first, total, sizes["ours"] = get(
                            conn, f"/api/v1/series/{series_pk}/pixels/", auth, first_chunk=True
                        )
                    finally:
                        conn.close()
                    times["ours_first"].append(first)
                    times["ours_all"].append(total)
                    for n, key in ((1, "o1"), (CONNECTIONS, "o6")):
                        first, total, sizes[key] = orthanc_frames(orthanc, frame_paths, n)
                        times[f"{key}_first"].append(first)
                        times[f"{key}_all"].append(total)
                    total, sizes["oseries"] = orthanc_series(orthanc, series_path)
                    times["oseries_all"].append(total)
                    print(
                        f"run {run + 1}/{args.repeat}: "
                        + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in times.items())
                    )
                config = orthanc.config
        finally:
            stop(server)
    m = {k: med(v) for k, v in times.items()}
    n = len(files)
    print(
        f"\nmedian of {args.repeat} runs, {n} slices; Orthanc 1.10 + DICOMweb plugin, "
        f"HttpCompressionEnabled={config['HttpCompressionEnabled']} (compression off), "
        "no Accept-Encoding sent; client http.client keep-alive; ours: gunicorn "
        "(2 sync workers) on loopback, Orthanc: network namespace over a veth pair"
    )
    rows = [
        (
            "(a) ours: first fetch (builds the stream)",
            "ours_cold_first",
            "ours_cold_all",
            "ours_cold",
        ),
        ("(a) ours: series stream, 1 connection", "ours_first", "ours_all", "ours"),
        ("(b) Orthanc WADO-RS frames, 1 connection", "o1_first", "o1_all", "o1"),
        (f"(b) Orthanc WADO-RS frames, {CONNECTIONS} connections", "o6_first", "o6_all", "o6"),
        ("(c) Orthanc WADO-RS series retrieve (DICOM)", None, "oseries_all", "oseries"),
    ]
    for label, kf, ka, ks in rows:
        first = f"{m[kf] * 1000:7.1f} ms" if kf else "      -   "
        print(
            f"  {label:46s} first slice {first}, whole series {m[ka]:6.2f} s "
            f"({n / m[ka]:6.0f} slices/s, {sizes[ks] / 1e6:6.1f} MB)"
        )
    print("\nratios Orthanc time / our time (above 1: ours is faster)")
    for label, kf, ka, _ks in rows[2:]:
        first = f"first slice {m[kf] / m['ours_first']:6.2f}x, " if kf else " " * 21
        print(f"  {label:46s} {first}whole series {m[ka] / m['ours_all']:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
