"""Hostile input, by hand: huge and lying bodies, JSON nested 100,000 deep, invalid UTF-8, NUL
bytes, a 1 MB single-line CSV, archives dressed up as CSV, spreadsheet formulas in exports,
and HTML/JS in feedback shown on dashboard pages, in emails and in PDFs.

Each gets a clear problem+json answer naming the field (or a safely rendered page), never a
500, and nothing accepted is lost. NUL characters are refused (400 naming the field), never
silently stripped: PostgreSQL cannot store them, and changing what a person sent would be worse
than saying no. (tests/saas/test_bad_input.py has the basics: a 10 MB body, malformed JSON,
wrong types, odd ids, 415.)
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import re
import zipfile
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader
from rest_framework.test import APIClient

from feedback import imports
from feedback.models import Feedback, ImportJob
from feedback.services import FeedbackInput, feedback_ingest
from reports import render, selectors, services
from reports.models import Report
from tenants.models import Membership, Organization
from tests.reports.conftest import add_feedback

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('xss')</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_LINK = "javascript:alert(document.cookie)"
# ReportLab's Paragraph reads a mini-HTML: each of these would be markup if not escaped.
PDF_MARKUP = '<a href="javascript:alert(1)">click</a> <font size="80">BIG</font> <b>open &bogus;'


def problem(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/problem+json", response.content[:200]
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == response.status_code
    return body


def send_bytes(client: APIClient, path: str, body: bytes, **extra: Any) -> Any:
    """POST raw bytes (DRF's stubs type the body as str; Django sends bytes as they are)."""
    return client.generic("POST", path, body, **extra)  # type: ignore[arg-type]


def upload(client: Any, content: bytes, name: str = "upload.csv", **fields: str) -> Any:
    file = io.BytesIO(content)
    file.name = name
    return client.post("/api/v1/imports", {"file": file, **fields}, format="multipart")


# --- Huge and lying bodies ------------------------------------------------------------------


def test_body_over_the_limit_is_413_before_parsing(api_key_client: APIClient) -> None:
    items = [{"text": "x" * 9_000}] * 600  # about 5.4 MB, over the 5 MB API limit
    response = api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json")
    assert response.status_code == 413
    assert problem(response)["code"] == "request_too_large"
    assert Feedback.objects.count() == 0


def test_declared_length_over_the_limit_is_413_whatever_the_body(
    api_key_client: APIClient,
) -> None:
    response = send_bytes(
        api_key_client,
        "/api/v1/feedback",
        b'{"text": "short"}',
        content_type="application/json",
        CONTENT_LENGTH=str(6 * 1024 * 1024),
    )
    assert response.status_code == 413
    assert problem(response)["code"] == "request_too_large"


def test_garbage_content_length_is_400(api_key_client: APIClient) -> None:
    response = send_bytes(
        api_key_client,
        "/api/v1/feedback",
        b'{"text": "hi"}',
        content_type="application/json",
        CONTENT_LENGTH="12abc",
    )
    assert response.status_code == 400
    assert problem(response)["detail"] == "Invalid Content-Length header."


def test_upload_over_the_import_limit_is_413(api_key_client: APIClient) -> None:
    response = send_bytes(
        api_key_client,
        "/api/v1/imports",
        b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(51 * 1024 * 1024),
    )
    assert response.status_code == 413
    assert ImportJob.objects.count() == 0


# --- Deep JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"text": "hi", "metadata": ' + '{"a":' * 100_000 + "1" + "}" * 100_001,
        '{"items": [' + "[" * 100_000 + "]" * 100_000 + "]}",
    ],
    ids=["arrays", "objects", "in-metadata", "in-a-batch-item"],
)
def test_json_nested_100k_deep_is_a_400_not_a_recursion_error(
    api_key_client: APIClient, body: str
) -> None:
    path = "/api/v1/feedback/batch" if body.startswith('{"items"') else "/api/v1/feedback"
    response = api_key_client.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in problem(response)["detail"]
    assert Feedback.objects.count() == 0


def test_metadata_nested_deep_but_parseable_is_stored_as_sent(api_key_client: APIClient) -> None:
    metadata: dict[str, Any] = {"leaf": "x"}
    for _ in range(500):
        metadata = {"a": metadata}
    response = api_key_client.post(
        "/api/v1/feedback", {"text": "deep metadata", "metadata": metadata}, format="json"
    )
    assert response.status_code == 201
    assert Feedback.objects.get(pk=response.json()["id"]).metadata == metadata


# --- Invalid UTF-8 --------------------------------------------------------------------------


def test_invalid_utf8_json_is_400(api_key_client: APIClient) -> None:
    response = send_bytes(
        api_key_client,
        "/api/v1/feedback",
        b'{"text": "caf\xe9 \xff"}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "utf-8" in problem(response)["detail"]


def test_latin1_csv_is_400_naming_the_file_and_the_byte(api_key_client: APIClient) -> None:
    response = upload(api_key_client, "text\nMasarap ang café\n".encode("latin-1"))
    assert response.status_code == 400
    (message,) = problem(response)["errors"]["file"]
    assert "not UTF-8" in message
    assert "position 20" in message
    assert ImportJob.objects.count() == 0


def test_invalid_utf8_in_query_and_auth_header_is_handled(api_key_client: APIClient) -> None:
    assert api_key_client.get("/api/v1/feedback?q=%FF%FE").status_code == 200
    stranger = APIClient()
    response = stranger.get("/api/v1/feedback", HTTP_AUTHORIZATION="Bearer puna_\xff\xfe_x")
    assert response.status_code == 401
    assert problem(response)["code"] == "not_authenticated"


# --- NUL bytes: refused, naming the field ---------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("text", "before\x00after"),
        ("source", "form\x00"),
        ("external_id", "abc\x00"),
        ("author_ref", "student\x00 7"),
        ("metadata", {"room": "101\x00"}),
        ("metadata", {"ro\x00om": "101"}),
        ("metadata", {"nested": [{"deep": "\x00"}]}),
    ],
)
def test_nul_in_any_feedback_field_is_400_naming_it(
    api_key_client: APIClient, field: str, value: Any
) -> None:
    body = {"text": "the wifi is slow", field: value}
    response = api_key_client.post("/api/v1/feedback", body, format="json")
    assert response.status_code == 400
    assert list(problem(response)["errors"]) == [field]
    assert Feedback.objects.count() == 0


def test_nul_in_a_batch_item_fails_that_item_only(api_key_client: APIClient) -> None:
    items = [{"text": "good one"}, {"text": "bad\x00one"}, {"text": "ok", "source": "\x00"}]
    response = api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "error", "error"]
    assert set(results[1]["errors"]) == {"text"}
    assert set(results[2]["errors"]) == {"source"}
    assert list(Feedback.objects.values_list("text", flat=True)) == ["good one"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/classify", {"texts": ["fine", "nul\x00"]}, "texts"),
        ("/api/v1/label-sets", {"name": "to\x00pics", "labels": ["a", "b"]}, "name"),
        (
            "/api/v1/webhooks",
            {"url": "https://x.example/h", "events": ["report.ready"], "description": "\x00"},
            "description",
        ),
    ],
)
def test_nul_elsewhere_in_the_api_is_400_naming_the_field(
    api_key_client: APIClient, path: str, body: dict[str, Any], field: str
) -> None:
    response = api_key_client.post(path, body, format="json")
    assert response.status_code == 400
    assert list(problem(response)["errors"]) == [field]


def test_classify_names_the_nul_text_by_index(api_key_client: APIClient) -> None:
    response = api_key_client.post("/api/v1/classify", {"texts": ["ok", "x\x00"]}, format="json")
    assert problem(response)["errors"] == {"texts": {"1": ["Null characters are not allowed."]}}


def test_nul_in_a_query_filter_is_400(api_key_client: APIClient) -> None:
    response = api_key_client.get("/api/v1/feedback?q=wifi%00slow")
    assert response.status_code == 400
    assert list(problem(response)["errors"]) == ["q"]


def test_csv_with_nul_bytes_is_refused_at_upload_not_in_the_worker(
    api_key_client: APIClient,
) -> None:
    response = upload(api_key_client, b"text,source\nhello,web\x00form\n")
    assert response.status_code == 400
    (message,) = problem(response)["errors"]["file"]
    assert "NUL byte (at position 21)" in message
    assert ImportJob.objects.count() == 0


def test_utf16_csv_without_bom_is_refused(api_key_client: APIClient) -> None:
    response = upload(api_key_client, "text\nhello\n".encode("utf-16-le"))
    assert response.status_code == 400
    assert "NUL byte" in problem(response)["errors"]["file"][0]


# --- A 1 MB single-line CSV -----------------------------------------------------------------


def test_one_megabyte_header_line_gets_a_short_400(api_key_client: APIClient) -> None:
    response = upload(api_key_client, b"x" * 1_000_000)
    assert response.status_code == 400
    errors = problem(response)["errors"]
    assert "Say which column holds the text" in errors["mapping.text"][0]
    # The message quotes the column, cut short: not the megabyte back.
    assert len(response.content) < 2_000


def test_one_megabyte_row_is_accepted_and_reported_as_a_row_error(
    api_key_client: APIClient, org: Organization
) -> None:
    content = b"text\n" + b"a" * 1_000_000 + b"\nshort and fine\n"
    response = upload(api_key_client, content)
    assert response.status_code == 202
    job = imports.import_run(org=org, job_id=response.json()["id"])
    job.refresh_from_db()
    assert (job.status, job.created_count, job.error_count) == ("succeeded", 1, 1)
    assert job.errors[0]["row"] == 2
    assert job.errors[0]["field"] == "text"
    assert "1000000 characters" in job.errors[0]["reason"]
    assert list(Feedback.objects.values_list("import_row", flat=True)) == [3]


def test_field_bigger_than_the_csv_field_limit_is_400(api_key_client: APIClient) -> None:
    response = upload(api_key_client, b"text\n" + b"a" * (3 * 1024 * 1024))
    assert response.status_code == 400
    assert "not valid CSV" in problem(response)["errors"]["file"][0]


# --- Archives disguised as CSV: refused, never decompressed ---------------------------------


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("feedback.csv", b"text\n" + b"0" * 50_000_000)
    return out.getvalue()


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (_zip_bomb(), "zip"),
        (gzip.compress(b"text\n" + b"0" * 50_000_000), "gzip"),
    ],
    ids=["zip-bomb", "gzip"],
)
def test_archive_renamed_to_csv_is_refused_unopened(
    api_key_client: APIClient, content: bytes, kind: str
) -> None:
    assert len(content) < 200_000  # 50 MB inside, a few kilobytes on the wire
    response = upload(api_key_client, content, name="feedback.csv")
    assert response.status_code == 400
    assert problem(response)["errors"]["file"] == [
        f"This is a {kind} archive, not a CSV. Extract it and upload the CSV."
    ]
    assert ImportJob.objects.count() == 0


def test_zip_bomb_in_the_dashboard_upload_is_a_form_error(
    web_client: Client, org: Organization
) -> None:
    file = io.BytesIO(_zip_bomb())
    file.name = "feedback.csv"
    response = web_client.post(f"/o/{org.slug}/imports/", {"file": file, "source": "csv"})
    assert response.status_code == 200
    assert "zip archive, not a CSV" in response.content.decode()
    assert ImportJob.objects.count() == 0


def test_gzip_content_encoding_is_not_decompressed(api_key_client: APIClient) -> None:
    response = send_bytes(
        api_key_client,
        "/api/v1/feedback",
        gzip.compress(b'{"text": "hello"}'),
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 400
    assert problem(response)["code"] == "parse_error"


# --- Formula injection in CSV exports -------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
]


def test_dashboard_export_neutralises_formulas_in_every_user_cell(
    web_client: Client, org: Organization
) -> None:
    feedback_ingest(
        org=org,
        items=[
            FeedbackInput(text=f"{formula} text", source=formula[:50], external_id=f"{formula}#{n}")
            for n, formula in enumerate(FORMULAS)
        ],
    )
    response = web_client.get(f"/o/{org.slug}/feedback/export.csv")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8-sig")  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == len(FORMULAS)
    for row in rows:
        for column in ("text", "source", "external_id"):
            # The stored text is trimmed, so a leading tab/CR may be gone; a formula start never
            # survives unprefixed.
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), (column, row)
    texts = {row["text"] for row in rows}
    assert '\'=HYPERLINK("http://evil.example","click") text' in texts
    assert "'@SUM(1,1) text" in texts


def test_report_csv_neutralises_formulas_in_sources_and_terms(org: Organization) -> None:
    start = timezone.now() - dt.timedelta(days=2)
    add_feedback(org, at=start, count=3, source="=cmd|'/C calc'!A0", text="=plus @minus words")
    stats = selectors.report_snapshot(org=org, since=start, until=timezone.now())
    rows = list(csv.reader(io.StringIO(render.csv_text(stats))))
    assert ["source", "'=cmd|'/C calc'!A0", "3"] in rows
    for row in rows:
        assert not row[1].startswith(("=", "+", "-", "@")), row


def test_import_error_report_neutralises_formulas(
    api_key_client: APIClient, org: Organization
) -> None:
    response = upload(api_key_client, b"text,submitted_at\nhello,=1+1\n")
    assert response.status_code == 202
    job = imports.import_run(org=org, job_id=response.json()["id"])
    report = api_key_client.get(f"/api/v1/imports/{job.pk}/errors")
    rows = list(csv.reader(io.StringIO(report.content.decode())))
    assert rows[0] == ["row", "field", "reason"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


# --- HTML/JS in feedback: dashboard, email, PDF ---------------------------------------------


@pytest.fixture
def hostile_feedback(org: Organization) -> Feedback:
    result = feedback_ingest(
        org=org,
        items=[
            FeedbackInput(
                text=f"{SCRIPT} {IMG} {JS_LINK} the wifi is terrible and slow",
                source=IMG[:50],
                author_ref=JS_LINK,
                metadata={SCRIPT: IMG, "link": JS_LINK},
            )
        ],
    )
    (fb,) = result.created.values()
    return fb


def _assert_escaped(html: str) -> None:
    assert SCRIPT not in html
    assert "<img src=x" not in html
    assert 'href="javascript:' not in html.replace("'", '"')
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize("page", ["", "feedback/", "feedback/{id}/", "anomalies/"])
def test_dashboard_pages_escape_feedback_html(
    web_client: Client, org: Organization, hostile_feedback: Feedback, page: str
) -> None:
    Feedback.objects.filter(pk=hostile_feedback.pk).update(flagged=True, reasons=["spam"])
    response = web_client.get(f"/o/{org.slug}/{page.format(id=hostile_feedback.pk)}")
    assert response.status_code == 200
    html = response.content.decode()
    _assert_escaped(html)


def test_detail_page_shows_author_and_metadata_as_text(
    web_client: Client, org: Organization, hostile_feedback: Feedback
) -> None:
    html = web_client.get(f"/o/{org.slug}/feedback/{hostile_feedback.pk}/").content.decode()
    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in html  # a metadata key
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html  # its value, and the source
    assert f"<dd>{JS_LINK}</dd>" in html  # text, not a link
    assert not re.search(r"<a[^>]+href=\"javascript:", html)


def _hostile_report(org: Organization, owner: Membership) -> Report:
    now = timezone.now()
    for sentiment in ("positive", "negative"):
        add_feedback(
            org,
            at=now - dt.timedelta(days=1),
            sentiment=sentiment,
            text=f"{SCRIPT} {PDF_MARKUP} {JS_LINK} {sentiment} comment",
            source=IMG[:50],
            category="<b>facilities",
        )
    schedule = services.schedule_create(
        org=org,
        name=f"<i>Weekly</i> {SCRIPT}"[:100],
        frequency="daily",
        hour=0,
        recipient_member_ids=[owner.pk],
    )
    report = services.report_send_now(schedule=schedule)
    assert services.report_process(org=org, report_id=report.pk)
    report.refresh_from_db()
    return report


def test_report_email_escapes_feedback_html(org: Organization, owner: Membership) -> None:
    org.name = f"Alpha {SCRIPT}"
    org.save(update_fields=["name"])
    report = _hostile_report(org, owner)
    (email,) = mail.outbox
    html_part = email.message().get_body(preferencelist=("html",))
    assert html_part is not None
    html = html_part.get_content()
    _assert_escaped(html)
    assert "&lt;b&gt;facilities" in html
    assert "<a href" not in html
    assert SCRIPT not in report.html


def test_report_pdf_shows_markup_as_text_and_has_no_links(
    org: Organization, owner: Membership
) -> None:
    org.name = f"Alpha <font size=90>{SCRIPT}"
    org.save(update_fields=["name"])
    report = _hostile_report(org, owner)
    reader = PdfReader(io.BytesIO(bytes(report.pdf)))
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    assert '<a href="javascript:alert(1)">click</a>' in text
    assert "<b>open &bogus;" in text
    assert "<font size=90>" in text
    assert "<b>facilities" in text
    for page in reader.pages:
        for annotation in page.get("/Annots") or []:
            assert "/URI" not in str(annotation.get_object()), annotation.get_object()


def test_pdf_renders_unbalanced_markup_in_every_text_field(org: Organization) -> None:
    start = timezone.now() - dt.timedelta(days=2)
    add_feedback(org, at=start, sentiment="negative", text=f"<b><i>unclosed {PDF_MARKUP}")
    stats = selectors.report_snapshot(
        org=org, since=start, until=timezone.now(), title="</para><para>&#0;"
    )
    pdf = render.pdf_bytes(stats, render.chart_png(stats))
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "</para><para>&#0;" in text
    assert "<b><i>unclosed" in text


def test_api_returns_hostile_text_verbatim_as_json(
    api_key_client: APIClient, hostile_feedback: Feedback
) -> None:
    response = api_key_client.get(f"/api/v1/feedback/{hostile_feedback.pk}")
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["text"].startswith(SCRIPT)
    assert body["author_ref"] == JS_LINK
    assert json.dumps(body["metadata"], sort_keys=True) == json.dumps(
        {SCRIPT: IMG, "link": JS_LINK}, sort_keys=True
    )


def test_a_page_size_too_long_to_be_a_number_is_a_400(api_key_client) -> None:
    response = api_key_client.get("/api/v1/feedback", {"page_size": "9" * 5000})
    assert response.status_code == 400
    assert "page_size" in response.json()["errors"]
