"""The report's files: the PDF opens and shows the period's numbers; the email carries the
chart inline and the PDF and CSV attached; the CSV is safe for spreadsheets."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable

import pytest
from django.core import mail
from pypdf import PdfReader

from reports import render, selectors, services
from reports.models import Report, ReportSchedule
from tenants.models import Organization
from tests.reports.conftest import add_feedback

pytestmark = pytest.mark.django_db

UTC = dt.UTC
START = dt.datetime(2026, 11, 1, 16, 0, tzinfo=UTC)  # Mon 2 Nov 00:00 Manila
END = START + dt.timedelta(days=7)


@pytest.fixture
def planted(org: Organization) -> None:
    # The previous week: 10 comments. This week: 37 (13 negative, 7 neutral, 17 positive).
    add_feedback(org, at=START - dt.timedelta(days=3), sentiment="neutral", count=10)
    add_feedback(
        org,
        at=START + dt.timedelta(hours=5),
        sentiment="negative",
        count=13,
        spread=dt.timedelta(days=2),
        source="form",
        category="facilities",
    )
    add_feedback(
        org,
        at=START + dt.timedelta(days=3),
        sentiment="neutral",
        count=7,
        source="sms",
        language="tl",
    )
    add_feedback(
        org,
        at=START + dt.timedelta(days=4),
        sentiment="positive",
        count=17,
        source="form",
        text="The new library wifi is fast and reliable now",
    )
    add_feedback(
        org,
        at=START + dt.timedelta(days=5),
        sentiment="negative",
        count=2,
        flagged=True,
        reasons=["spam", "repeated"],
        source="api",
    )
    # Outside the period: ignored.
    add_feedback(org, at=END + dt.timedelta(hours=1), sentiment="negative", count=50)


def test_snapshot_counts_the_period_and_compares_with_the_one_before(
    org: Organization, planted: None
) -> None:
    stats = selectors.report_snapshot(org=org, since=START, until=END)
    assert stats["total"] == 39
    assert stats["previous_total"] == 10
    assert stats["change"] == pytest.approx(2.9)
    assert stats["sentiment"] == {"negative": 15, "neutral": 7, "positive": 17}
    assert stats["source"] == {"form": 30, "sms": 7, "api": 2}
    assert stats["language"] == {"en": 32, "tl": 7}
    assert stats["flagged"] == 2
    assert stats["flagged_by_reason"] == {"repeated": 2, "spam": 2}
    assert len(stats["trend"]) == 7
    assert sum(d["total"] for d in stats["trend"]) == 39
    assert stats["highlights"]["positive"][0]["text"].startswith("The new library wifi")
    assert any(t["term"] == "wifi" for t in stats["rising_terms"])


def test_human_corrections_win_in_the_snapshot(org: Organization) -> None:
    add_feedback(
        org,
        at=START + dt.timedelta(hours=1),
        sentiment="positive",
        count=2,
        corrected_sentiment="negative",
    )
    stats = selectors.report_snapshot(org=org, since=START, until=END)
    assert stats["sentiment"] == {"negative": 2, "neutral": 0, "positive": 0}


def test_schedule_filters_narrow_the_report(org: Organization, planted: None) -> None:
    stats = selectors.report_snapshot(org=org, since=START, until=END, source="sms")
    assert stats["total"] == 7
    assert stats["filters"] == {"source": "sms"}


def test_pdf_opens_and_contains_the_periods_numbers(org: Organization, planted: None) -> None:
    stats = selectors.report_snapshot(org=org, since=START, until=END, title="Weekly summary")
    pdf = render.pdf_bytes(stats, render.chart_png(stats))
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Alpha High School" in text
    assert "Weekly summary" in text
    assert "Mon 02 Nov 2026 to Sun 08 Nov 2026" in text
    for number in ("39", "+290%", "15", "17", "38%", "44%", "facilities"):
        assert number in text, number
    # The chart is an embedded image.
    assert any(page.images for page in reader.pages)


def test_chart_is_a_png(org: Organization, planted: None) -> None:
    png = render.chart_png(selectors.report_snapshot(org=org, since=START, until=END))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_csv_has_the_numbers_and_neutralises_formulas(org: Organization) -> None:
    add_feedback(org, at=START + dt.timedelta(hours=1), count=3, category="=HYPERLINK(1)")
    stats = selectors.report_snapshot(org=org, since=START, until=END)
    rows = list(csv.reader(io.StringIO(render.csv_text(stats))))
    assert ["volume", "total", "3"] in rows
    assert ["category", "'=HYPERLINK(1)", "3"] in rows


def test_email_has_inline_chart_and_pdf_and_csv_attached(
    make_schedule: Callable[..., ReportSchedule], org: Organization, planted: None
) -> None:
    weekly = make_schedule(created_at=START - dt.timedelta(days=30))
    ((report_id, _),) = services.reports_claim_due(now=END + dt.timedelta(hours=9))
    assert services.report_process(org=org, report_id=report_id)
    report = Report.objects.get(pk=report_id)
    assert report.schedule == weekly

    (email,) = mail.outbox
    message = email.message()
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert 'src="cid:puna-chart"' in html.get_content()
    # The chart sits with the HTML in multipart/related, referenced by its Content-ID.
    related = next(p for p in message.walk() if p.get_content_type() == "multipart/related")
    image = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<puna-chart>"
    assert image.get_content().startswith(b"\x89PNG")
    attachments = {p.get_filename(): p for p in message.iter_attachments()}
    pdf = attachments["puna-report-2026-11-02.pdf"].get_content()
    assert "39" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "volume,total,39" in attachments["puna-report-2026-11-02.csv"].get_content()
    assert "Comments: 39" in email.body
