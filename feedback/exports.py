"""CSV export of feedback, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping

from django.db.models import QuerySet

from feedback.models import Feedback
from tenants.audit import audit_record
from tenants.models import AuditAction, Organization

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")

EXPORT_COLUMNS = (
    "id",
    "received_at",
    "submitted_at",
    "source",
    "external_id",
    "text",
    "sentiment",
    "sentiment_score",
    "language",
    "category",
    "flagged",
    "reasons",
    "status",
)


def safe_cell(value: str) -> str:
    """Neutralise cells a spreadsheet would run as a formula (CSV injection)."""
    if value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _row(fb: Feedback) -> list[str]:
    sentiment = fb.corrected_sentiment or fb.sentiment
    values = [
        str(fb.pk),
        fb.received_at.isoformat(),
        fb.submitted_at.isoformat() if fb.submitted_at else "",
        fb.source,
        fb.external_id or "",
        fb.text,
        sentiment,
        f"{fb.sentiment_scores.get(sentiment, 0.0):.4f}",
        fb.language,
        fb.corrected_category or fb.category or "",
        "yes" if fb.flagged else "no",
        " ".join(fb.reasons),
        fb.status,
    ]
    return [safe_cell(v) for v in values]


def feedback_csv_lines(rows: Iterable[Feedback]) -> Iterator[str]:
    """Stream CSV lines (with a BOM so Excel reads UTF-8) for the given records."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(EXPORT_COLUMNS)
    for fb in rows:
        writer.writerow(_row(fb))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def feedback_export_csv(
    *, org: Organization, rows: QuerySet[Feedback], filters: Mapping[str, str]
) -> Iterator[str]:
    """The org's feedback `rows` as streamed CSV lines; the download (with the filters that
    chose the rows) is recorded in the org's audit trail before anything is sent."""
    audit_record(
        org=org,
        action=AuditAction.EXPORT_DOWNLOADED,
        target_type="feedback",
        target_label="feedback CSV",
        metadata={"export": "feedback", "format": "csv", "filters": dict(filters)},
    )
    return feedback_csv_lines(rows.iterator(chunk_size=2000))
