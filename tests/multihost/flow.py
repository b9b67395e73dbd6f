"""Steps of the RefSet flow through a web host, shared by the multi-host test and
bench/multihost.py: uploads, reads as the workstation makes them, and the Job
rows read straight from the database host."""

from __future__ import annotations

import time
from pathlib import Path

from tests.multihost.web import Browser


def wait_until(check, what: str, timeout: float, *procs):
    """Poll `check` until it returns something true; fail when a process in
    `procs` (the workers) exits meanwhile or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for proc in procs:
            assert proc.poll() is None, f"a worker exited (rc {proc.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.25)


JOB_COLUMNS = ("id", "kind", "state", "worker", "attempts", "log", "result")
JOB_COLUMNS += ("started_at", "finished_at")


def jobs(db) -> list[dict]:
    """Every Job row, oldest first, as dicts (JOB_COLUMNS)."""
    rows = db.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs_job ORDER BY id").fetchall()
    return [dict(zip(JOB_COLUMNS, row, strict=True)) for row in rows]


def upload(browser: Browser, slug: str, folder: Path) -> int:
    """POST every .dcm of `folder` to the project's import API; the job's id."""
    files = [
        ("files", (p.name, p.read_bytes(), "application/dicom"))
        for p in sorted(Path(folder).glob("*.dcm"))
    ]
    job = browser.json("post", f"/api/v1/projects/{slug}/imports/", 202, files=files)
    return job["id"]


def read_case(browser: Browser, task_id: int) -> None:
    """What the workstation does: start, save the case labels, submit."""
    browser.json("post", f"/api/v1/reading-tasks/{task_id}/start/", 200)
    label = browser.json("get", f"/api/v1/reading-tasks/{task_id}/case-label/", 200)
    values = {"nodules_present": False, "image_quality": 3}
    browser.json(
        "put",
        f"/api/v1/reading-tasks/{task_id}/case-label/",
        200,
        json={"values": values, "version": label["version"]},
    )
    version = browser.json("get", f"/api/v1/reading-tasks/{task_id}/", 200)["version"]
    done = browser.json(
        "post", f"/api/v1/reading-tasks/{task_id}/submit/", 200, json={"version": version}
    )
    assert done["state"] == "submitted", done


def my_tasks(browser: Browser) -> list[dict]:
    """The signed-in reader's reading tasks (every page)."""
    out, url = [], "/api/v1/reading-tasks/?limit=500"
    while url:
        page = browser.json("get", url, 200)
        out.extend(page["results"])
        url = page.get("next")
    return out


def freeze_and_export(manager: Browser, slug: str, version: str) -> int:
    """Draft a version of every adjudicated case (all in train), freeze it, and
    start its NIFDC export from the version page's form; the export job's id."""
    made = manager.json(
        "post",
        "/api/v1/dataset-versions/",
        201,
        json={
            "project": slug,
            "version": version,
            "all_adjudicated": True,
            "seed": 3,
            "ratios": {"train": 1.0, "validation": 0.0, "test": 0.0},
        },
    )
    manager.json(
        "post", f"/api/v1/dataset-versions/{made['id']}/freeze/", 200, json={"confirm": version}
    )
    started = manager.form(f"/projects/{slug}/versions/{version}/export/", {"format": "nifdc"})
    assert started.status_code == 302, started.text[:500]
    listed = manager.json("get", "/api/v1/jobs/?kind=datasets.export", 200)["results"]
    return max(job["id"] for job in listed)
