"""Write-back latency of one case's reference (DICOM SEG + TID 1500 SR) to a PACS,
by STOW-RS and by C-STORE, against a plain send of the same two files.

    .venv/bin/python bench/writeback.py [--slices 60] [--repeat 5]

Set-up (not timed): a synthetic CT (fixtures.generate_ct, 512x512, --slices) is
imported (de-identified) into a fresh project in a temporary SQLite database,
three readers mark one nodule, the case is settled, and Orthanc 1.10 (Debian) is
started in its private network namespace (tests/orthanc.py), knowing RefSet's AE
title so it answers its C-FIND. The destination is a research archive (the
objects go de-identified, as stored).

Timed, per transport, median over --repeat runs, with the two objects removed
from Orthanc before each run so every run really stores them:

  build     outbox.services.queue_case_reference: snapshot the case, build the
            SEG and SR with the export's builders, store them, make the rows
            (the delivery jobs are held back and run apart, below);
  outbox    outbox.services.deliver of both items, as the delivery job runs it:
            a query (is it there already?), the send, a confirming query, the
            row updates and the audit record;
  plain     the same two files, sent by dcmtk's `storescu` (one association,
            C-STORE) or by two bare STOW-RS POSTs over http.client: the anchor,
            doing the sending without the outbox's queries and bookkeeping.

Ratios outbox / plain are what to quote (shared machines: absolute times move up
to 2x between runs).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fixtures  # noqa: E402
from bench.ingest import setup_django  # noqa: E402
from tests.orthanc import run_orthanc  # noqa: E402

STORESCU = shutil.which("storescu") or "/usr/bin/storescu"


def settled_case(folder: Path):
    from annotation_server.accounts.models import Role
    from annotation_server.adjudication import services as adjudication
    from annotation_server.imaging.ingest.pipeline import ingest
    from annotation_server.imaging.ingest.sources import Limits, from_paths
    from annotation_server.projects.models import Case
    from annotation_server.projects.services import grant_role
    from tests import factories
    from tests.adjudication.conftest import add_finding, ellipse, submit_all

    project = factories.ProjectFactory(slug="bench-writeback", name="Bench write-back")
    protocol = project.protocol
    protocol.auto_accept_min_readers = 3
    protocol.drop_below_readers = 1
    protocol.match_rule = "centre_distance"
    protocol.match_threshold = 5.0
    protocol.save()
    manager = factories.UserFactory(username="bench-manager")
    grant_role(project, manager, Role.MANAGER)
    readers = [factories.UserFactory(username=f"bench-reader-{i}") for i in range(3)]
    report = ingest(project, from_paths([folder], Limits()), source="bench", prebuild_streams=False)
    if report.summary()["imported"] == 0:
        raise SystemExit(f"nothing imported: {report.files[:3]}")
    case = Case.objects.get(project=project)
    Case.objects.filter(pk=case.pk).update(state=Case.State.READING)
    tasks = {f"r{i}": factories.TaskFactory(case=case, reader=r) for i, r in enumerate(readers)}
    middle = max(1, case.series.num_instances // 2)
    for i, task in enumerate(tasks.values()):
        add_finding(task, ellipse(250 + i, 250, [middle - 1, middle, middle + 1], radius=20.0))
    submit_all(tasks, {n: {"nodules_present": True, "image_quality": 3} for n in tasks})
    adjudication.settle_case(case.pk)
    case.refresh_from_db()
    return project, case, manager


def remove(orthanc, sop_uids: list[str]) -> None:
    for uid in sop_uids:
        status, body = orthanc.request("POST", "/tools/lookup", uid.encode())
        for row in json.loads(body) if status == 200 else []:
            if row["Type"] == "Instance":
                orthanc.request("DELETE", f"/instances/{row['ID']}")


def stow_plain(orthanc, blobs: list[bytes]) -> float:
    t0 = time.perf_counter()
    for data in blobs:
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        conn = http.client.HTTPConnection(orthanc.host, orthanc.http_port, timeout=60)
        conn.request(
            "POST",
            "/dicom-web/studies",
            body=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": "application/dicom+json",
            },
        )
        answer = conn.getresponse()
        answer.read()
        conn.close()
        if answer.status != 200:
            raise SystemExit(f"plain STOW-RS answered HTTP {answer.status}")
    return time.perf_counter() - t0


def storescu_plain(orthanc, paths: list[Path]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        [STORESCU, "-R", "-aet", "REFSET", "-aec", orthanc.dicom_aet, orthanc.host,
         str(orthanc.dicom_port), *map(str, paths)],
        capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"storescu failed:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="refset-bench-writeback-") as tmpdir:
        tmp = Path(tmpdir)
        setup_django(tmp / "var")
        from django.conf import settings
        from django.core.files.storage import default_storage

        from annotation_server.jobs import services as jobs
        from annotation_server.outbox import services
        from annotation_server.outbox.models import Destination, OutboxItem

        fixtures.generate_ct(tmp / "ct", slices=args.slices, seed=7)
        project, case, manager = settled_case(tmp / "ct")
        jobs.dispatch = lambda job_id, kind: None  # the delivery runs apart, timed below
        results: dict[str, dict[str, list[float]]] = {}
        with run_orthanc(tmp / "orthanc", modalities={"REFSET": (None, 11112)}) as orthanc:
            settings.REFSET_PACS_ALLOWED_HOSTS = [orthanc.host]
            settings.REFSET_DICOM_AE_TITLE = "REFSET"
            from annotation_server.imaging.models import PacsConnection

            connections = {
                "STOW-RS": PacsConnection.objects.create(
                    project=project, name="stow", base_url=orthanc.dicomweb_url
                ),
                "C-STORE": PacsConnection.objects.create(
                    project=project,
                    name="dimse",
                    transport="dimse",
                    ae_title=orthanc.dicom_aet,
                    host=orthanc.host,
                    port=orthanc.dicom_port,
                ),  # fmt: skip
            }
            for transport, connection in connections.items():
                dest = Destination.objects.create(
                    project=project, name=transport, kind="research", connection=connection
                )
                times = results[transport] = {"build": [], "outbox": [], "plain": []}
                for _ in range(args.repeat):
                    OutboxItem.objects.filter(destination=dest).delete()
                    t0 = time.perf_counter()
                    items = services.queue_case_reference(case, dest, manager)
                    times["build"].append(time.perf_counter() - t0)
                    uids = [i.sop_instance_uid for i in items]
                    remove(orthanc, uids)
                    t0 = time.perf_counter()
                    for item in items:
                        done = services.deliver(item.pk)
                        if done["status"] != "delivered" or done["attempts"] != 1:
                            raise SystemExit(f"{transport}: {done}")
                    times["outbox"].append(time.perf_counter() - t0)
                    remove(orthanc, uids)
                    paths = [Path(default_storage.path(i.object_key)) for i in items]
                    if transport == "STOW-RS":
                        times["plain"].append(stow_plain(orthanc, [p.read_bytes() for p in paths]))
                    else:
                        times["plain"].append(storescu_plain(orthanc, paths))
                    stored = orthanc.get_json("/statistics")["CountInstances"]
                    if stored != 2:
                        raise SystemExit(f"Orthanc holds {stored} instances, 2 expected")
                    remove(orthanc, uids)
        sizes = [i.size_bytes for i in OutboxItem.objects.order_by("pk")[:2]]
        print(
            f"one case's reference: SEG + SR of a {args.slices}-slice 512x512 CT "
            f"({sizes[0] / 1024:.0f} + {sizes[1] / 1024:.0f} KiB), median of {args.repeat} runs"
        )
        head = ("transport", "build s", "outbox s", "plain s", "outbox/plain")
        print(f"{head[0]:10} {head[1]:>8} {head[2]:>9} {head[3]:>8} {head[4]:>13}")
        for transport, times in results.items():
            build, outbox, plain = (
                statistics.median(times[k]) for k in ("build", "outbox", "plain")
            )
            print(f"{transport:10} {build:8.3f} {outbox:9.3f} {plain:8.3f} {outbox / plain:12.2f}x")
        print(
            "outbox: query + send + confirming query + row updates per object; plain: storescu "
            "(-R: the files' own contexts; one association, process start included) "
            "or two bare STOW-RS POSTs"
        )


if __name__ == "__main__":
    main()
