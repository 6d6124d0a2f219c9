"""Row-level security, the backstop behind `for_org()`: a query that forgets the org filter
returns nothing from other orgs, whichever role-independent path it takes.

The suite connects as `puna_app_test`, a role that neither owns the tables nor bypasses RLS
(tests/conftest.py). Test bodies act for every org (to set data up); each test here steps out
of that with `without_org()` or `org_context()` exactly as requests and jobs do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import ProgrammingError, connection, transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from feedback.models import Feedback
from inference.models import ModelVersion
from monitoring import services as monitoring_services
from monitoring.recorder import recorder
from reports import services as reports_services
from tenants import rls
from tenants.context import dangerously_all_orgs, org_context, without_org
from tenants.models import ApiKey, Membership, Organization
from tests.factories import make_api_key, make_user
from tests.reports.conftest import add_feedback

pytestmark = pytest.mark.django_db


def _scalar(sql: str, params: list[Any] | None = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _org_ids(sql: str) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def two_orgs_feedback(org: Organization, other_org: Organization) -> None:
    add_feedback(org, at=timezone.now(), count=3, text="alpha's private words")
    add_feedback(other_org, at=timezone.now(), count=2, text="bravo's private words")


def test_every_table_with_an_org_column_has_forced_rls_and_the_policy() -> None:
    tables = rls.org_tables(connection)
    incomplete = [t.name for t in tables if not t.complete]
    assert incomplete == []
    # Every model pointing at an organization is among them (a db_constraint=False link too).
    covered = {t.name for t in tables}
    org_models = {
        model._meta.db_table
        for model in apps.get_models()
        if any(
            getattr(field, "related_model", None) is Organization and field.concrete
            for field in model._meta.get_fields()
        )
    }
    assert org_models <= covered, org_models - covered
    assert {"feedback_feedback", "tenants_membership", "tenants_apikey"} <= covered


def test_the_suite_connects_as_a_role_that_rls_binds() -> None:
    assert rls.enforcement_problems(connection) == []
    assert _scalar("SELECT current_user") == "puna_app_test"


def test_a_query_that_forgets_the_org_filter_sees_only_the_current_org(
    org: Organization, other_org: Organization, two_orgs_feedback: None
) -> None:
    with org_context(org):
        assert {fb.organization_id for fb in Feedback.objects.all()} == {org.pk}
        assert Feedback.objects.count() == 3
        assert _org_ids("SELECT organization_id FROM feedback_feedback") == {org.pk}
        assert not Feedback.objects.filter(text__startswith="bravo").exists()
        assert set(Membership.objects.values_list("organization_id", flat=True)) <= {org.pk}
    with org_context(other_org):
        assert _org_ids("SELECT organization_id FROM feedback_feedback") == {other_org.pk}


def test_without_an_org_nothing_org_owned_is_visible(
    org: Organization, two_orgs_feedback: None, api_key_client: APIClient
) -> None:
    with without_org():
        assert Feedback.objects.count() == 0
        assert _scalar("SELECT count(*) FROM feedback_feedback") == 0
        assert ApiKey.objects.count() == 0
        # The org itself is not org-owned data; its rows are.
        assert Organization.objects.filter(pk=org.pk).exists()


def test_writes_to_another_org_are_refused_and_its_rows_untouched(
    org: Organization, other_org: Organization, two_orgs_feedback: None
) -> None:
    with org_context(org):
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            add_feedback(other_org, at=timezone.now())
        assert Feedback.objects.filter(organization=other_org).update(text="gotcha") == 0
        with connection.cursor() as cursor:
            cursor.execute("UPDATE feedback_feedback SET text = 'gotcha' WHERE true")
            assert cursor.rowcount == 3  # org's own rows only
        assert Feedback.objects.filter(organization=other_org).delete()[0] == 0
    assert Feedback.objects.filter(organization=other_org, text="gotcha").count() == 0
    assert Feedback.objects.filter(organization=other_org).count() == 2


def test_shared_rows_without_an_org_are_readable_but_only_written_for_all_orgs(
    org: Organization,
) -> None:
    ModelVersion.objects.create(task="sentiment", version="shared-1", sha256="0" * 64)
    with org_context(org):
        assert ModelVersion.objects.filter(version="shared-1", organization=None).exists()
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            ModelVersion.objects.create(task="sentiment", version="sneaky", sha256="1" * 64)
        assert ModelVersion.objects.filter(version="shared-1").update(version="renamed") == 0


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE feedback_feedback DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE feedback_feedback NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY puna_org_isolation_v2 ON feedback_feedback",
        "CREATE POLICY everything ON feedback_feedback USING (true)",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "CREATE TABLE puna_sneaky (id int)",
    ],
)
def test_the_app_role_cannot_turn_rls_off(statement: str) -> None:
    owner = _scalar(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'feedback_feedback'"
    )
    statement = statement.replace("postgres", owner)
    with pytest.raises(ProgrammingError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)


def test_the_orgs_setting_does_not_leak_to_the_next_request_on_a_reused_connection(
    org: Organization,
    two_orgs_feedback: None,
    api_key_client: APIClient,
    other_api_key_client: APIClient,
) -> None:
    response = api_key_client.get("/api/v1/feedback")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3
    own_ids = {row["id"] for row in response.json()["results"]}
    # The same connection (persistent, as with CONN_MAX_AGE) still holds org's id...
    stale = connection.connection.execute("SELECT current_setting('puna.org_id', true)")
    assert stale.fetchone()[0] == str(org.pk)
    # ...but the next statement in a context without an org re-asserts the empty scope first.
    with without_org():
        assert _scalar("SELECT count(*) FROM feedback_feedback") == 0
        assert _scalar("SELECT current_setting('puna.org_id', true)") == ""
    # And the next request, another org's, on the same connection sees only that org's rows.
    other = other_api_key_client.get("/api/v1/feedback")
    assert other.status_code == 200
    other_ids = {row["id"] for row in other.json()["results"]}
    assert other_ids
    assert not other_ids & own_ids
    with without_org():
        assert Feedback.objects.count() == 0


def test_a_rolled_back_savepoint_cannot_leave_a_stale_scope_behind(
    org: Organization, other_org: Organization, two_orgs_feedback: None
) -> None:
    with org_context(org):
        assert Feedback.objects.count() == 3
        savepoint = transaction.savepoint_create()
        with org_context(other_org):
            assert Feedback.objects.count() == 2  # other_org's id is set inside the savepoint
            transaction.savepoint_rollback(savepoint)  # ...and the server forgets it: org's again
            raw = connection.connection.execute("SELECT current_setting('puna.org_id', true)")
            assert raw.fetchone()[0] == str(org.pk)
            # Trusting the value set before the rollback would show org's rows here.
            assert _org_ids("SELECT organization_id FROM feedback_feedback") == {other_org.pk}
        assert _org_ids("SELECT organization_id FROM feedback_feedback") == {org.pk}


def test_the_all_orgs_escape_sees_everyone_and_an_org_context_inside_narrows(
    org: Organization, other_org: Organization, two_orgs_feedback: None
) -> None:
    with without_org(), dangerously_all_orgs("test"):
        assert Feedback.objects.count() == 5
        with org_context(other_org):
            assert Feedback.objects.count() == 2
        assert Feedback.objects.count() == 5


def test_a_streamed_export_acts_for_its_org(
    org: Organization, two_orgs_feedback: None, web_client: Client
) -> None:
    response = web_client.get(f"/o/{org.slug}/feedback/export.csv")
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert body.count("alpha's private words") == 3
    assert "bravo" not in body


def test_cross_org_jobs_and_commands_work_outside_any_org(
    org: Organization, other_org: Organization, two_orgs_feedback: None
) -> None:
    """Schedulers, upkeep and operator commands run with no org (as in a worker or a shell)
    and cross orgs only through their explicit escape."""
    for org_id, route in ((org.pk, "feedback-list"), (None, "login")):
        recorder.record_request(
            route=route, method="GET", status_class="2xx", org_id=org_id, api=True, duration_ms=5
        )
    with without_org():
        assert monitoring_services.monitoring_flush() > 0
        monitoring_services.monitoring_rollup(now=timezone.now() + dt.timedelta(hours=1))
        monitoring_services.monitoring_prune()
        monitoring_services.alert_evaluate()
        reports_services.reports_claim_due()
        reports_services.webhooks_flagged_scan()
        reports_services.alerts_detect_all()
        call_command("sync_models", verbosity=0, stdout=_Discard())
        call_command("seed_demo", "--key-only", stdout=_Discard())
        call_command(
            "create_org", "--name", "Charlie College", "--owner-email", "c@charlie.example",
            "--password", "a-long-enough-password", stdout=_Discard(),
        )  # fmt: skip
        call_command("create_api_key", "--org", org.slug, "--name", "ops", stdout=_Discard())
    assert Membership.objects.filter(organization__slug="demo-school").count() == 1
    assert Membership.objects.filter(user__email="c@charlie.example").count() == 1
    assert ApiKey.objects.filter(organization=org, name="ops").count() == 1


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def test_the_admin_lists_every_orgs_rows_for_staff(
    org: Organization, other_org: Organization, client: Client
) -> None:
    make_api_key(org, name="alpha's key")
    make_api_key(other_org, name="bravo's key")
    client.force_login(make_user(is_staff=True, is_superuser=True))
    page = client.get("/ops/admin/tenants/apikey/").content.decode()
    assert "alpha&#x27;s key" in page
    assert "bravo&#x27;s key" in page
