"""Background work for feedback. Tasks take ids and call services."""

from __future__ import annotations

import datetime as dt
import logging

from procrastinate import RetryStrategy
from procrastinate.contrib.django import app
from procrastinate.exceptions import UniqueViolation
from procrastinate.jobs import Status

from feedback import imports, services
from tenants.context import acting_for_org

logger = logging.getLogger(__name__)

# A worker that dies stops sending heartbeats; its jobs are handed back after this long.
STALLED_AFTER_SECONDS = 60


@app.task(
    queue="imports",
    name="feedback.run_import",
    retry=RetryStrategy(max_attempts=5, exponential_wait=2),
)
def run_import(*, job_id: int, org_id: int) -> None:
    with acting_for_org(org_id) as org:
        imports.import_run(org=org, job_id=job_id)


@app.task(
    queue="imports",
    name="feedback.recategorize",
    retry=RetryStrategy(max_attempts=5, exponential_wait=2),
)
def recategorize(*, org_id: int, version_id: int, settle_until: str) -> None:
    """Stored feedback gets the categories of the org's newly active category model."""
    with acting_for_org(org_id) as org:
        services.feedback_recategorize(
            org=org,
            version_id=version_id,
            settle_until=dt.datetime.fromisoformat(settle_until),
        )


@app.periodic(cron="* * * * *", periodic_id="retry_stalled_jobs")
@app.task(queue="maintenance", name="puna.retry_stalled_jobs", queueing_lock="retry_stalled_jobs")
async def retry_stalled_jobs(timestamp: int) -> None:
    """Requeue jobs whose worker was killed (imports resume where they stopped)."""
    for job in await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=STALLED_AFTER_SECONDS
    ):
        try:
            await app.job_manager.retry_job(job)
        except UniqueViolation as exc:
            if "queueing_lock" not in (exc.constraint_name or ""):
                raise
            # A twin with the same queueing lock was queued meanwhile (the minute's report
            # dispatch re-queues unfinished reports). It does the same work, but cannot start
            # while this one holds their shared lock: end this one so the twin runs.
            logger.warning("stalled job %s is queued again as a new job; ending it", job.id)
            await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
