"""CSV imports: accept a file, then ingest it in the background, resumably.

The upload is checked up front (size, encoding, header, column mapping, row count) so that most
mistakes are reported at once with a 400. The worker then ingests CHUNK_ROWS rows per
transaction; the same transaction advances `processed_rows`, so a worker killed mid-import
resumes after the last committed chunk, and (import_job, import_row) is unique as a backstop.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from feedback.models import ImportFile, ImportJob
from feedback.services import FeedbackInput, QuotaExceeded, feedback_ingest
from tenants.models import Organization, User

logger = logging.getLogger(__name__)

MAX_IMPORT_BYTES = 50 * 1024 * 1024
MAX_IMPORT_ROWS = 200_000
CHUNK_ROWS = 1_000
MAX_STORED_ERRORS = 10_000
MAPPABLE = ("text", "source", "external_id", "submitted_at", "author_ref")
TEXT_COLUMN_GUESSES = ("text", "feedback", "comment", "comments", "message", "review", "puna")

csv.field_size_limit(2 * 1024 * 1024)


# Archives renamed to .csv. Refused by their signature: Puna never decompresses an upload, so
# a zip bomb is just a few kilobytes of refused bytes.
_ARCHIVE_SIGNATURES = {
    b"PK\x03\x04": "zip",
    b"PK\x05\x06": "zip",
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"7z\xbc\xaf\x27\x1c": "7z",
    b"\x28\xb5\x2f\xfd": "zstd",
}
_SHOWN_NAME_CHARS = 60
_SHOWN_COLUMNS = 20


def _decode(content: bytes) -> str:
    for signature, kind in _ARCHIVE_SIGNATURES.items():
        if content.startswith(signature):
            raise ValidationError(
                {"file": [f"This is a {kind} archive, not a CSV. Extract it and upload the CSV."]}
            )
    # PostgreSQL cannot store NUL in text, and a CSV with NUL bytes is UTF-16 or not text.
    nul = content.find(b"\x00")
    if nul != -1:
        raise ValidationError(
            {
                "file": [
                    f"The file contains a NUL byte (at position {nul}): it is not a UTF-8 text "
                    "file. Save it as 'CSV UTF-8' and upload again."
                ]
            }
        )
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            {
                "file": [
                    f"The file is not UTF-8 (invalid byte at position {exc.start}). "
                    "Save it as 'CSV UTF-8' and upload again."
                ]
            }
        ) from exc


def _reader(text: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), strict=False)


def import_preview(*, content: bytes, limit: int = 5) -> dict[str, Any]:
    """The header, a few rows and a suggested mapping, for the upload page's preview."""
    text = _decode(content)
    rows = _reader(text)
    header = next(rows, None)
    if not header:
        raise ValidationError({"file": ["The file is empty."]})
    sample = [row for _, row in zip(range(limit), rows, strict=False)]
    return {"columns": header, "rows": sample, "mapping": suggest_mapping(header)}


def suggest_mapping(header: list[str]) -> dict[str, Any]:
    lowered = {column.strip().lower(): column for column in header}
    mapping: dict[str, Any] = {}
    for guess in TEXT_COLUMN_GUESSES:
        if guess in lowered:
            mapping["text"] = lowered[guess]
            break
    for target in MAPPABLE[1:]:
        if target in lowered:
            mapping[target] = lowered[target]
    return mapping


def _shown(name: Any) -> str:
    """A column name or mapping key as quoted in an error message, cut to a readable length
    (a 1 MB header line must not come back as a 1 MB error)."""
    text = str(name)
    return repr(text if len(text) <= _SHOWN_NAME_CHARS else text[:_SHOWN_NAME_CHARS] + "…")


def _check_mapping(header: list[str], mapping: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    unknown_targets = sorted(str(key) for key in set(mapping) - {*MAPPABLE, "metadata"})
    if unknown_targets:
        shown = ", ".join(_shown(key) for key in unknown_targets[:_SHOWN_COLUMNS])
        errors["mapping"] = [f"Unknown mapping keys: {shown}."]
    if "text" not in mapping:
        columns = ", ".join(_shown(column) for column in header[:_SHOWN_COLUMNS])
        more = f" and {len(header) - _SHOWN_COLUMNS} more" if len(header) > _SHOWN_COLUMNS else ""
        errors["mapping.text"] = [
            f"Say which column holds the text; the columns are: {columns}{more}."
        ]
    for target in MAPPABLE:
        column = mapping.get(target)
        if column is not None and column not in header:
            errors[f"mapping.{target}"] = [f"There is no column named {_shown(column)}."]
    metadata = mapping.get("metadata", "*")
    if metadata != "*" and not (
        isinstance(metadata, list) and all(isinstance(c, str) and c in header for c in metadata)
    ):
        errors["mapping.metadata"] = ["Give '*' (all other columns) or a list of column names."]
    if errors:
        raise ValidationError(errors)
    return {**mapping, "metadata": metadata}


@transaction.atomic
def import_create(
    *,
    org: Organization,
    filename: str,
    content: bytes,
    mapping: dict[str, Any] | None,
    created_by: User | None,
    default_source: str = "csv",
) -> ImportJob:
    """Check an uploaded CSV and queue it; everything wrong with it up front is a 400."""
    if len(content) > MAX_IMPORT_BYTES:
        raise ValidationError(
            {"file": [f"The file is {len(content)} bytes; the limit is {MAX_IMPORT_BYTES} bytes."]}
        )
    text = _decode(content)
    rows = _reader(text)
    try:
        header = next(rows, None)
        if not header:
            raise ValidationError({"file": ["The file is empty."]})
        header = [column.strip() for column in header]
        resolved = _check_mapping(header, mapping or suggest_mapping(header))
        total = sum(1 for row in rows if any(cell.strip() for cell in row))
    except csv.Error as exc:
        raise ValidationError({"file": [f"The file is not valid CSV: {exc}."]}) from exc
    if total > MAX_IMPORT_ROWS:
        raise ValidationError(
            {"file": [f"The file has {total} rows; the limit is {MAX_IMPORT_ROWS}. Split it."]}
        )
    job = ImportJob.objects.create(
        organization=org,
        filename=filename[:255] or "upload.csv",
        size_bytes=len(content),
        mapping=resolved,
        default_source=default_source[:50] or "csv",
        total_rows=total,
        created_by=created_by,
    )
    ImportFile.objects.create(organization=org, job=job, content=content)
    from feedback.tasks import run_import

    # Deferred in this transaction: the job is queued if and only if it was saved.
    # The lock keeps a retried job from running beside a stalled one for the same import.
    run_import.configure(lock=f"import-{job.pk}").defer(job_id=job.pk, org_id=org.pk)
    return job


def _parse_when(value: str) -> dt.datetime | None:
    value = value.strip()
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(value)
        parsed = dt.datetime(day.year, day.month, day.day)  # noqa: DTZ001 - made aware below
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    return parsed


def _row_input(
    header: list[str], row: list[str], mapping: dict[str, Any], row_number: int, source: str
) -> tuple[FeedbackInput | None, dict[str, list[str]]]:
    if len(row) > len(header):
        return None, {"row": [f"Row has {len(row)} cells but the header has {len(header)}."]}
    values = dict(zip(header, row, strict=False))
    errors: dict[str, list[str]] = {}
    submitted_at = None
    if mapping.get("submitted_at"):
        try:
            submitted_at = _parse_when(values.get(mapping["submitted_at"], ""))
        except (ValueError, OverflowError):
            errors["submitted_at"] = ["Not a date or date-time (use ISO 8601, e.g. 2026-11-22)."]
    used = {mapping.get(target) for target in MAPPABLE}
    metadata_columns = (
        [c for c in header if c not in used] if mapping["metadata"] == "*" else mapping["metadata"]
    )
    item = FeedbackInput(
        text=values.get(mapping["text"], ""),
        source=(values.get(mapping["source"], "") if mapping.get("source") else "") or source,
        external_id=(values.get(mapping["external_id"]) or None)
        if mapping.get("external_id")
        else None,
        author_ref=values.get(mapping["author_ref"], "") if mapping.get("author_ref") else "",
        submitted_at=submitted_at,
        metadata={c: values[c] for c in metadata_columns if values.get(c, "") != ""},
        import_row=row_number,
    )
    return (None, errors) if errors else (item, {})


def import_run(*, org: Organization, job_id: int) -> ImportJob:
    """Ingest a queued (or interrupted) import from where it stopped (worker side)."""
    job = ImportJob.objects.for_org(org).get(pk=job_id)
    if job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED):
        return job
    job.status = ImportJob.Status.RUNNING
    job.started_at = job.started_at or timezone.now()
    job.save(update_fields=["status", "started_at"])
    content = bytes(ImportFile.objects.for_org(org).get(job=job).content)
    rows = _reader(content.decode("utf-8-sig"))
    header = [column.strip() for column in next(rows)]
    data_rows = (
        (number, row)
        for number, row in enumerate(rows, start=2)  # row 1 is the header
        if any(cell.strip() for cell in row)
    )
    done = job.processed_rows
    chunk: list[tuple[int, list[str]]] = []
    for position, (number, row) in enumerate(data_rows):
        if position < done:
            continue
        chunk.append((number, row))
        if len(chunk) == CHUNK_ROWS:
            if not _ingest_chunk(org, job, header, chunk):
                return job
            chunk = []
    if chunk and not _ingest_chunk(org, job, header, chunk):
        return job
    job.status = ImportJob.Status.SUCCEEDED
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    return job


def _ingest_chunk(
    org: Organization, job: ImportJob, header: list[str], chunk: list[tuple[int, list[str]]]
) -> bool:
    inputs: list[FeedbackInput] = []
    numbers: list[int] = []
    errors: list[dict[str, Any]] = []
    for number, row in chunk:
        item, row_errors = _row_input(header, row, job.mapping, number, job.default_source)
        if item is None:
            errors += [
                {"row": number, "field": f, "reason": r} for f, rs in row_errors.items() for r in rs
            ]
            continue
        inputs.append(item)
        numbers.append(number)
    with transaction.atomic():
        locked = ImportJob.objects.for_org(org).select_for_update().get(pk=job.pk)
        try:
            result = feedback_ingest(org=org, items=inputs, import_job_id=job.pk)
        except QuotaExceeded as exc:
            locked.status = ImportJob.Status.FAILED
            locked.failure = (
                f"{exc} Stopped after {locked.processed_rows} rows; upgrade the plan or wait "
                f"until {exc.resets_at:%Y-%m-%d}."
            )
            locked.finished_at = timezone.now()
            locked.save(update_fields=["status", "failure", "finished_at"])
            job.status = locked.status
            return False
        for index, item_errors in result.errors.items():
            errors += [
                {"row": numbers[index], "field": f, "reason": r}
                for f, rs in item_errors.items()
                for r in rs
            ]
        locked.processed_rows += len(chunk)
        locked.created_count += len(result.created)
        locked.duplicate_count += len(result.existing)
        locked.error_count += len({e["row"] for e in errors})
        room = MAX_STORED_ERRORS - len(locked.errors)
        locked.errors = locked.errors + errors[: max(room, 0)]
        locked.save(
            update_fields=[
                "processed_rows",
                "created_count",
                "duplicate_count",
                "error_count",
                "errors",
            ]
        )
    job.processed_rows = locked.processed_rows
    return True


def import_fail(*, org: Organization, job_id: int, reason: str) -> None:
    """Mark an import failed after the worker gave up on it."""
    ImportJob.objects.for_org(org).filter(pk=job_id).exclude(
        status=ImportJob.Status.SUCCEEDED
    ).update(status=ImportJob.Status.FAILED, failure=reason[:2000], finished_at=timezone.now())


def import_errors_csv(*, job: ImportJob) -> str:
    """The row error report as CSV text (row, field, reason), cells neutralised for Excel."""
    from feedback.exports import safe_cell

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "field", "reason"])
    for error in job.errors:
        writer.writerow(
            [error["row"], safe_cell(str(error["field"])), safe_cell(str(error["reason"]))]
        )
    if job.error_count > len(job.errors):
        writer.writerow(["", "", f"... and more; only the first {len(job.errors)} are listed"])
    return out.getvalue()
