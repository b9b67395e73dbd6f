"""The project-level registries: every job kind and every cross-app hook.

Apps sit in layers (see the import contract in pyproject.toml): a lower app
never imports a higher one. When something in a lower app must make a higher
one act — a read is submitted, so the case may be settled or a qualification
attempt scored — it enqueues a job by kind or calls the hooks listed here.
Both lists name functions by dotted path, so this module imports no app and
every app may read it; `jobs.services` and `hooks.run` resolve the paths.

Explicit on purpose: nothing registers itself by being imported.
"""

from __future__ import annotations

# Job kind -> the plain function that runs it (takes a jobs.services.JobContext).
JOB_HANDLERS: dict[str, str] = {
    "adjudication.settle": "annotation_server.adjudication.jobs.settle_job",
    "audit.anchor": "annotation_server.audit.jobs.anchor_audit_chain",
    "audit.verify_chain": "annotation_server.audit.jobs.verify_audit_chain",
    "datasets.export": "annotation_server.datasets.jobs.export_version",
    "datasets.evaluate": "annotation_server.datasets.jobs.evaluate_submission",
    "agreement.compute": "annotation_server.agreement.jobs.compute_report",
    "imaging.import": "annotation_server.imaging.jobs.import_uploads",
    "imaging.pull_pacs": "annotation_server.imaging.jobs.pull_pacs",
    "imaging.build_series_streams": "annotation_server.imaging.jobs.build_series_streams",
    "outbox.deliver": "annotation_server.outbox.jobs.deliver_job",
    "outbox.queue_version": "annotation_server.outbox.jobs.queue_version_job",
    "outbox.queue_case": "annotation_server.outbox.jobs.queue_case_job",
    "qc.check_cases": "annotation_server.quality.jobs.check_cases",
    "projects.assign": "annotation_server.reading.jobs.assign_job",
    "reading.prelabel": "annotation_server.reading.jobs.prelabel_job",
    "reading.finetune": "annotation_server.reading.jobs.finetune_job",
    "periodic.run": "annotation_server.web.jobs.run_periodic",
}

# Job kind -> the setting naming the Celery queue it is sent to (its value empty:
# the default queue). Every kind is routed here, in one place; a kind missing from
# this table is a test failure (tests/jobs/test_routing.py).
JOB_QUEUES: dict[str, str] = {
    "adjudication.settle": "",
    "audit.anchor": "",
    "audit.verify_chain": "",
    "datasets.export": "REFSET_EXPORT_QUEUE",
    "datasets.evaluate": "REFSET_EXPORT_QUEUE",
    "agreement.compute": "",
    "imaging.import": "REFSET_INGEST_QUEUE",
    "imaging.pull_pacs": "REFSET_INGEST_QUEUE",
    "imaging.build_series_streams": "REFSET_INGEST_QUEUE",
    "outbox.deliver": "",
    "outbox.queue_version": "",
    "outbox.queue_case": "",
    "qc.check_cases": "REFSET_QC_QUEUE",
    "projects.assign": "",
    "reading.prelabel": "REFSET_INFERENCE_QUEUE",
    "reading.finetune": "REFSET_INFERENCE_QUEUE",
    "periodic.run": "",
}

# Hook name -> the functions called, in order, with the hook's arguments.
HOOKS: dict[str, tuple[str, ...]] = {
    # (task, actor) after a qualification read is submitted, inside its transaction.
    "reading.attempt_read_submitted": ("annotation_server.qualification.services.after_submit",),
    # (project,) -> {case id: [reference finding dicts]}: the adjudicated cases'
    # reference standard, for fine-tuning assist models (reading.finetune, hooks.collect).
    "reading.reference_standard": ("annotation_server.adjudication.standard.adjudicated_findings",),
    # (instance ids,) -> the set of those that are read-only (rows of a frozen dataset
    # version), which `imaging.backfill` leaves as they are (hooks.collect).
    "imaging.read_only_instances": ("annotation_server.datasets.guards.frozen_instance_ids",),
}
