"""A worker SIGKILLed mid-import and mid-report: the next worker, with the stalled-job retry
(`puna.retry_stalled_jobs`), finishes the job with nothing lost and nothing done twice."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from procrastinate.contrib.django import app
from procrastinate.exceptions import AlreadyEnqueued

from feedback import imports
from feedback.models import Feedback, ImportJob
from feedback.tasks import retry_stalled_jobs
from reports import services
from reports.models import Report
from reports.schedule import latest_due
from tenants.models import Organization
from tests.factories import make_org
from tests.reliability.servers import Process, base_env, wait_for, worker
from tests.reports.conftest import add_feedback

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

IMPORT_ROWS = 20_000


def _database_url() -> str:
    """The test database, for the worker processes (same role and password as this process)."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "postgres") + (f":{quote(s['PASSWORD'])}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _sql(query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(_database_url(), autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def _start_worker(started: list[Process], tmp_path: Path, mail: Path) -> Process:
    env = base_env(DATABASE_URL=_database_url(), EMAIL_URL=f"filemail:///{mail}")
    process = worker(env, tmp_path / f"worker-{len(started) + 1}.log")
    started.append(process)
    return process


def _job(task_name: str) -> tuple[int, str, int | None] | None:
    rows = _sql(
        "SELECT id, status, worker_id FROM procrastinate_jobs WHERE task_name = %s "
        "ORDER BY id LIMIT 1",
        [task_name],
    )
    return (rows[0][0], rows[0][1], rows[0][2]) if rows else None


def _stalled_retry(dead_worker_id: int | None) -> None:
    """What the clock and the periodic task do after a worker dies: its heartbeat grows older
    than STALLED_AFTER_SECONDS (we age it instead of waiting a minute), then
    `retry_stalled_jobs` runs (we queue it instead of waiting for the next minute)."""
    _sql(
        "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '10 minutes' "
        "WHERE id = %s",
        [dead_worker_id],
    )
    # AlreadyEnqueued: the new worker's own periodic run is queued already; it does the same.
    with contextlib.suppress(AlreadyEnqueued):
        app.configure_task(retry_stalled_jobs.name).defer(timestamp=int(time.time()))


def test_worker_killed_mid_import_resumes_without_duplicates_or_loss(
    tmp_path: Path, workers: list[Process]
) -> None:
    org = make_org(plan="business")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "comment"])
    for n in range(IMPORT_ROWS):
        writer.writerow([f"r{n}", f"Comment {n}: ang haba ng pila sa registrar tuwing enrollment"])
    job = imports.import_create(
        org=org,
        filename="big.csv",
        content=out.getvalue().encode(),
        mapping={"text": "comment", "external_id": "id"},
        created_by=None,
    )
    first = _start_worker(workers, tmp_path, tmp_path / "mail")

    def progressed() -> int:
        job.refresh_from_db()
        return job.processed_rows if job.processed_rows >= imports.CHUNK_ROWS else 0

    wait_for(progressed, timeout=120, what="the first committed chunk", every=0.05)
    running = _job("feedback.run_import")
    assert running is not None
    assert running[1] == "doing"
    first.kill()
    job.refresh_from_db()
    killed_at = job.processed_rows
    assert imports.CHUNK_ROWS <= killed_at < IMPORT_ROWS, "killed too late to prove anything"
    assert job.status == ImportJob.Status.RUNNING

    _start_worker(workers, tmp_path, tmp_path / "mail")
    _stalled_retry(running[2])

    def finished() -> bool:
        job.refresh_from_db()
        return job.status != ImportJob.Status.RUNNING

    wait_for(finished, timeout=180, what="the import to finish after the retry", every=0.25)
    stored = Feedback.objects.filter(organization=org)
    print(
        f"\nworker killed mid-import: {IMPORT_ROWS} rows, killed after {killed_at} committed, "
        f"resumed by the next worker: {stored.count()} stored, "
        f"{stored.values('external_id').distinct().count()} distinct"
    )
    assert job.status == ImportJob.Status.SUCCEEDED
    assert job.processed_rows == IMPORT_ROWS
    assert job.created_count == IMPORT_ROWS
    assert (job.duplicate_count, job.error_count) == (0, 0)
    assert stored.count() == IMPORT_ROWS
    assert stored.values("external_id").distinct().count() == IMPORT_ROWS
    rows = stored.order_by("import_row").values_list("import_row", flat=True)
    assert list(rows) == list(range(2, IMPORT_ROWS + 2))


def test_worker_killed_mid_report_sends_it_exactly_once(
    tmp_path: Path, workers: list[Process]
) -> None:
    org: Organization = make_org(plan="team")
    daily = services.schedule_create(
        org=org,
        name="Daily summary",
        frequency="daily",
        hour=0,
        recipient_emails=["principal@faults.example"],
    )
    type(daily).objects.filter(pk=daily.pk).update(
        created_at=timezone.now() - dt.timedelta(days=30)
    )
    period = latest_due(daily.rule(), ZoneInfo(org.timezone), timezone.now())
    assert period is not None
    add_feedback(org, at=period.start + dt.timedelta(hours=1), sentiment="negative", count=50)
    mail = tmp_path / "mail"

    # Hold the feedback table so the worker stops inside report generation, with the report row
    # locked and half built; then kill it there.
    blocker = psycopg.connect(_database_url())
    try:
        blocker.execute("LOCK TABLE feedback_feedback IN ACCESS EXCLUSIVE MODE")
        services.reports_dispatch()
        report = Report.objects.get(schedule=daily)
        first = _start_worker(workers, tmp_path, mail)

        def generating() -> tuple[int, str, int | None] | None:
            job = _job("reports.process_report")
            waiting = _sql(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE %s AND pid <> pg_backend_pid()",
                ["%feedback_feedback%"],
            )
            return job if job is not None and job[1] == "doing" and waiting else None

        running = wait_for(generating, timeout=120, what="the worker inside report generation")
        first.kill()
    finally:
        blocker.rollback()
        blocker.close()
    report.refresh_from_db()
    assert report.status == Report.Status.CLAIMED

    # The next minute's dispatch queues the unfinished report again before anyone notices the
    # dead worker: the stalled job and the new one carry the same locks.
    services.reports_dispatch()
    _start_worker(workers, tmp_path, mail)
    _stalled_retry(running[2])

    def sent() -> bool:
        report.refresh_from_db()
        pending = _sql(
            "SELECT 1 FROM procrastinate_jobs WHERE task_name = 'reports.process_report' "
            "AND status IN ('todo', 'doing')"
        )
        return report.status == Report.Status.SENT and not pending

    wait_for(sent, timeout=120, what="the report to be sent and no job left", every=0.25)
    messages = sum(
        f.read_text(errors="replace").count(f"Message-ID: <report-{report.pk}@")
        for f in mail.iterdir()
    )
    print(
        f"\nworker killed mid-report: report {report.pk} left {Report.Status.CLAIMED}, "
        f"finished by the next worker: {Report.objects.filter(schedule=daily).count()} report, "
        f"{messages} email"
    )
    assert Report.objects.filter(schedule=daily).count() == 1
    assert report.send_attempts == 1
    assert report.stats["total"] == 50
    assert messages == 1
