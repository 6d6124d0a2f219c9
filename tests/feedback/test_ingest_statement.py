"""Outside a transaction, a small ingest takes its quota and inserts in one statement.

These tests commit (transactional_db): inside a test transaction the service takes the long
path, which the rest of the suite covers.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback import services
from feedback.models import Feedback, UsagePeriod
from feedback.services import FeedbackInput, IngestResult
from inference.classify import classify
from tenants.context import org_context
from tenants.models import Organization
from tests.factories import make_org

pytestmark = pytest.mark.django_db(transaction=True)


def _ingest(org: Organization, *texts: str, external_id: str | None = None) -> IngestResult:
    items = [FeedbackInput(text=t, external_id=external_id) for t in texts]
    with org_context(org):
        return services.feedback_ingest(org=org, items=items)


def _used(org: Organization) -> int:
    with org_context(org):
        return sum(UsagePeriod.objects.filter(organization=org).values_list("items", flat=True))


def test_one_statement_takes_quota_and_stores_the_rows_in_order():
    org = make_org(name="Statement School", slug="statement")
    assert not connection.in_atomic_block
    with CaptureQueriesContext(connection) as queries:
        result = _ingest(org, "first one", "second one", "third one")
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
    assert len(inserts) == 1
    # Prepared (server-side binding): the log shows the statement and its parameters apart.
    assert inserts[0].startswith("QUERY = 'WITH quota AS")
    assert not any(q["sql"] in ("BEGIN", "COMMIT") for q in queries.captured_queries)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(statement.startswith("WITH quota AS") for statement in prepared)
    stored = [result.created[i] for i in range(3)]
    with org_context(org):
        for record in stored:
            assert Feedback.objects.get(pk=record.pk).text == record.text
    assert [r.text for r in stored] == ["first one", "second one", "third one"]
    assert _used(org) == 3


def test_rows_that_do_not_all_fit_take_the_locked_path_and_store_what_fits(settings):
    org = make_org(name="Quota School", slug="quota-school")
    limits = {**settings.PLAN_LIMITS["free"], "items_per_month": 4}
    settings.PLAN_LIMITS = {**settings.PLAN_LIMITS, "free": limits}
    org.plan = "free"
    _ingest(org, "one", "two", "three")
    result = _ingest(org, "four", "five")
    assert list(result.created) == [0]
    assert "quota" in result.errors[1]
    assert _used(org) == 4
    with org_context(org):
        assert Feedback.objects.filter(organization=org).count() == 4


def test_a_known_external_id_resolves_to_the_existing_record():
    org = make_org(name="Repeat School", slug="repeat-school")
    first = _ingest(org, "once only", external_id="ext-1").created[0]
    again = _ingest(org, "once only", external_id="ext-1")
    assert again.existing[0].pk == first.pk
    assert _used(org) == 1


# Values that a text protocol would have to escape, in every kind of column the INSERT takes.
_AWKWARD = [
    'She said "no" \\ then left; {braces}, NULL',
    "Mabagal ang wifi 😤 sa library… ñ, ü, 中文",
    "spam spam spam spam spam spam spam spam spam spam http://bit.ly/x",
    "ANG INIT SOBRA!!! WALANG AIRCON!!! AYUSIN NIYO!!!",
]


def _stored_equal(org: Organization, records: list[Feedback]) -> None:
    fields = [f.attname for f in Feedback._meta.concrete_fields if not f.generated]
    with org_context(org):
        fresh = {fb.pk: fb for fb in Feedback.objects.filter(pk__in=[r.pk for r in records])}
    assert len(fresh) == len(records)
    for record in records:
        stored = fresh[record.pk]
        assert {f: getattr(stored, f) for f in fields} == {f: getattr(record, f) for f in fields}


@pytest.mark.parametrize("count", [1, 2, 130])
@pytest.mark.parametrize("in_transaction", [False, True])
def test_every_value_is_stored_exactly(in_transaction: bool, count: int) -> None:
    """The INSERT (a VALUES row for one item, arrays for more): what is read back equals what
    was built, for JSON, arrays, time stamps, NULLs and text that needs escaping."""
    org = make_org(name="Batch School", slug=f"batch-{in_transaction}-{count}")
    items = [
        FeedbackInput(
            text=f"{_AWKWARD[i % len(_AWKWARD)]} #{i}",
            source="csv" if i % 2 else "api",
            external_id=f"ext-{i}" if i % 3 else None,
            submitted_at=timezone.now() - dt.timedelta(days=i) if i % 5 else None,
            metadata={"row": i, "note": 'quote " and \\ backslash', "nested": {"ok": [1, None]}}
            if i % 4
            else {},
            author_ref=f"student-{i}" if i % 7 else "",
        )
        for i in range(1, count + 1)
    ]
    with org_context(org):
        if in_transaction:  # the path under the quota's row lock
            with transaction.atomic():
                result = services.feedback_ingest(org=org, items=items)
        else:  # one statement that also takes the quota
            result = services.feedback_ingest(org=org, items=items)
    assert not result.errors
    records = [result.created[i] for i in range(len(items))]
    if count > 4:
        assert any(r.reasons for r in records)
    assert any(r.metadata for r in records)
    _stored_equal(org, records)
    assert _used(org) == len(items)


def test_array_literals_round_trip_through_postgresql() -> None:
    values = ["plain", 'say "hi"', "back\\slash", None, "", "{x,y}", "NULL", " spaced ", "ñ 😤"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::varchar[]", [services._array_literal(values)])
        assert cursor.fetchone()[0] == values
        cursor.execute("SELECT %s::varchar[]", [services._array_literal([])])
        assert cursor.fetchone()[0] == []


@pytest.mark.parametrize("field", ["source", "reasons"])
@pytest.mark.parametrize("count", [1, 3])
def test_a_value_too_long_for_its_column_is_refused_not_cut(count: int, field: str) -> None:
    """The INSERT's casts carry no length, so the column itself refuses an over-long value
    (validation stops it first; this is the database's word if anything gets past)."""
    org = make_org(name="Long School", slug=f"long-{count}-{field}")
    items = [(i, FeedbackInput(text=f"item {i}")) for i in range(count)]
    with org_context(org):
        predictions = classify(org_id=org.pk, texts=[item.text for _, item in items])
        rows = services._new_records(org, items, predictions, import_job_id=None)
        # source is varchar(50); each reason varchar(32).
        setattr(rows[-1], field, "s" * 51 if field == "source" else ["r" * 33])
        with pytest.raises(DataError), transaction.atomic():
            services._insert(rows)
        assert Feedback.objects.filter(organization=org).count() == 0
