"""CSV imports: checked up front, ingested by the real worker, resumable, never duplicated."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from feedback import imports
from feedback.models import Feedback, ImportFile, ImportJob
from tenants.models import Organization
from tests.jobs import run_worker_until_idle

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(client: APIClient, content: bytes, **fields: Any) -> Any:
    data = {"file": io.BytesIO(content), **fields}
    data["file"].name = "comments.csv"
    return client.post("/api/v1/imports", data, format="multipart")


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def test_import_runs_in_the_worker_and_reports_progress(api_key_client: APIClient) -> None:
    content = "\ufeff".encode() + _csv(
        [
            ["id", "comment", "channel", "date", "grade"],
            ["1", "Ang bagal ng enrollment sa registrar", "form", "2026-11-02", "11"],
            ["2", 'Multi-line\ncomment, with "quotes"', "form", "2026-11-03T08:00:00+08:00", "12"],
            ["", "", "", "", ""],
            ["3", "", "form", "2026-11-03", "12"],
            ["4", '=HYPERLINK("http://evil")', "email", "not a date", "10"],
            ["5", "Nindot kaayo ang klase ni Sir", "sms", "2026-11-04", "11"],
        ]
    )
    mapping = {"text": "comment", "external_id": "id", "source": "channel", "submitted_at": "date"}
    response = _upload(api_key_client, content, mapping=json.dumps(mapping))
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued"
    assert job["total_rows"] == 5  # the empty row does not count

    run_worker_until_idle("imports")

    done = api_key_client.get(f"/api/v1/imports/{job['id']}").json()
    assert done["status"] == "succeeded"
    assert done["processed_rows"] == 5
    assert done["created_count"] == 3
    assert done["error_count"] == 2
    assert done["progress"] == 1.0
    stored = {fb.external_id: fb for fb in Feedback.objects.all()}
    assert set(stored) == {"1", "2", "5"}
    assert stored["2"].text == 'Multi-line\ncomment, with "quotes"'
    assert stored["1"].metadata == {"grade": "11"}
    assert stored["5"].source == "sms"
    assert stored["2"].submitted_at is not None
    report = api_key_client.get(f"/api/v1/imports/{job['id']}/errors")
    assert report.status_code == 200
    lines = list(csv.reader(io.StringIO(report.content.decode())))
    assert lines[0] == ["row", "field", "reason"]
    assert {(row[0], row[1]) for row in lines[1:]} == {("5", "text"), ("6", "submitted_at")}


def test_reimporting_the_same_file_creates_no_duplicates(api_key_client: APIClient) -> None:
    content = _csv([["id", "text"], ["a", "First comment"], ["b", "Second comment"]])
    for _ in range(2):
        assert (
            _upload(
                api_key_client, content, mapping=json.dumps({"text": "text", "external_id": "id"})
            ).status_code
            == 202
        )
        run_worker_until_idle("imports")
    assert Feedback.objects.count() == 2
    last = ImportJob.objects.order_by("-id").first()
    assert last is not None
    assert last.duplicate_count == 2


@pytest.mark.parametrize(
    ("content", "fields", "error_field"),
    [
        ("comment\nhello".encode("utf-16"), {}, "file"),
        ("comment;x\nSalamat po sa tulong\n".encode("cp1252") + b"\xe9\n", {}, "file"),
        (b"", {}, "file"),
        (b"name,grade\nAna,11\n", {}, "mapping.text"),
        (b"name,grade\nAna,11\n", {"mapping": json.dumps({"text": "comment"})}, "mapping.text"),
        (b"text\nhello\n", {"mapping": "{not json"}, "mapping"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 64, {}, "file"),  # gzip bytes renamed to .csv
    ],
)
def test_bad_uploads_are_refused_at_once(
    api_key_client: APIClient, content: bytes, fields: dict[str, str], error_field: str
) -> None:
    response = _upload(api_key_client, content, **fields)
    assert response.status_code == 400
    assert error_field in response.json()["errors"]
    assert ImportJob.objects.count() == 0


def test_missing_file_is_400(api_key_client: APIClient) -> None:
    response = api_key_client.post("/api/v1/imports", {}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["errors"]


def test_interrupted_import_resumes_without_duplicates_or_loss(org: Organization) -> None:
    rows = [["text"]] + [[f"Comment {i} tungkol sa canteen"] for i in range(25)]
    job = imports.import_create(
        org=org, filename="big.csv", content=_csv(rows), mapping=None, created_by=None
    )
    imports.CHUNK_ROWS, saved = 10, imports.CHUNK_ROWS
    try:
        # The state a worker killed after its first committed chunk leaves behind.
        header = ["text"]
        chunk = [(n + 2, row) for n, row in enumerate(rows[1:11])]
        assert imports._ingest_chunk(org, job, header, chunk)
        job.refresh_from_db()
        assert job.processed_rows == 10
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
        run_worker_until_idle("imports")
    finally:
        imports.CHUNK_ROWS = saved
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED
    assert job.processed_rows == 25
    assert Feedback.objects.filter(import_job=job).count() == 25
    rows_stored = [n for n in Feedback.objects.values_list("import_row", flat=True) if n]
    assert sorted(rows_stored) == list(range(2, 27))


def test_other_org_cannot_see_imports(
    api_key_client: APIClient, other_api_key_client: APIClient
) -> None:
    job = _upload(api_key_client, b"text\nhello\n").json()
    assert other_api_key_client.get("/api/v1/imports").json()["results"] == []
    assert other_api_key_client.get(f"/api/v1/imports/{job['id']}").status_code == 404
    assert other_api_key_client.get(f"/api/v1/imports/{job['id']}/errors").status_code == 404
    assert ImportFile.objects.count() == 1
