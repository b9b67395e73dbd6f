"""Celery entry point: one thin task that runs a Job row by id."""

from celery import shared_task

from annotation_server.jobs import services


@shared_task(name="refset.run_job", acks_late=True)
def run_job(job_id: int) -> str:
    return services.execute(job_id)
