"""Writes for feedback: ingestion (single, batch, import rows), review, deletion, quotas.

Every ingestion path goes through `feedback_ingest`: validate, de-duplicate by external_id,
classify in one batch, take quota and insert in one transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models.base import DEFERRED
from django.utils import timezone

from feedback.models import Feedback, ReviewEvent, ReviewStatus, Sentiment, UsagePeriod
from inference.classify import classify
from tenants.models import Organization, User
from tenants.postgresql.base import prepared_cursor

MAX_TEXT_CHARS = 10_000
MAX_SOURCE_CHARS = 50
MAX_EXTERNAL_ID_CHARS = 200
MAX_AUTHOR_REF_CHARS = 200
MAX_METADATA_BYTES = 16 * 1024
MAX_BATCH_ITEMS = 1_000


@dataclass(frozen=True)
class FeedbackInput:
    text: str
    source: str = "api"
    external_id: str | None = None
    submitted_at: dt.datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    author_ref: str = ""
    import_row: int | None = None


@dataclass
class IngestResult:
    """Outcome per input index: a stored record (new or existing) or field errors."""

    created: dict[int, Feedback] = field(default_factory=dict)
    existing: dict[int, Feedback] = field(default_factory=dict)
    errors: dict[int, dict[str, list[str]]] = field(default_factory=dict)


class QuotaExceeded(Exception):
    def __init__(self, *, quota: int, used: int, resets_at: dt.datetime) -> None:
        super().__init__(f"Monthly quota of {quota} items reached ({used} used).")
        self.quota = quota
        self.used = used
        self.resets_at = resets_at


def feedback_validate(item: FeedbackInput) -> tuple[FeedbackInput, dict[str, list[str]]]:
    """Trim and check one input against the record's rules; returns it cleaned, or errors."""
    errors: dict[str, list[str]] = {}
    text = item.text.strip()
    if "\x00" in text:
        errors["text"] = ["Text must not contain NUL characters."]
    elif not text:
        errors["text"] = ["Text is empty."]
    elif len(text) > MAX_TEXT_CHARS:
        errors["text"] = [f"Text is {len(text)} characters; the maximum is {MAX_TEXT_CHARS}."]
    source = (item.source or "api").strip()
    if len(source) > MAX_SOURCE_CHARS:
        errors["source"] = [f"Use at most {MAX_SOURCE_CHARS} characters."]
    external_id = item.external_id.strip() if item.external_id else None
    if external_id is not None and len(external_id) > MAX_EXTERNAL_ID_CHARS:
        errors["external_id"] = [f"Use at most {MAX_EXTERNAL_ID_CHARS} characters."]
    if len(item.author_ref) > MAX_AUTHOR_REF_CHARS:
        errors["author_ref"] = [f"Use at most {MAX_AUTHOR_REF_CHARS} characters."]
    encoded = json.dumps(item.metadata, ensure_ascii=False)
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        size = len(encoded.encode())
        errors["metadata"] = [f"Metadata is {size} bytes; the maximum is {MAX_METADATA_BYTES}."]
    elif "\\u0000" in encoded:
        # PostgreSQL's jsonb cannot store NUL characters.
        errors["metadata"] = ["Metadata must not contain NUL characters."]
    submitted_at = item.submitted_at
    if submitted_at is not None and timezone.is_naive(submitted_at):
        submitted_at = timezone.make_aware(submitted_at, dt.UTC)
    cleaned = FeedbackInput(
        text=text,
        source=source or "api",
        external_id=external_id or None,
        submitted_at=submitted_at,
        metadata=item.metadata,
        author_ref=item.author_ref.strip(),
        import_row=item.import_row,
    )
    return cleaned, errors


def _month_start(now: dt.datetime) -> dt.date:
    return now.date().replace(day=1)


def _next_month(now: dt.datetime) -> dt.datetime:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + dt.timedelta(days=32)).replace(day=1)


def _take_quota(org: Organization, wanted: int) -> int:
    """Reserve up to `wanted` items of this month's quota (inside the caller's transaction).

    One upsert in the common case; its row lock lasts until the caller's transaction ends, so
    two ingests of the same org cannot both take the last items.
    """
    quota = int(settings.PLAN_LIMITS[org.plan]["items_per_month"])
    month = _month_start(timezone.now())
    table = connection.ops.quote_name(UsagePeriod._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (organization_id, month, items) "  # nosec B608 # names from the model; values are params
            f"SELECT %s, %s, %s WHERE %s <= %s "
            f"ON CONFLICT (organization_id, month) DO UPDATE "
            f"SET items = {table}.items + EXCLUDED.items "
            f"WHERE {table}.items + EXCLUDED.items <= %s RETURNING items",
            [org.pk, month, wanted, wanted, quota, quota],
        )
        if cursor.fetchone() is not None:
            return wanted
    # Not all of it fits: take what is left, under the row's lock.
    usage, _ = UsagePeriod.objects.select_for_update().get_or_create(organization=org, month=month)
    allowed = max(0, min(wanted, quota - usage.items))
    if allowed:
        usage.items += allowed
        usage.save(update_fields=["items"])
    return allowed


def feedback_ingest(
    *, org: Organization, items: Sequence[FeedbackInput], import_job_id: int | None = None
) -> IngestResult:
    """Store valid items (classified on arrival); report the rest by index.

    Items whose external_id already exists (in the org, or earlier in this batch) resolve to
    the existing record instead of a duplicate. Over the monthly quota, the remaining items are
    reported with a `quota` error; if nothing at all fits, QuotaExceeded is raised.
    """
    result = IngestResult()
    valid: list[tuple[int, FeedbackInput]] = []
    for index, raw in enumerate(items):
        item, errors = feedback_validate(raw)
        if errors:
            result.errors[index] = errors
        else:
            valid.append((index, item))

    to_create, repeats, first_in_batch = _partition_known(org, valid, result)
    if not to_create:
        return result

    predictions = classify(org_id=org.pk, texts=[item.text for _, item in to_create])
    rows = _new_records(org, to_create, predictions, import_job_id)
    try:
        stored = _insert_within_quota(org, rows)
        if stored is None:
            with transaction.atomic():
                allowed = _take_quota(org, len(rows))
                if allowed == 0:
                    now = timezone.now()
                    quota = int(settings.PLAN_LIMITS[org.plan]["items_per_month"])
                    raise QuotaExceeded(quota=quota, used=quota, resets_at=_next_month(now))
                stored = _insert(rows[:allowed])
        allowed = len(stored)
    except IntegrityError:
        # Another request stored one of these external_ids meanwhile: go one by one.
        return _ingest_one_by_one(org, to_create, rows, result, repeats)
    for (index, _), fb in zip(to_create[:allowed], stored, strict=True):
        result.created[index] = fb
    for index, _item in to_create[allowed:]:
        result.errors[index] = {"quota": ["The organization's monthly item quota is used up."]}
    _resolve_repeats(result, repeats, first_in_batch)
    return result


COPY_THRESHOLD = 50

# Per item, in the order of Feedback's concrete fields: what comes from the input and the
# prediction. Every other field keeps the value Django gives a new record.
_ITEM_FIELDS = (
    "text",
    "source",
    "external_id",
    "author_ref",
    "submitted_at",
    "metadata",
    "import_row",
)
_PREDICTION_FIELDS = (
    "sentiment",
    "sentiment_scores",
    "language",
    "language_score",
    "category",
    "category_score",
    "anomaly_score",
    "flagged",
    "reasons",
    "model_versions",
)


def _new_records(
    org: Organization,
    to_create: list[tuple[int, FeedbackInput]],
    predictions: Sequence[Any],
    import_job_id: int | None,
) -> list[Feedback]:
    """Unsaved records for the items, equal to ``Feedback(organization=org, text=..., ...)``
    (tested), built positionally from a template: Django's keyword path costs ~24 µs a record,
    more than inference, for a 1,000-item batch."""
    template = Feedback(organization=org, received_at=timezone.now(), import_job_id=import_job_id)
    attnames = [f.attname for f in Feedback._meta.concrete_fields]
    # Fields the keyword path leaves unset (the generated search vector) stay unset.
    base = [template.__dict__.get(name, DEFERRED) for name in attnames]
    item_at = [(attnames.index(name), name) for name in _ITEM_FIELDS]
    prediction_at = [(attnames.index(name), name) for name in _PREDICTION_FIELDS]
    reasons_at = attnames.index("reasons")
    rows: list[Feedback] = []
    for (_, item), prediction in zip(to_create, predictions, strict=True):
        values = base.copy()
        for index, name in item_at:
            values[index] = getattr(item, name)
        for index, name in prediction_at:
            values[index] = getattr(prediction, name)
        values[reasons_at] = list(prediction.reasons)
        # Positional construction (Django's fast path); the stubs only know keyword calls.
        record: Feedback = cast(Any, Feedback)(*values)
        record.organization = org  # caches the org as the keyword path does
        rows.append(record)
    return rows


@functools.lru_cache(maxsize=COPY_THRESHOLD)
def _insert_within_quota_sql(n_rows: int) -> tuple[str, list[Any]]:
    """The statement of :func:`_insert_within_quota` for ``n_rows`` rows, and the fields whose
    values follow the six quota parameters, row after row (built once per row count)."""
    meta = Feedback._meta
    fields = [f for f in meta.concrete_fields if not f.generated and not f.primary_key]
    qn = connection.ops.quote_name
    usage = qn(UsagePeriod._meta.db_table)
    # Typed placeholders: VALUES in a SELECT does not take its types from the target columns.
    row_sql = "(" + ", ".join(f"%s::{f.db_type(connection)}" for f in fields) + ")"
    columns = ", ".join(qn(str(f.column)) for f in fields)
    values = ", ".join([row_sql] * n_rows)
    # Table and column names come from the models; every value is a parameter.
    sql = (
        f"WITH quota AS (INSERT INTO {usage} (organization_id, month, items)"  # noqa: S608  # nosec B608 # names from the models; values are params
        f" SELECT %s, %s, %s WHERE %s <= %s ON CONFLICT (organization_id, month)"
        f" DO UPDATE SET items = {usage}.items + EXCLUDED.items"
        f" WHERE {usage}.items + EXCLUDED.items <= %s RETURNING 1)"
        f" INSERT INTO {qn(meta.db_table)} ({columns})"
        f" SELECT * FROM (VALUES {values}) AS v"
        f" WHERE EXISTS (SELECT 1 FROM quota) RETURNING {qn(str(meta.pk.column))}"
    )
    return sql, fields


def _insert_within_quota(org: Organization, rows: list[Feedback]) -> list[Feedback] | None:
    """Take quota for and insert a few rows in one statement, or None to take the long way.

    The common case of the API (one item, or a short batch, that fits the month's quota) would
    otherwise cost four round trips: BEGIN, the quota upsert, the INSERT and COMMIT. Here the
    upsert is a CTE of the INSERT, which inserts only if the upsert took the quota: one
    statement, atomic on its own. It runs only outside a transaction (a failed statement would
    abort the caller's), for fewer than COPY_THRESHOLD rows, and returns None, having changed
    nothing, when the rows do not all fit; the caller then takes what fits under a row lock.
    """
    if connection.in_atomic_block or len(rows) >= COPY_THRESHOLD:
        return None
    quota = int(settings.PLAN_LIMITS[org.plan]["items_per_month"])
    sql, fields = _insert_within_quota_sql(len(rows))
    params: list[Any] = [org.pk, _month_start(timezone.now()), len(rows), len(rows), quota, quota]
    for record in rows:
        params.extend(f.get_db_prep_save(getattr(record, f.attname), connection) for f in fields)
    # Prepared: the API runs this statement on every request (parsing and planning it is a
    # third of its time).
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        # RETURNING follows the VALUES order here, as Django's bulk_create relies on too.
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return None
    for record, pk in zip(rows, ids, strict=True):
        record.pk = pk
        record._state.adding = False
        record._state.db = connection.alias
    return rows


def _insert(rows: list[Feedback]) -> list[Feedback]:
    """Insert rows and set their ids. Large batches go through COPY: building and parsing a
    30,000-parameter INSERT costs more than the inference for the same batch."""
    if len(rows) < COPY_THRESHOLD:
        return Feedback.objects.bulk_create(rows)
    meta = Feedback._meta
    fields = [f for f in meta.concrete_fields if not f.generated and not f.primary_key]
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in [meta.pk, *fields])
    with connection.cursor() as cursor:
        # Ids come from the table's own sequence, so COPY can write them and we know them.
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [meta.db_table, len(rows)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        # PostgreSQL refuses COPY FROM into a table under row-level security (tenants/rls.py):
        # COPY into a bare temporary table, then INSERT … SELECT, which the policy checks.
        stage = f"CREATE TEMP TABLE {_STAGING} AS SELECT {columns} FROM {table} WITH NO DATA"  # noqa: S608  # nosec B608 # names from the model
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{_STAGING}; {stage}")
        attnames = [f.attname for f in fields]
        json_at = [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
        # Every row of a batch shares one model_versions dict: encode each object once.
        encoded: dict[int, tuple[object, str]] = {}

        def dumped(value: object) -> str:
            hit = encoded.get(id(value))
            if hit is not None and hit[0] is value:
                return hit[1]
            text = json.dumps(value)
            encoded[id(value)] = (value, text)
            return text

        with cursor.cursor.copy(f"COPY {_STAGING} ({columns}) FROM STDIN") as copy:
            for record, pk in zip(rows, ids, strict=True):
                record.pk = pk
                # COPY's text format takes JSON as its text and every other value of these
                # fields as it is (str, int, float, bool, datetime, list of str, None), which
                # is what get_db_prep_save would return, at a fraction of its cost per field.
                values = [pk, *map(record.__dict__.__getitem__, attnames)]
                for i in json_at:
                    values[i + 1] = dumped(values[i + 1])
                copy.write_row(values)
        insert = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {_STAGING}"  # noqa: S608  # nosec B608 # names from the model
        cursor.execute(f"{insert}; DROP TABLE {_STAGING}")
    for record in rows:
        record._state.adding = False
        record._state.db = connection.alias
    return rows


_STAGING = "puna_feedback_copy"


def _partition_known(
    org: Organization, valid: list[tuple[int, FeedbackInput]], result: IngestResult
) -> tuple[list[tuple[int, FeedbackInput]], list[tuple[int, str]], dict[str, int]]:
    """Split items into new ones, repeats of an earlier item in the batch, and ones whose
    external_id the org already has (recorded in `result.existing`)."""
    external_ids = {item.external_id for _, item in valid if item.external_id}
    known = (
        {
            fb.external_id: fb
            for fb in Feedback.objects.for_org(org).filter(external_id__in=external_ids)
        }
        if external_ids
        else {}
    )
    to_create: list[tuple[int, FeedbackInput]] = []
    first_in_batch: dict[str, int] = {}
    repeats: list[tuple[int, str]] = []
    for index, item in valid:
        if item.external_id and item.external_id in known:
            result.existing[index] = known[item.external_id]
        elif item.external_id and item.external_id in first_in_batch:
            repeats.append((index, item.external_id))
        else:
            if item.external_id:
                first_in_batch[item.external_id] = index
            to_create.append((index, item))
    return to_create, repeats, first_in_batch


def _resolve_repeats(
    result: IngestResult, repeats: list[tuple[int, str]], first_in_batch: dict[str, int]
) -> None:
    for index, external_id in repeats:
        first = first_in_batch[external_id]
        record = result.created.get(first) or result.existing.get(first)
        if record is not None:
            result.existing[index] = record
        else:
            result.errors[index] = result.errors.get(first, {"external_id": ["Not stored."]})


def _ingest_one_by_one(
    org: Organization,
    to_create: list[tuple[int, FeedbackInput]],
    rows: list[Feedback],
    result: IngestResult,
    repeats: list[tuple[int, str]],
) -> IngestResult:
    first_in_batch: dict[str, int] = {}
    for (index, item), row in zip(to_create, rows, strict=True):
        if item.external_id:
            first_in_batch[item.external_id] = index
        try:
            with transaction.atomic():
                if _take_quota(org, 1) == 0:
                    result.errors[index] = {
                        "quota": ["The organization's monthly item quota is used up."]
                    }
                    continue
                row.save(force_insert=True)
            result.created[index] = row
        except IntegrityError:
            existing = Feedback.objects.for_org(org).filter(external_id=item.external_id).first()
            if existing is None:
                raise
            result.existing[index] = existing
    _resolve_repeats(result, repeats, first_in_batch)
    return result


REVIEW_FIELDS = ("corrected_sentiment", "corrected_category", "status")


@transaction.atomic
def feedback_review(
    *, org: Organization, feedback: Feedback, actor: User | None, changes: dict[str, Any]
) -> Feedback:
    """Apply human review (corrections and status), record who did it, and feed corrections
    of the category back into the org's training examples."""
    unknown = set(changes) - set(REVIEW_FIELDS)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in unknown})
    if "corrected_sentiment" in changes and changes["corrected_sentiment"] not in (
        None,
        *Sentiment.values,
    ):
        raise ValidationError({"corrected_sentiment": [f"Choose one of {Sentiment.values}."]})
    if "status" in changes and changes["status"] not in ReviewStatus.values:
        raise ValidationError({"status": [f"Choose one of {ReviewStatus.values}."]})
    from inference.selectors import label_set_for_corrections

    label_set = label_set_for_corrections(org=org)
    category = changes.get("corrected_category")
    if category is not None and (label_set is None or category not in label_set.labels):
        allowed = label_set.labels if label_set else []
        raise ValidationError({"corrected_category": [f"Choose one of {allowed}."]})
    diff = {
        name: [getattr(feedback, name), value]
        for name, value in changes.items()
        if getattr(feedback, name) != value
    }
    if not diff:
        return feedback
    for name, (_, value) in diff.items():
        setattr(feedback, name, value)
    if "status" not in changes and feedback.status == ReviewStatus.NEW:
        feedback.status = ReviewStatus.REVIEWED
        diff["status"] = [ReviewStatus.NEW, ReviewStatus.REVIEWED]
    feedback.reviewed_by = actor
    feedback.reviewed_at = timezone.now()
    feedback.save(update_fields=[*diff.keys(), "reviewed_by", "reviewed_at"])
    ReviewEvent.objects.create(organization=org, feedback=feedback, actor=actor, changes=diff)
    if category is not None and label_set is not None:
        from inference.models import CategoryExample
        from inference.services import example_add

        example_add(
            org=org,
            label_set=label_set,
            text=feedback.text,
            label=category,
            created_by=actor,
            source=CategoryExample.Source.CORRECTION,
            feedback_id=feedback.pk,
        )
    return feedback


def feedback_bulk_status(
    *, org: Organization, ids: Sequence[int], status: str, actor: User | None
) -> int:
    """Set the review status of several of the org's items; returns how many changed."""
    if status not in ReviewStatus.values:
        raise ValidationError({"status": [f"Choose one of {ReviewStatus.values}."]})
    changed = 0
    for fb in Feedback.objects.for_org(org).filter(pk__in=list(ids)).exclude(status=status):
        feedback_review(org=org, feedback=fb, actor=actor, changes={"status": status})
        changed += 1
    return changed


def feedback_delete(*, feedback: Feedback) -> None:
    """Delete a record for good (e.g. on a data-subject request)."""
    feedback.delete()
