"""RefSet on separate hosts (issue 19): four network namespaces on this machine.

    d:  PostgreSQL, Redis, SeaweedFS (S3), bound to d's address
    w:  the web node (gunicorn), DJANGO_DEBUG=0
    k1: a Celery worker on the ingest and qc queues
    k2: a Celery worker on the export and default queues

Each host sees only its own folder (tests/multihost/cluster.py hides the others'
under an empty read-only tmpfs) and the S3 bucket, so a file handed from one
process to another through a local disk would be missing where it is needed.
Everything is driven through w over HTTP with session logins, as browsers do: a
CT study and a radiograph are uploaded; k1 is killed (SIGKILL) in the middle of
the CT import and started again, and finishes it with nothing lost or doubled;
QC, assignment, two blind reads, the settle job, the series' pixels fetched as
the viewer fetches them, a frozen version exported and its zip downloaded and
verified. Every Job row must name the host its queue is served by.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from contextlib import ExitStack

import pytest

import fixtures
from annotation_server import registry
from annotation_server.imaging import pixels
from export.verify import verify
from tests.multihost.cluster import (
    DEFAULT_QUEUE,
    EXPORT_QUEUE,
    INGEST_QUEUE,
    PY,
    QC_QUEUE,
    Cluster,
    ClusterError,
)
from tests.multihost.flow import freeze_and_export, jobs, my_tasks, read_case, upload, wait_until
from tests.multihost.web import Browser
from tests.netns import netns_usable, why_not_usable

pytestmark = [
    pytest.mark.celery,
    pytest.mark.services,
    pytest.mark.xdist_group("multihost"),
    pytest.mark.timeout(420),
]

CT_SLICES = 24
K1_QUEUES = [INGEST_QUEUE, QC_QUEUE]
K2_QUEUES = [EXPORT_QUEUE, DEFAULT_QUEUE]
QUEUE_OF_SETTING = {
    "": DEFAULT_QUEUE,
    "REFSET_INGEST_QUEUE": INGEST_QUEUE,
    "REFSET_QC_QUEUE": QC_QUEUE,
    "REFSET_EXPORT_QUEUE": EXPORT_QUEUE,
}
HOST_OF_QUEUE = {
    INGEST_QUEUE: "refset-k1",
    QC_QUEUE: "refset-k1",
    EXPORT_QUEUE: "refset-k2",
    DEFAULT_QUEUE: "refset-k2",
}


def test_the_flow_across_four_hosts_with_a_worker_killed_mid_import(tmp_path):
    if not netns_usable():
        pytest.skip(f"needs network namespaces: {why_not_usable()}")
    started = time.monotonic()
    with ExitStack() as stack:
        cluster = Cluster(tmp_path, stack)
        cluster.start_data()
        cluster.migrate()
        seeded = cluster.run("w", [PY, "-m", "tests.multihost.seed"])
        seed = json.loads(seeded.stdout.splitlines()[-1])
        cluster.start_web()
        db = stack.enter_context(cluster.db())
        s3 = cluster.s3
        # k1 stops inside its first import (the test-only delay) so it can be killed there.
        k1 = cluster.start_worker(
            "k1",
            K1_QUEUES,
            REFSET_TEST_JOB_DELAY_S="300",
            REFSET_TEST_JOB_DELAY_AT="imaging.import=2",
        )
        k2 = cluster.start_worker("k2", K2_QUEUES)
        password = seed["password"]
        manager = Browser(cluster.web_url).login("manager", password)
        health = manager.json("get", "/healthz", 200)
        assert health["ok"] and health["checks"]["storage"]["detail"].startswith("S3Storage")
        assert health["role"]["name"] == "web" and health["role"]["host"] == "refset-w"
        worker_health = cluster.healthcheck("k2", K2_QUEUES)
        assert worker_health["ok"], worker_health
        assert worker_health["role"]["host"] == "refset-k2"
        assert worker_health["role"]["queues"] == K2_QUEUES

        # A short synthetic series: the chest-CT profile's 100-slice minimum lowered.
        manager.json(
            "put", "/api/v1/projects/lung/qc-profile/", 200, json={"profile": {"min_slices": 20}}
        )

        # ---------------------------------------------------- the CT import, k1 killed
        fixtures.generate_ct(tmp_path / "ct", slices=CT_SLICES, seed=19, matrix=64)
        ct_job = upload(manager, "lung", tmp_path / "ct")
        log = wait_until(
            lambda: next(
                (j["log"] for j in jobs(db) if j["id"] == ct_job and "test delay" in j["log"]),
                "",
            ),
            "k1 to reach the import's delay point",
            120,
            k1,
            k2,
        )
        assert "test delay" in log
        cluster.kill_worker("k1")
        [row] = [j for j in jobs(db) if j["id"] == ct_job]
        assert row["state"] == "running" and row["worker"].startswith("refset-k1:"), row
        first_owner = row["worker"]
        # Killed mid-import: some slices may be in the bucket already, not all.
        partial = s3.keys("instances/")
        assert len(partial) < CT_SLICES, len(partial)
        k1 = cluster.start_worker("k1", K1_QUEUES)  # the same host, started again
        done = manager.wait_job(ct_job, timeout=180)
        assert done["result"]["summary"]["imported"] == CT_SLICES, done["result"]
        [row] = [j for j in jobs(db) if j["id"] == ct_job]
        assert row["attempts"] == 2 and "stopped during attempt 1" in row["log"], row["log"]
        assert row["worker"].startswith("refset-k1:") and row["worker"] != first_owner

        # ---------------------------------------------------- the radiograph
        fixtures.generate_xr(tmp_path / "xr", seed=19, modality="CR")
        xr_job = manager.wait_job(upload(manager, "chest", tmp_path / "xr"), timeout=120)
        assert xr_job["result"]["summary"]["imported"] == 1, xr_job["result"]

        # Follow-up jobs (series streams, QC) run on k1 too; wait for all of them.
        wait_until(
            lambda: all(j["finished_at"] for j in jobs(db)), "the follow-up jobs", 180, k1, k2
        )
        kinds = {j["kind"] for j in jobs(db)}
        assert {"qc.check_cases", "imaging.build_series_streams"} <= kinds, kinds

        # Nothing lost, nothing doubled: one row per slice, one object per row.
        instances = db.execute(
            "SELECT i.file, s.modality FROM imaging_instance i "
            "JOIN imaging_series s ON s.id = i.series_id"
        ).fetchall()
        by_modality = {}
        for _file, modality in instances:
            by_modality[modality] = by_modality.get(modality, 0) + 1
        assert by_modality == {"CT": CT_SLICES, "CR": 1}, by_modality
        files = sorted(f for f, _ in instances)
        assert len(set(files)) == len(files)
        assert s3.keys("instances/") == files, "bucket objects and instance rows differ"
        assert set(partial) <= set(files), "the re-run stored a slice again under a new key"
        assert s3.keys("uploads/") == []

        # ---------------------------------------------------- QC, assignment, reads
        [case] = manager.json("get", "/api/v1/cases/?project=lung", 200)["results"]
        reports = db.execute("SELECT status, results FROM projects_qcreport").fetchall()
        assert case["qc_status"] in ("pass", "warn"), reports
        assign = manager.json("post", "/api/v1/projects/lung/assignments/run/", 202)
        manager.wait_job(assign["id"])
        task_ids = {}
        for name in ("reader_a", "reader_b"):
            reader = Browser(cluster.web_url).login(name, password)
            tasks = my_tasks(reader)
            [task] = [t for t in tasks if t["case"] == case["id"]]
            task_ids[name] = task["id"]
            if name == "reader_a":
                # The viewer's pixels: the page names the series stream, the
                # script fetches it with the pixels media type.
                url = reader.meta(f"/read/{task['id']}/", "refset-series-pixels")
                answer = reader.get(url, headers={"Accept": pixels.MEDIA_TYPE})
                assert answer.status_code == 200, answer.text[:300]
                records = list(pixels.iter_records(answer.content))
                assert len(records) == CT_SLICES
                assert records[0][1].shape == (64, 64)
            read_case(reader, task["id"])
        # The second submitted read queues the settle job (default queue: k2).
        wait_until(
            lambda: any(j["kind"] == "adjudication.settle" and j["finished_at"] for j in jobs(db)),
            "the settle job",
            120,
            k1,
            k2,
        )
        settled = manager.json("get", f"/api/v1/cases/{case['id']}/", 200)
        assert settled["state"] == "adjudicated", settled

        # ---------------------------------------------------- freeze, export, download
        export = {"id": freeze_and_export(manager, "lung", "1.0.0")}
        manager.wait_job(export["id"], timeout=180)
        link = f"/projects/lung/versions/1.0.0/exports/{export['id']}/download/"
        assert link in manager.get("/projects/lung/versions/1.0.0/").text
        zipped = manager.get(link)
        assert zipped.status_code == 200, zipped.text[:300]
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
            archive.extractall(tmp_path / "package")
        [root] = list((tmp_path / "package").iterdir())
        assert verify(root) == []

        # ---------------------------------------------------- where each job ran
        rows = jobs(db)
        for job in rows:
            queue = QUEUE_OF_SETTING[registry.JOB_QUEUES[job["kind"]]]
            assert job["state"] == "succeeded", job
            host = job["worker"].split(":", 1)[0]
            assert host == HOST_OF_QUEUE[queue], (job["kind"], queue, job["worker"])
        ran = {(j["kind"], j["worker"].split(":", 1)[0]) for j in rows}
        assert {
            ("imaging.import", "refset-k1"),
            ("qc.check_cases", "refset-k1"),
            ("projects.assign", "refset-k2"),
            ("adjudication.settle", "refset-k2"),
            ("datasets.export", "refset-k2"),
        } <= ran, ran

        # ---------------------------------------------------- nothing on a local disk
        # The zip the web node served is the object the export job stored (w cannot
        # see k2's folder at all); no host kept a file in its media folder or its
        # temporary folder, and the web node wrote no package.
        done_export = manager.json("get", f"/api/v1/jobs/{export['id']}/", 200)
        assert zipped.content == s3.get(done_export["result"]["zip_key"])
        for name in ("w", "k1", "k2"):
            for sub in ("media", "tmp"):
                left = cluster.files_under(name, sub)
                assert left == [], f"{name} kept files in its {sub}: {left[:5]}"
        assert cluster.files_under("w", "exports") == []
        # And no host could have read another's: k1's folder holds its cache, and
        # seen from k2 it is empty and read-only.
        assert cluster.files_under("k1", "cache")
        seen = cluster.run("k2", ["find", str(cluster.home("k1")), "-type", "f"]).stdout
        assert seen.strip() == "", seen[:500]
        probe = cluster.home("k1") / "probe"
        with pytest.raises(ClusterError, match="Read-only"):
            cluster.run("k2", ["touch", str(probe)])
        # The web node's cache holds only what it served (the stream), no instance.
        cached = {p.name for p in cluster.files_under("w", "cache")}
        assert not cached & {f.rsplit("/", 1)[-1] for f in files}
        assert k1.poll() is None and k2.poll() is None
    assert time.monotonic() - started < 400
