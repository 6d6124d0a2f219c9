"""The audit trail: every security-relevant action lands in its org's trail with who did it, to
what, from where; owners and admins read it (page and API), nobody else does; Charlie (another
org) never sees Alice's events; and no path changes or removes an event."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from inference import services as inference_services
from inference.models import LabelSet, ModelVersion, Task, VersionStatus
from reports import services as report_services
from tenants import services
from tenants.models import (
    ApiKey,
    AuditAction,
    AuditEvent,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
)
from tests.factories import PASSWORD, make_api_key, make_user

pytestmark = pytest.mark.django_db


def _events(org: Organization, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.for_org(org).filter(action=action).order_by("id"))


def _only(org: Organization, action: str) -> AuditEvent:
    events = _events(org, action)
    assert len(events) == 1, [(e.action, e.actor_label, e.target_label) for e in events]
    return events[0]


# --- what is recorded ----------------------------------------------------------------------------


def test_api_key_created_and_revoked_in_the_dashboard(
    web_client: Client, owner: Membership
) -> None:
    org = owner.organization
    response = web_client.post(
        f"/o/{org.slug}/api-keys/", {"name": "Survey form", "scope": "write"}
    )
    assert response.status_code == 200
    key = ApiKey.objects.for_org(org).get(name="Survey form")

    created = _only(org, AuditAction.API_KEY_CREATED)
    assert created.actor_user == owner.user
    assert created.actor_label == "alice@alpha.example"
    assert (created.target_type, created.target_id) == ("apikey", str(key.pk))
    assert created.metadata == {"scope": "write", "expires_at": None}
    assert created.ip_address == "127.0.0.1"
    assert created.request_id == response["X-Request-ID"]
    # The secret itself is nowhere in the trail.
    raw = response.context["new_key"]
    assert raw not in str(created.metadata) + created.target_label

    revoked = web_client.post(f"/o/{org.slug}/api-keys/{key.pk}/revoke/")
    assert revoked.status_code == 302
    event = _only(org, AuditAction.API_KEY_REVOKED)
    assert (event.actor_user, event.target_id) == (owner.user, str(key.pk))
    # Revoking twice changes nothing, so records nothing.
    web_client.post(f"/o/{org.slug}/api-keys/{key.pk}/revoke/")
    assert len(_events(org, AuditAction.API_KEY_REVOKED)) == 1


def test_api_key_created_and_revoked_through_the_api(
    api_client: APIClient, owner: Membership
) -> None:
    org = owner.organization
    created = api_client.post("/api/v1/api-keys", {"name": "ETL"}, format="json")
    assert created.status_code == 201
    assert api_client.delete(f"/api/v1/api-keys/{created.json()['id']}").status_code == 204
    for action in (AuditAction.API_KEY_CREATED, AuditAction.API_KEY_REVOKED):
        event = _only(org, action)
        assert event.actor_user == owner.user
        assert event.target_id == str(created.json()["id"])


def test_invitation_sent_withdrawn_and_accepted(web_client: Client, owner: Membership) -> None:
    org = owner.organization
    web_client.post(f"/o/{org.slug}/members/", {"email": "Ben@Alpha.example", "role": "admin"})
    invited = _only(org, AuditAction.MEMBER_INVITED)
    assert invited.actor_user == owner.user
    assert invited.target_label == "ben@alpha.example"
    assert invited.metadata == {"role": "admin"}

    invitation = Invitation.objects.for_org(org).get()
    web_client.post(f"/o/{org.slug}/invitations/{invitation.pk}/revoke/")
    withdrawn = _only(org, AuditAction.INVITATION_REVOKED)
    assert (withdrawn.actor_user, withdrawn.target_id) == (owner.user, str(invitation.pk))

    _, token = services.invitation_create(
        org=org,
        email="cora@alpha.example",
        role=Role.ANALYST,
        invited_by=owner.user,
        accept_url_base="http://testserver/",
    )
    cora = make_user("cora@alpha.example")
    client = Client()
    client.force_login(cora)
    assert client.post(f"/invitations/{token}/").status_code == 302
    accepted = _only(org, AuditAction.INVITATION_ACCEPTED)
    assert accepted.actor_user == cora
    assert accepted.target_label == "cora@alpha.example"
    assert accepted.metadata["role"] == Role.ANALYST
    assert accepted.ip_address == "127.0.0.1"


def test_role_changes_and_ownership_are_told_apart(
    web_client: Client, owner: Membership, member: Membership
) -> None:
    org = owner.organization
    web_client.post(f"/o/{org.slug}/members/{member.pk}/role/", {"role": "admin"})
    changed = _only(org, AuditAction.MEMBER_ROLE_CHANGED)
    assert changed.actor_user == owner.user
    assert changed.target_label == "ana@alpha.example"
    assert changed.metadata == {"from": "analyst", "to": "admin"}

    web_client.post(f"/o/{org.slug}/members/{member.pk}/role/", {"role": "owner"})
    assert _only(org, AuditAction.OWNERSHIP_GRANTED).metadata == {"from": "admin", "to": "owner"}

    web_client.post(f"/o/{org.slug}/members/{member.pk}/role/", {"role": "viewer"})
    assert _only(org, AuditAction.OWNERSHIP_REMOVED).metadata == {"from": "owner", "to": "viewer"}

    # A refused change (the last owner demoting themselves) records nothing.
    web_client.post(f"/o/{org.slug}/members/{owner.pk}/role/", {"role": "admin"})
    assert len(_events(org, AuditAction.OWNERSHIP_REMOVED)) == 1


def test_member_removed_and_member_left(
    web_client: Client,
    owner: Membership,
    member: Membership,
    make_member: Callable[..., Membership],
    login_as: Callable[[Membership], Client],
) -> None:
    org = owner.organization
    member_pk = member.pk
    web_client.post(f"/o/{org.slug}/members/{member_pk}/remove/")
    removed = _only(org, AuditAction.MEMBER_REMOVED)
    assert removed.actor_user == owner.user
    assert (removed.target_id, removed.target_label) == (str(member_pk), "ana@alpha.example")
    assert removed.metadata == {"role": "analyst"}

    viewer = make_member(org, Role.VIEWER, email="vic@alpha.example")
    assert login_as(viewer).post(f"/o/{org.slug}/leave/").status_code == 302
    left = _only(org, AuditAction.MEMBER_LEFT)
    assert left.actor_user == viewer.user
    assert left.target_label == "vic@alpha.example"


def test_org_created_and_settings_changed(web_client: Client, owner: Membership) -> None:
    user, new_org = services.user_signup(
        email="dana@delta.example", password=PASSWORD, org_name="Delta College"
    )
    assert _only(new_org, AuditAction.ORG_CREATED).actor_user == user

    org = owner.organization
    web_client.post(f"/o/{org.slug}/settings/", {"name": "Alpha HS", "timezone": "Asia/Manila"})
    event = _only(org, AuditAction.ORG_UPDATED)
    assert event.actor_user == owner.user
    # Only what changed (the time zone was already Manila).
    assert event.metadata == {"name": {"from": "Alpha High School", "to": "Alpha HS"}}
    # Saving without a change records nothing.
    web_client.post(f"/o/{org.slug}/settings/", {"name": "Alpha HS", "timezone": "Asia/Manila"})
    assert len(_events(org, AuditAction.ORG_UPDATED)) == 1


def _org_version(org: Organization, name: str, *, active: bool = False) -> ModelVersion:
    label_set = LabelSet.objects.for_org(org).first() or LabelSet.objects.create(
        organization=org, name="Topics", labels=["a", "b"]
    )
    return ModelVersion.objects.create(
        task=Task.CATEGORY,
        organization=org,
        label_set=label_set,
        version=name,
        artifact=b"",
        sha256="0" * 64,
        labels=["a", "b"],
        status=VersionStatus.ACTIVE if active else VersionStatus.CANDIDATE,
        activated_at=timezone.now() - dt.timedelta(hours=1) if active else None,
    )


def test_model_activated_and_rolled_back(api_client: APIClient, owner: Membership) -> None:
    org = owner.organization
    first = _org_version(org, "cat-1", active=True)
    second = _org_version(org, "cat-2")
    assert api_client.post(f"/api/v1/models/{second.pk}/activate").status_code == 200
    activated = _only(org, AuditAction.MODEL_ACTIVATED)
    assert activated.actor_user == owner.user
    assert (activated.target_id, activated.target_label) == (str(second.pk), "cat-2")
    assert activated.metadata == {"task": "category", "previous": ["cat-1"]}

    rolled = api_client.post("/api/v1/models/rollback", {"task": "category"}, format="json")
    assert rolled.status_code == 200
    event = _only(org, AuditAction.MODEL_ROLLED_BACK)
    assert (event.actor_user, event.target_id) == (owner.user, str(first.pk))
    assert event.metadata == {"task": "category", "from": "cat-2"}
    # A rollback is one event, not also an activation.
    assert len(_events(org, AuditAction.MODEL_ACTIVATED)) == 1


def test_model_activated_in_the_dashboard(web_client: Client, owner: Membership) -> None:
    org = owner.organization
    version = _org_version(org, "cat-9")
    web_client.post(f"/o/{org.slug}/models/versions/{version.pk}/activate/")
    assert _only(org, AuditAction.MODEL_ACTIVATED).actor_user == owner.user


def test_model_trained_in_the_worker_names_who_asked(owner: Membership) -> None:
    org = owner.organization
    label_set = inference_services.label_set_create(
        org=org, name="Topics", labels=["Rooms", "Grades"], created_by=owner.user
    )
    for i in range(12):
        for label, text in (("Rooms", "the aircon in room {} is broken"), ("Grades", "grade {}")):
            inference_services.example_add(
                org=org, label_set=label_set, text=text.format(i), label=label, created_by=None
            )
    run = inference_services.training_request(org=org, label_set=label_set, requested_by=owner.user)
    # The worker runs outside any request: the actor is the person who asked for the run.
    run = inference_services.training_run_execute(org=org, run_id=run.pk)
    assert run.model_version is not None
    event = _only(org, AuditAction.MODEL_TRAINED)
    assert event.actor_user == owner.user
    assert event.target_id == str(run.model_version.pk)
    assert event.ip_address is None


def test_feedback_export_is_recorded_with_its_filters(
    web_client: Client, owner: Membership
) -> None:
    org = owner.organization
    response = web_client.get(f"/o/{org.slug}/feedback/export.csv?sentiment=negative&page=2")
    assert response.status_code == 200
    b"".join(response.streaming_content)  # type: ignore[attr-defined]
    event = _only(org, AuditAction.EXPORT_DOWNLOADED)
    assert event.actor_user == owner.user
    assert event.target_type == "feedback"
    assert event.metadata == {
        "export": "feedback",
        "format": "csv",
        "filters": {"sentiment": "negative"},
    }


def _built_report(org: Organization) -> int:
    report_services.schedule_create(
        org=org,
        name="Daily",
        frequency="daily",
        hour=0,
        recipient_emails=["principal@alpha.example"],
    )
    from reports.models import ReportSchedule

    ReportSchedule.objects.for_org(org).update(created_at=timezone.now() - dt.timedelta(days=3))
    ((report_id, _),) = report_services.reports_claim_due()
    report_services.report_process(org=org, report_id=report_id)
    return report_id


def test_report_downloads_are_recorded(
    web_client: Client, api_client: APIClient, owner: Membership
) -> None:
    org = owner.organization
    report_id = _built_report(org)
    assert web_client.get(f"/o/{org.slug}/reports/{report_id}/download/pdf/").status_code == 200
    assert api_client.get(f"/api/v1/reports/{report_id}/download?file=csv").status_code == 200
    events = _events(org, AuditAction.EXPORT_DOWNLOADED)
    assert [(e.actor_user, e.target_id, e.metadata["format"]) for e in events] == [
        (owner.user, str(report_id), "pdf"),
        (owner.user, str(report_id), "csv"),
    ]


def test_schedules_and_webhooks_through_an_api_key(org: Organization) -> None:
    key, raw = make_api_key(org, "write", name="Provisioning")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    schedule = client.post(
        "/api/v1/report-schedules",
        {
            "name": "Monday",
            "frequency": "weekly",
            "weekday": 0,
            "hour": 8,
            "recipient_emails": ["p@alpha.example"],
        },
        format="json",
    ).json()
    sched_url = f"/api/v1/report-schedules/{schedule['id']}"
    assert client.patch(sched_url, {"hour": 9}, format="json").status_code == 200
    assert client.delete(sched_url).status_code == 204

    hook = client.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.alpha.example/in", "events": ["report.ready"]},
        format="json",
    )
    assert hook.status_code == 201
    hook_url = f"/api/v1/webhooks/{hook.json()['id']}"
    assert client.patch(hook_url, {"description": "ops"}, format="json").status_code == 200
    rotated = client.post(f"{hook_url}/rotate-secret")
    assert rotated.status_code == 200
    assert client.delete(hook_url).status_code == 204

    expected = {
        AuditAction.REPORT_SCHEDULE_CREATED: str(schedule["id"]),
        AuditAction.REPORT_SCHEDULE_UPDATED: str(schedule["id"]),
        AuditAction.REPORT_SCHEDULE_DELETED: str(schedule["id"]),
        AuditAction.WEBHOOK_CREATED: str(hook.json()["id"]),
        AuditAction.WEBHOOK_UPDATED: str(hook.json()["id"]),
        AuditAction.WEBHOOK_SECRET_ROTATED: str(hook.json()["id"]),
        AuditAction.WEBHOOK_DELETED: str(hook.json()["id"]),
    }
    for action, target_id in expected.items():
        event = _only(org, action)
        assert event.actor_user is None
        assert event.actor_api_key == key
        assert event.actor_label == f"API key “Provisioning” (puna_{key.prefix}_…)"
        assert event.target_id == target_id
    assert _only(org, AuditAction.REPORT_SCHEDULE_UPDATED).metadata == {"fields": ["hour"]}
    # Neither webhook secret is in the trail.
    trail = str(list(AuditEvent.objects.for_org(org).values()))
    assert hook.json()["secret"] not in trail
    assert rotated.json()["secret"] not in trail


# --- who can read it ------------------------------------------------------------------------------


def test_owner_and_admin_see_the_page_with_a_nav_link(
    web_client: Client,
    owner: Membership,
    make_member: Callable[..., Membership],
    login_as: Callable[[Membership], Client],
) -> None:
    org = owner.organization
    make_api_key(org, "read", name="Kiosk")
    admin = make_member(org, Role.ADMIN, email="adam@alpha.example")
    for client in (web_client, login_as(admin)):
        page = client.get(f"/o/{org.slug}/audit/")
        assert page.status_code == 200
        assert "API key created" in page.content.decode()
        assert f'href="/o/{org.slug}/audit/"' in page.content.decode()
        overview = client.get(f"/o/{org.slug}/")
        assert f'href="/o/{org.slug}/audit/"' in overview.content.decode()


@pytest.mark.parametrize("role", [Role.ANALYST, Role.VIEWER])
def test_analysts_and_viewers_get_403_and_no_link(
    role: str,
    owner: Membership,
    make_member: Callable[..., Membership],
    login_as: Callable[[Membership], Client],
) -> None:
    org = owner.organization
    client = login_as(make_member(org, role))
    assert client.get(f"/o/{org.slug}/audit/").status_code == 403
    assert f"/o/{org.slug}/audit/" not in client.get(f"/o/{org.slug}/").content.decode()
    api = APIClient()
    api.force_login(Membership.objects.get(organization=org, role=role).user)
    api.credentials(HTTP_X_PUNA_ORG=org.slug)
    assert api.get("/api/v1/audit").status_code == 403


def test_api_keys_cannot_read_the_trail(api_key_client: APIClient) -> None:
    assert api_key_client.get("/api/v1/audit").status_code == 403


def test_charlie_sees_none_of_alphas_events(
    web_client: Client, owner: Membership, other_owner: Membership
) -> None:
    org = owner.organization
    web_client.post(f"/o/{org.slug}/api-keys/", {"name": "Alpha secret key", "scope": "read"})
    alpha_event = _only(org, AuditAction.API_KEY_CREATED)
    make_api_key(other_owner.organization, "read", name="Bravo key")

    charlie = Client()
    charlie.force_login(other_owner.user)
    assert charlie.get(f"/o/{org.slug}/audit/").status_code == 404
    page = charlie.get(f"/o/{other_owner.organization.slug}/audit/").content.decode()
    assert "Bravo key" in page
    assert "Alpha secret key" not in page

    api = APIClient()
    api.force_login(other_owner.user)
    api.credentials(HTTP_X_PUNA_ORG=other_owner.organization.slug)
    listed = api.get("/api/v1/audit").json()["results"]
    assert alpha_event.pk not in [e["id"] for e in listed]
    assert listed
    assert api.get(f"/api/v1/audit/{alpha_event.pk}").status_code == 404
    # Asking for Alpha's trail by header is "not found", like any org one is not in.
    api.credentials(HTTP_X_PUNA_ORG=org.slug)
    assert api.get("/api/v1/audit").status_code == 404


def test_page_filters_by_action_actor_and_date(
    web_client: Client, owner: Membership, member: Membership
) -> None:
    org = owner.organization
    make_api_key(org, "read", name="Kiosk")
    web_client.post(f"/o/{org.slug}/members/{member.pk}/role/", {"role": "viewer"})
    url = f"/o/{org.slug}/audit/"

    by_action = web_client.get(url, {"action": AuditAction.MEMBER_ROLE_CHANGED})
    assert [e.action for e in by_action.context["page"]] == [AuditAction.MEMBER_ROLE_CHANGED]
    by_actor = web_client.get(url, {"actor": "ALICE@"})
    assert [e.actor_label for e in by_actor.context["page"]] == ["alice@alpha.example"]
    by_system = web_client.get(url, {"actor": "system"})
    assert [e.action for e in by_system.context["page"]] == [AuditAction.API_KEY_CREATED]
    tomorrow = (timezone.now() + dt.timedelta(days=2)).date().isoformat()
    assert web_client.get(url, {"since": tomorrow}).context["page"].paginator.count == 0
    # An unknown action is ignored (and said so), not an error page.
    ignored = web_client.get(url, {"action": "nope"})
    assert ignored.status_code == 200
    assert ignored.context["page"].paginator.count == 2


def test_page_paginates(web_client: Client, owner: Membership) -> None:
    org = owner.organization
    for n in range(55):
        make_api_key(org, "read", name=f"key {n}")
    first = web_client.get(f"/o/{org.slug}/audit/")
    assert len(first.context["page"].object_list) == 50
    second = web_client.get(f"/o/{org.slug}/audit/", {"page": 2})
    assert len(second.context["page"].object_list) == 5
    assert list(second.context["page"].object_list)[-1].target_label.startswith("key 0 ")


def test_api_lists_filters_and_reads_one(api_client: APIClient, owner: Membership) -> None:
    org = owner.organization
    make_api_key(org, "read", name="Kiosk")
    api_client.post("/api/v1/api-keys", {"name": "ETL"}, format="json")
    listed = api_client.get("/api/v1/audit").json()["results"]
    assert [(e["action"], e["actor"], e["actor_type"]) for e in listed] == [
        ("api_key.created", "alice@alpha.example", "user"),
        ("api_key.created", "system", "system"),
    ]
    assert api_client.get("/api/v1/audit", {"actor": "alice"}).json()["results"] == listed[:1]
    one = api_client.get(f"/api/v1/audit/{listed[0]['id']}").json()
    assert one["target_type"] == "apikey"
    assert one["ip_address"] == "127.0.0.1"
    assert api_client.get("/api/v1/audit", {"action": "nope"}).status_code == 400
    assert api_client.get("/api/v1/audit", {"colour": "red"}).status_code == 400
    # Read-only: no method writes the trail.
    for method in ("post", "put", "patch", "delete"):
        response = getattr(api_client, method)(f"/api/v1/audit/{listed[0]['id']}")
        assert response.status_code in (403, 405), method


# --- append-only ----------------------------------------------------------------------------------


def test_events_cannot_be_changed_or_deleted(owner: Membership) -> None:
    make_api_key(owner.organization, "read")
    event = AuditEvent.objects.for_org(owner.organization).get()
    event.actor_label = "someone else"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.for_org(owner.organization).update(actor_label="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.for_org(owner.organization).delete()
    assert AuditEvent.objects.get(pk=event.pk).actor_label == "system"
    # Below the ORM, the database refuses too.
    with (
        pytest.raises(ProgrammingError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE tenants_auditevent SET action = 'org.created' WHERE id = %s", [event.pk]
        )
    assert AuditEvent.objects.get(pk=event.pk).action == AuditAction.API_KEY_CREATED


def test_actor_label_survives_the_user_being_deleted(
    web_client: Client, owner: Membership, member: Membership
) -> None:
    org = owner.organization
    bob = User.objects.create_user("bob@alpha.example", PASSWORD)
    Membership.objects.create(organization=org, user=bob, role=Role.OWNER)
    bob_client = Client()
    bob_client.force_login(bob)
    bob_client.post(f"/o/{org.slug}/members/{member.pk}/role/", {"role": "viewer"})
    bob.delete()
    event = _only(org, AuditAction.MEMBER_ROLE_CHANGED)
    assert event.actor_user is None
    assert event.actor_label == "bob@alpha.example"


# --- odd filter input ----------------------------------------------------------------------------


def test_audit_page_takes_the_last_possible_day_as_no_end(
    web_client: Client, owner: Membership
) -> None:
    org = owner.organization
    response = web_client.get(f"/o/{org.slug}/audit/?until=9999-12-31&since=2020-01-01")
    assert response.status_code == 200


def test_export_records_only_the_filters_that_applied(
    web_client: Client, owner: Membership
) -> None:
    org = owner.organization
    response = web_client.get(
        f"/o/{org.slug}/feedback/export.csv?sentiment=negative&bogus=1&q=a%00b&x=%00"
    )
    assert response.status_code == 200
    b"".join(response.streaming_content)  # type: ignore[attr-defined]
    event = _only(org, AuditAction.EXPORT_DOWNLOADED)
    assert event.metadata["filters"] == {"sentiment": "negative"}


def test_an_event_by_a_deleted_api_key_still_says_api_key() -> None:
    from tenants.api.serializers import AuditEventSerializer

    gone = AuditEvent(actor_label="API key “Survey form” (puna_abc123_…)", actor_api_key=None)
    person = AuditEvent(actor_label="bob@alpha.example")
    system = AuditEvent(actor_label="system")
    serializer = AuditEventSerializer()
    assert serializer.get_actor_type(gone) == "api_key"
    assert serializer.get_actor_type(person) == "user"
    assert serializer.get_actor_type(system) == "system"
