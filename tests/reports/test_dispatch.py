"""Each (schedule, period) report is produced and emailed exactly once: racing workers,
a crash after claiming, an SMTP failure, and a worker that was down at the due time."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Callable
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from reports import services
from reports.models import Report, ReportSchedule
from reports.schedule import latest_due
from tenants.context import acting_for_org
from tenants.models import Membership, Organization
from tests.jobs import run_worker_until_idle
from tests.reports.conftest import add_feedback

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_leftover_jobs")]

UTC = dt.UTC
# Monday 9 November 2026, 08:00 in Manila (the fixtures' org zone) is 00:00 UTC.
MONDAY_8AM = dt.datetime(2026, 11, 9, 0, 0, tzinfo=UTC)
LAST_WEEK = dt.datetime(2026, 11, 1, 16, 0, tzinfo=UTC)  # Mon 2 Nov 00:00 Manila


@pytest.fixture
def weekly(make_schedule: Callable[..., ReportSchedule], org: Organization) -> ReportSchedule:
    add_feedback(org, at=LAST_WEEK + dt.timedelta(hours=10), sentiment="negative", count=4)
    add_feedback(org, at=LAST_WEEK + dt.timedelta(days=2), sentiment="positive", count=3)
    return make_schedule(created_at=MONDAY_8AM - dt.timedelta(days=30))


def _process_all(now: dt.datetime) -> int:
    sent = 0
    for report_id, org_id in services.reports_claim_due(now=now):
        # As the process_report task does: the work acts for the report's org.
        with acting_for_org(org_id) as org:
            sent += services.report_process(org=org, report_id=report_id)
    return sent


def _race(now: dt.datetime) -> list[Any]:
    """Two threads, each with its own database connection, dispatch and send at once."""
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(_process_all(now))
        except Exception as exc:  # surfaced by the caller's assertion
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_workers_racing_produce_one_report_and_one_email(weekly: ReportSchedule) -> None:
    for week in range(3):
        results = _race(MONDAY_8AM + dt.timedelta(weeks=week, minutes=1))
        assert sorted(results) == [0, 1], results
    assert Report.objects.filter(schedule=weekly).count() == 3
    assert len(mail.outbox) == 3
    assert {r.status for r in Report.objects.all()} == {"sent"}


def test_the_worker_sends_the_due_report_once(
    make_schedule: Callable[..., ReportSchedule], org: Organization
) -> None:
    """The real path on the real clock: dispatch (ours and the worker's own periodic one)
    queues a job, the worker builds and sends it, once."""
    daily = make_schedule(
        frequency="daily", hour=0, created_at=timezone.now() - dt.timedelta(days=30)
    )
    period = latest_due(daily.rule(), ZoneInfo(org.timezone), timezone.now())
    assert period is not None
    add_feedback(org, at=period.start + dt.timedelta(hours=1), sentiment="negative", count=5)
    services.reports_dispatch()
    services.reports_dispatch()  # queued once (queueing lock)
    run_worker_until_idle("reports", "webhooks")
    services.reports_dispatch()  # nothing left to do
    run_worker_until_idle("reports", "webhooks")

    report = Report.objects.get(schedule=daily)
    assert report.status == "sent"
    assert report.period_start == period.start
    assert report.stats["total"] == 5
    assert len(mail.outbox) == 1
    assert mail.outbox[0].bcc == ["principal@alpha.example"]
    assert mail.outbox[0].extra_headers["Message-ID"].startswith(f"<report-{report.pk}@")


def test_catch_up_after_downtime_sends_the_latest_missed_period_once(
    make_schedule: Callable[..., ReportSchedule], org: Organization
) -> None:
    daily = make_schedule(frequency="daily", hour=8, created_at=MONDAY_8AM - dt.timedelta(days=10))
    # The worker was down from Sunday until Monday 11:17 Manila: 08:00 passed unseen.
    back_up = MONDAY_8AM + dt.timedelta(hours=3, minutes=17)
    assert _process_all(back_up) == 1
    assert _process_all(back_up + dt.timedelta(minutes=1)) == 0
    report = Report.objects.get(schedule=daily)
    assert report.period_end == MONDAY_8AM - dt.timedelta(hours=8)  # Monday 00:00 Manila
    assert len(mail.outbox) == 1
    # The next day's report comes at its own time.
    assert _process_all(MONDAY_8AM + dt.timedelta(days=1)) == 1
    assert Report.objects.filter(schedule=daily).count() == 2


def test_a_new_schedule_does_not_send_periods_before_it_existed(
    make_schedule: Callable[..., ReportSchedule],
) -> None:
    make_schedule(frequency="daily", hour=8, created_at=MONDAY_8AM + dt.timedelta(hours=1))
    assert _process_all(MONDAY_8AM + dt.timedelta(hours=2)) == 0
    assert Report.objects.count() == 0


def test_a_claim_left_by_a_crashed_worker_is_finished_by_the_next_dispatch(
    weekly: ReportSchedule,
) -> None:
    now = MONDAY_8AM + dt.timedelta(minutes=1)
    services.reports_claim_due(now=now)  # ... and the worker died here
    assert Report.objects.get().status == "claimed"
    assert mail.outbox == []
    assert _process_all(now + dt.timedelta(minutes=1)) == 1
    assert len(mail.outbox) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_smtp_failure_keeps_the_report_and_the_next_dispatch_sends_it(
    weekly: ReportSchedule,
) -> None:
    now = MONDAY_8AM + dt.timedelta(minutes=1)
    smtp_down = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": _closed_port(), "timeout": 2},
        }
    }
    with override_settings(MAILERS=smtp_down), pytest.raises(ConnectionRefusedError):
        _process_all(now)
    report = Report.objects.get()
    assert report.status == "ready"
    assert report.send_attempts == 1
    assert "Error" in report.last_error
    assert _process_all(now + dt.timedelta(minutes=1)) == 1
    report.refresh_from_db()
    assert report.status == "sent"
    assert report.sent_at is not None
    assert len(mail.outbox) == 1


def test_send_due_reports_now_runs_one_cycle(weekly: ReportSchedule, owner: Membership) -> None:
    out = StringIO()
    # Inside the test, "now" is the real clock: make last Monday's period due.
    ReportSchedule.objects.filter(pk=weekly.pk).update(frequency="daily")
    call_command("send_due_reports", "--now", stdout=out)
    assert out.getvalue().strip() == "1"
    assert len(mail.outbox) == 1
    out = StringIO()
    call_command("send_due_reports", "--now", stdout=out)
    assert out.getvalue().strip() == "0"


def test_send_now_sends_a_separate_manual_report(weekly: ReportSchedule) -> None:
    _process_all(MONDAY_8AM + dt.timedelta(minutes=1))
    # Paused, so the worker's own (real-clock) dispatch leaves it alone; send-now still works.
    services.schedule_update(schedule=weekly, changes={"enabled": False})
    manual = services.report_send_now(schedule=weekly, now=MONDAY_8AM + dt.timedelta(hours=1))
    run_worker_until_idle("reports", "webhooks")
    manual.refresh_from_db()
    assert manual.kind == "manual"
    assert manual.status == "sent"
    assert manual.period_start == LAST_WEEK
    assert len(mail.outbox) == 2
