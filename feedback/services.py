"""Writes for feedback: ingestion (single, batch, import rows), review, deletion, quotas.

Every ingestion path goes through `feedback_ingest`: validate, de-duplicate by external_id,
classify in one batch, take quota and insert in one transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import signals
from django.db.models.base import DEFERRED, ModelState
from django.utils import timezone

from feedback.models import Feedback, ReviewEvent, ReviewStatus, Sentiment, UsagePeriod
from inference.classify import CATEGORY_CHECK_SECONDS, category_model_for_version, classify
from inference.selectors import active_category_version_id
from tenants.models import Organization, User
from tenants.postgresql.base import prepared_cursor

MAX_TEXT_CHARS = 10_000
MAX_SOURCE_CHARS = 50
MAX_EXTERNAL_ID_CHARS = 200
MAX_AUTHOR_REF_CHARS = 200
MAX_METADATA_BYTES = 16 * 1024
MAX_BATCH_ITEMS = 1_000
RECATEGORIZE_BATCH = 500

logger = logging.getLogger(__name__)


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
    # Most items carry no metadata: "{}" is within every limit.
    encoded = json.dumps(item.metadata, ensure_ascii=False) if item.metadata else "{}"
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        size = len(encoded.encode())
        errors["metadata"] = [f"Metadata is {size} bytes; the maximum is {MAX_METADATA_BYTES}."]
    elif "\\u0000" in encoded:
        # PostgreSQL's jsonb cannot store NUL characters.
        errors["metadata"] = ["Metadata must not contain NUL characters."]
    submitted_at = item.submitted_at
    if submitted_at is not None and timezone.is_naive(submitted_at):
        submitted_at = timezone.make_aware(submitted_at, dt.UTC)
    if (
        text is item.text
        and source is item.source
        and external_id is item.external_id
        and submitted_at is item.submitted_at
        and len(item.author_ref) == len(item.author_ref.strip())
    ):
        return item, errors  # already clean (the API's items are): nothing to rebuild
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
    (tested). Django's keyword path costs ~24 µs a record and its positional one ~10 µs, more
    than inference for a 1,000-item batch; a record is its ``__dict__`` and a ``ModelState``,
    so each is a copy of a template's with the item's and prediction's values. That skips
    ``Model.__init__`` and with it the ``pre_init``/``post_init`` signals, so while anything
    listens to those for Feedback, the positional path runs instead."""
    template = Feedback(organization=org, received_at=timezone.now(), import_job_id=import_job_id)
    if signals.pre_init.has_listeners(Feedback) or signals.post_init.has_listeners(Feedback):
        return _new_records_positional(template, to_create, predictions)
    # Fields the keyword path leaves unset (the generated search vector) stay unset.
    base = {name: value for name, value in template.__dict__.items() if name != "_state"}
    rows: list[Feedback] = []
    new = Feedback.__new__
    for (_, item), prediction in zip(to_create, predictions, strict=True):
        values = base.copy()
        for name in _ITEM_FIELDS:
            values[name] = getattr(item, name)
        for name in _PREDICTION_FIELDS:
            values[name] = getattr(prediction, name)
        values["reasons"] = list(prediction.reasons)
        state = ModelState()
        state.fields_cache = {"organization": org}  # as assigning the org does
        values["_state"] = state
        record = new(Feedback)
        record.__dict__ = values
        rows.append(record)
    return rows


def _new_records_positional(
    template: Feedback, to_create: list[tuple[int, FeedbackInput]], predictions: Sequence[Any]
) -> list[Feedback]:
    attnames = [f.attname for f in Feedback._meta.concrete_fields]
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
        record.organization = template.organization  # caches the org as the keyword path does
        rows.append(record)
    return rows


@functools.cache
def _insert_sql(*, within_quota: bool, one_row: bool) -> tuple[str, list[models.Field[Any, Any]]]:
    """The INSERT of :func:`_insert_rows` and the fields whose columns it takes, in order.

    Two statements, each prepared once per connection. Many rows: each column travels as one
    array parameter and ``unnest`` turns the arrays back into rows (as Django's bulk_create does
    when it can; it cannot here because of the array field), so one statement serves every
    batch size. One row (the API's common case): a plain VALUES row, ~0.1 ms cheaper than
    sending 25 one-element arrays. JSON values travel as text and are cast; an array value as
    its array literal text. Types lose their length (``varchar``, not ``varchar(50)``), as in
    Django, so that a cast never truncates: the column itself refuses a value too long.
    ``within_quota`` adds the month's quota upsert as a CTE and inserts only if it took the
    quota (six parameters first, see the caller).
    """
    meta = Feedback._meta
    fields = [f for f in meta.concrete_fields if not f.generated and not f.primary_key]
    qn = connection.ops.quote_name
    sent_as: list[str] = []
    values: list[str] = []
    for i, f in enumerate(fields):
        column = f"c{i}"
        if isinstance(f, models.JSONField):
            sent_as.append("text")
            values.append(f"{column}::jsonb")
        elif f.get_internal_type() == "ArrayField":
            sent_as.append("text")
            values.append(f"{column}::{_without_length(f)}")
        else:
            sent_as.append(_without_length(f))
            values.append(column)
    if one_row:
        source = "(VALUES (" + ", ".join(f"%s::{t}" for t in sent_as) + "))"
    else:
        # Binary arrays (%b): psycopg's text format escapes every element with a regex.
        source = "unnest(" + ", ".join(f"%b::{t}[]" for t in sent_as) + ")"
    names = ", ".join(f"c{i}" for i in range(len(fields)))
    columns = ", ".join(qn(str(f.column)) for f in fields)
    # Table and column names come from the models; every value is a parameter.
    insert = (
        f"INSERT INTO {qn(meta.db_table)} ({columns})"  # noqa: S608  # nosec B608 # names from the models; values are params
        f" SELECT {', '.join(values)} FROM {source} AS v({names})"
    )
    if within_quota:
        usage = qn(UsagePeriod._meta.db_table)
        insert = (
            f"WITH quota AS (INSERT INTO {usage} (organization_id, month, items)"  # noqa: S608  # nosec B608 # names from the models; values are params
            f" SELECT %s, %s, %s WHERE %s <= %s ON CONFLICT (organization_id, month)"
            f" DO UPDATE SET items = {usage}.items + EXCLUDED.items"
            f" WHERE {usage}.items + EXCLUDED.items <= %s RETURNING 1) "
            f"{insert} WHERE EXISTS (SELECT 1 FROM quota)"
        )
    # RETURNING follows the order of the rows, as Django's bulk_create relies on too.
    return f"{insert} RETURNING {qn(str(meta.pk.column))}", fields


def _without_length(f: models.Field[Any, Any]) -> str:
    """The field's column type without its length or precision: ``varchar(32)[]`` ->
    ``varchar[]`` (an explicit cast to ``varchar(32)`` would cut a longer value silently; the
    column's own assignment cast refuses it)."""
    return re.sub(r"\([^)]*\)", "", str(f.db_type(connection)))


def _column_params(rows: list[Feedback], fields: list[models.Field[Any, Any]]) -> list[Any]:
    """One list per field: the rows' values as the statement of :func:`_insert_sql` takes them.

    The values are the attributes as they are, which for these fields is what
    ``get_db_prep_save`` would return (str, int, float, bool, datetime, None), at a fraction of
    its cost per value; JSON as JSON text, a list of strings as an array literal.
    """
    states = [record.__dict__ for record in rows]
    # Every row of a batch shares one model_versions dict: encode each object once.
    encoded: dict[int, tuple[object, str]] = {}

    def dumped(value: object) -> str:
        hit = encoded.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        text = json.dumps(value)
        encoded[id(value)] = (value, text)
        return text

    params: list[Any] = []
    for f in fields:
        column = [state[f.attname] for state in states]
        if isinstance(f, models.JSONField):
            column = [None if v is None else dumped(v) for v in column]
        elif f.get_internal_type() == "ArrayField":
            column = [None if v is None else _array_literal(v) for v in column]
        params.append(column)
    return params


def _array_literal(values: Sequence[str | None]) -> str:
    """PostgreSQL's text form of an array of strings: ``["a", 'say "hi"']`` ->
    ``{"a","say \\"hi\\""}`` (every element quoted, backslash and double quote escaped)."""
    quoted = (
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    )
    return "{" + ",".join(quoted) + "}"


def _insert_within_quota(org: Organization, rows: list[Feedback]) -> list[Feedback] | None:
    """Take quota for and insert rows in one statement, or None to take the long way.

    The common case of the API (an item or a batch that fits the month's quota) would
    otherwise cost four round trips: BEGIN, the quota upsert, the INSERT and COMMIT. Here the
    upsert is a CTE of the INSERT, which inserts only if the upsert took the quota: one
    statement, atomic on its own. It runs only outside a transaction (a failed statement would
    abort the caller's) and returns None, having changed nothing, when the rows do not all fit;
    the caller then takes what fits under a row lock.
    """
    if connection.in_atomic_block:
        return None
    quota = int(settings.PLAN_LIMITS[org.plan]["items_per_month"])
    quota_params = [org.pk, _month_start(timezone.now()), len(rows), len(rows), quota, quota]
    return _insert_rows(rows, within_quota=True, first_params=quota_params) or None


def _insert(rows: list[Feedback]) -> list[Feedback]:
    """Insert rows (inside the caller's transaction, quota already taken) and set their ids."""
    return _insert_rows(rows, within_quota=False, first_params=[])


def _insert_rows(
    rows: list[Feedback], *, within_quota: bool, first_params: list[Any]
) -> list[Feedback]:
    """Insert rows with one prepared statement (:func:`_insert_sql`); the stored rows, or none
    when ``within_quota`` and the quota did not take them."""
    if not rows:
        return []
    one_row = len(rows) == 1
    sql, fields = _insert_sql(within_quota=within_quota, one_row=one_row)
    columns = _column_params(rows, fields)
    params = [column[0] for column in columns] if one_row else columns
    # Prepared: the API runs this statement on every request, and a batch's would otherwise be
    # parsed and planned anew each time.
    with prepared_cursor() as cursor:
        cursor.execute(sql, [*first_params, *params])
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return []
    for record, pk in zip(rows, ids, strict=True):
        record.pk = pk
        record._state.adding = False
        record._state.db = connection.alias
    return rows


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


def feedback_recategorize(
    *,
    org: Organization,
    version_id: int,
    batch_size: int = RECATEGORIZE_BATCH,
    settle_until: dt.datetime | None = None,
) -> int:
    """Give the org's stored feedback the categories of its category model ``version_id`` (the
    worker's half of an activation or rollback); returns how many rows changed.

    Walks the org's feedback by id in batches, each its own transaction, so progress survives
    a crash and a retried job skips the rows this version already labelled. Stops as soon as
    ``version_id`` is no longer the org's active version: the activation that replaced it
    queued its own run. Web processes notice an activation within CATEGORY_CHECK_SECONDS, and
    items ingested meanwhile get the previous model's category; so the walk does not end
    before ``settle_until`` (the activation time plus that delay), and rows arriving until
    then are walked too. Reviewers' corrections (``corrected_category``) are left alone.
    """
    model = category_model_for_version(version_id)
    if model is None:
        return 0
    changed = 0
    after = 0
    while active_category_version_id(org_id=org.pk) == version_id:
        batch = list(
            Feedback.objects.for_org(org)
            .filter(pk__gt=after)
            .order_by("pk")
            .only("pk", "text", "model_versions")[:batch_size]
        )
        if not batch:
            wait = (settle_until - timezone.now()).total_seconds() if settle_until else 0.0
            if wait <= 0:
                break
            time.sleep(min(wait, CATEGORY_CHECK_SECONDS))
            continue
        after = batch[-1].pk
        stale = [f for f in batch if f.model_versions.get("category") != model.version]
        if not stale:
            continue
        for record, (label, score) in zip(
            stale, model.predict([f.text for f in stale]), strict=True
        ):
            record.category = label
            record.category_score = score
            record.model_versions = {**record.model_versions, "category": model.version}
        with transaction.atomic():
            Feedback.objects.bulk_update(stale, ["category", "category_score", "model_versions"])
        changed += len(stale)
    logger.info(
        "recategorized %d feedback items of org %s with version %s", changed, org.pk, version_id
    )
    return changed
