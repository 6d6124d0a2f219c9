"""Builders for reports tests: feedback rows with chosen labels and times, schedules, and a
real HTTP receiver on 127.0.0.1 for webhooks."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection

from feedback.models import Feedback
from reports import services
from reports.models import ReportSchedule
from tenants.models import Membership, Organization

_seq = itertools.count(1)


def add_feedback(
    org: Organization,
    *,
    at: dt.datetime,
    sentiment: str = "neutral",
    count: int = 1,
    text: str | None = None,
    spread: dt.timedelta = dt.timedelta(0),
    **fields: Any,
) -> list[Feedback]:
    """Insert `count` feedback rows directly (no models), spaced evenly over `spread`."""
    step = spread / count if count else spread
    fields.setdefault("language", "en")
    rows = []
    for i in range(count):
        n = next(_seq)
        rows.append(
            Feedback(
                organization=org,
                text=text or f"comment number {n} about the {sentiment} things",
                sentiment=sentiment,
                sentiment_scores={sentiment: 0.9},
                language_score=0.9,
                received_at=at + step * i,
                **fields,
            )
        )
    return Feedback.objects.bulk_create(rows)


@pytest.fixture
def no_leftover_jobs(transactional_db: None) -> Iterator[None]:
    """Jobs of earlier tests (retries scheduled minutes ahead) must not run in this one."""

    def clear() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
                "AND task_name LIKE 'reports.%%'"
            )

    clear()
    yield
    clear()


@pytest.fixture
def make_schedule(owner: Membership) -> Callable[..., ReportSchedule]:
    def make(org: Organization | None = None, **values: Any) -> ReportSchedule:
        values.setdefault("name", "Weekly summary")
        values.setdefault("frequency", "weekly")
        values.setdefault("weekday", 0)
        values.setdefault("hour", 8)
        values.setdefault("recipient_emails", ["principal@alpha.example"])
        created_at = values.pop("created_at", None)
        made = services.schedule_create(org=org or owner.organization, **values)
        if created_at is not None:
            ReportSchedule.objects.filter(pk=made.pk).update(created_at=created_at)
            made.refresh_from_db()
        return made

    return make


@dataclass
class HookServer:
    """Records every request; answers `status` (set it to 500 to make the endpoint fail)."""

    url: str = ""
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    state = HookServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append({"headers": dict(self.headers), "body": body})
            self.send_response(state.status)
            self.end_headers()
            self.wfile.write(b"ok" if state.status < 300 else b"receiver is down")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/puna"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
