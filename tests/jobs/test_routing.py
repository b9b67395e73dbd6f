"""Every job kind is routed to a queue in one place (registry.JOB_QUEUES), and the
queue settings move each family of work to the hosts whose workers consume it."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from annotation_server import registry
from annotation_server.jobs import services as jobs


def test_every_job_kind_has_a_route_and_every_route_a_kind():
    assert set(registry.JOB_QUEUES) == set(registry.JOB_HANDLERS)
    for kind, setting in registry.JOB_QUEUES.items():
        assert setting == "" or hasattr(django_settings, setting), (kind, setting)


def test_by_default_only_inference_leaves_the_default_queue():
    routed = {kind: jobs.queue_for(kind) for kind in registry.JOB_HANDLERS}
    assert {k for k, q in routed.items() if q} == {"reading.prelabel", "reading.finetune"}
    assert routed["reading.prelabel"] == "inference"


@pytest.mark.parametrize(
    ("setting", "kinds"),
    [
        (
            "REFSET_INGEST_QUEUE",
            {"imaging.import", "imaging.pull_pacs", "imaging.build_series_streams"},
        ),
        ("REFSET_QC_QUEUE", {"qc.check_cases"}),
        ("REFSET_EXPORT_QUEUE", {"datasets.export", "datasets.evaluate"}),
    ],
)
def test_a_queue_setting_routes_its_family_and_nothing_else(settings, setting, kinds):
    setattr(settings, setting, "hosts-b")
    routed = {kind for kind in registry.JOB_HANDLERS if jobs.queue_for(kind) == "hosts-b"}
    assert routed == kinds


def test_a_redelivered_message_waits_longer_than_a_job_runs():
    # acks_late + prefetch 1 + reject on worker loss: a lost host's job comes back,
    # but only after the broker's visibility timeout, which must exceed the lease.
    assert django_settings.CELERY_TASK_ACKS_LATE
    assert django_settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert django_settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    timeout = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert timeout >= 3600 and timeout > 10 * django_settings.REFSET_JOB_LEASE_S
