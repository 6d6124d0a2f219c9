"""schemathesis against /api/v1/schema, over real HTTP, with two orgs' keys.

The app runs under pytest-django's live server (a threaded WSGI server on 127.0.0.1) on the
test PostgreSQL database. Alpha and Bravo each own one of every kind of object and a write API
key; every operation in the schema is fuzzed with positive and negative data as each org in
turn, with schemathesis's response checks and its authorization check (`ignored_auth` replays
each accepted request without credentials and with invalid ones). On top of those, two
cross-org checks: a share of the generated cases aim their `{id}` at the other org's object of
that resource and must get a 404 (403 where a key may not touch the resource at all), and no
response to one org may carry the other org's ids or its marker text. Every id of each org is
also sent through every `{id}` operation as the other org, before and after the fuzzing. Last,
members, invitations and keys (sessions only; a key gets 403) are fuzzed as Alpha's owner
signed in, with session and CSRF cookies.

Both orgs are on the `business` plan and the plan's rate is raised for the run: the fuzzer
sends thousands of requests a minute, and a 429 would hide what the operation does.

    PUNA_FUZZ_EXAMPLES=10 (the default) gives ≥ 2,000 generated cases; it is the per-operation,
    per-mode, per-org `max_examples`. The seed is fixed, so a rerun generates the same cases.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from django.conf import LazySettings
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, Phase, Verbosity, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as CHECK_REGISTRY
from schemathesis.checks import load_all_checks
from schemathesis.core.failures import FailureGroup

from feedback import imports
from feedback.services import FeedbackInput, feedback_ingest
from inference import services as inference_services
from inference.models import ModelVersion, TrainingRun
from reports import services as report_services
from reports.models import AlertEvent
from tenants import services as tenant_services
from tenants.models import Membership, Organization, Role
from tests.factories import make_api_key, make_membership

pytestmark = pytest.mark.django_db(transaction=True)

# Tests may read the environment for knobs of their own; the app reads it only in settings.
MAX_EXAMPLES = int(os.environ.get("PUNA_FUZZ_EXAMPLES", "10"))
MIN_TOTAL_CASES = 2_000
SEED = 20261122

load_all_checks()
CHECKS = CHECK_REGISTRY.get_by_names(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "ignored_auth",
    ]
)

# Which table the ids in an operation's response (and its `{id}`) belong to.
_RESOURCE_OF_PATH = [
    (re.compile(r"^/api/v1/label-sets/\{id\}/examples/$"), "examples"),
    (re.compile(r"^/api/v1/label-sets/\{id\}/train/$"), "training-runs"),
    (re.compile(r"^/api/v1/report-schedules/\{id\}/send-now/$"), "reports"),
    (re.compile(r"^/api/v1/report-schedules/\{id\}/preview/$"), None),
    (re.compile(r"^/api/v1/imports/\{id\}/errors/$"), None),
    (re.compile(r"^/api/v1/feedback/batch/$"), "feedback"),
    (re.compile(r"^/api/v1/([a-z-]+)/"), ""),
]
# Which table the `{id}` in the path names, when it differs from the response's.
_ID_RESOURCE_OF_PATH = {
    "/api/v1/label-sets/{id}/examples/": "label-sets",
    "/api/v1/label-sets/{id}/train/": "label-sets",
    "/api/v1/report-schedules/{id}/send-now/": "report-schedules",
    "/api/v1/report-schedules/{id}/preview/": "report-schedules",
    "/api/v1/imports/{id}/errors/": "imports",
}
# Keys never manage members, invitations or keys, nor read the audit trail: every such request
# is a 403, found or not. These are fuzzed again as a signed-in owner.
_KEY_FORBIDDEN = ("members", "invitations", "api-keys", "audit")


def response_resource(path: str) -> str | None:
    for pattern, resource in _RESOURCE_OF_PATH:
        match = pattern.match(path)
        if match:
            return resource if resource != "" else match.group(1)
    return None


def path_id_resource(path: str) -> str | None:
    if "{id}" not in path:
        return None
    return _ID_RESOURCE_OF_PATH.get(path) or response_resource(path)


@dataclass
class Tenant:
    org: Organization
    key: str
    marker: str
    session: dict[str, str]
    ids: dict[str, set[int]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _owner_session(owner: Membership) -> dict[str, str]:
    """Request headers of the owner's signed-in browser: session and CSRF cookies, the CSRF
    header DRF checks on writes, and the org to act for."""
    client = Client()
    client.force_login(owner.user)
    csrf = get_random_string(32)
    name = django_settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}"
    return {
        "Cookie": f"{cookie}; {django_settings.CSRF_COOKIE_NAME}={csrf}",
        "X-CSRFToken": csrf,
        "X-Puna-Org": owner.organization.slug,
    }


def _seed_tenant(org: Organization, marker: str) -> Tenant:
    """One of every object an org can own, each carrying `marker` where it has text."""
    org.plan = "business"
    org.save(update_fields=["plan"])
    owner = make_membership(org, Role.OWNER, email=f"owner@{org.slug}.example")
    analyst = make_membership(org, Role.ANALYST, email=f"analyst@{org.slug}.example")
    _, raw = make_api_key(org, "write", name=f"{marker} key")
    # The key the fuzzer uses stays out of reach of its own DELETE /api-keys/{id}.
    api_key, _ = make_api_key(org, "read", name=f"{marker} spare key")
    invitation, _ = tenant_services.invitation_create(
        org=org,
        email=f"new@{org.slug}.example",
        role="viewer",
        invited_by=owner.user,
        accept_url_base="http://testserver/",
    )
    result = feedback_ingest(
        org=org,
        items=[
            FeedbackInput(
                text=f"{marker} the wifi in the library is slow {n}",
                source=f"{marker}-form",
                external_id=f"{marker}-{n}",
                metadata={"note": marker},
            )
            for n in range(3)
        ],
    )
    feedback_ids = {fb.pk for fb in result.created.values()}
    job = imports.import_create(
        org=org,
        filename=f"{marker}.csv",
        content=f"text\n{marker} imported comment\n".encode(),
        mapping=None,
        created_by=owner.user,
    )
    label_set = inference_services.label_set_create(
        org=org, name=f"{marker} topics", labels=["wifi", "food"], created_by=owner.user
    )
    example = inference_services.example_add(
        org=org, label_set=label_set, text=f"{marker} slow wifi", label="wifi", created_by=None
    )
    run = TrainingRun.objects.create(organization=org, label_set=label_set)
    version = ModelVersion.objects.create(
        task="category",
        version=f"{marker}-v1",
        organization=org,
        label_set=label_set,
        labels=["wifi", "food"],
        status="candidate",
    )
    schedule = report_services.schedule_create(
        org=org,
        name=f"{marker} weekly",
        frequency="weekly",
        weekday=0,
        hour=8,
        recipient_emails=[f"principal@{org.slug}.example"],
    )
    report = report_services.report_send_now(schedule=schedule)
    report_services.report_process(org=org, report_id=report.pk)
    endpoint, _ = report_services.webhook_create(
        org=org,
        url=f"https://hooks.{org.slug}.example/puna",
        events=["report.ready"],
        description=marker,
    )
    (delivery,) = report_services.webhook_emit(
        org=org, event="report.ready", event_id=f"{marker}:1", data={"note": marker}
    )
    now = timezone.now()
    alert = AlertEvent.objects.create(
        organization=org,
        kind="volume_spike",
        subject=f"source:{marker}",
        window_start=now - dt.timedelta(hours=1),
        window_end=now,
        observed=10.0,
        baseline=1.0,
    )
    return Tenant(
        org=org,
        key=raw,
        marker=marker,
        session=_owner_session(owner),
        ids={
            "feedback": feedback_ids,
            "imports": {job.pk},
            "label-sets": {label_set.pk},
            "examples": {example.pk},
            "training-runs": {run.pk},
            "models": {version.pk},
            "report-schedules": {schedule.pk},
            "reports": {report.pk},
            "webhooks": {endpoint.pk},
            "webhook-deliveries": {delivery.pk},
            "alerts": {alert.pk},
            "members": {owner.pk, analyst.pk},
            "invitations": {invitation.pk},
            "api-keys": {api_key.pk},
            "org": {org.pk},
        },
    )


def _ids_in(body: Any) -> Iterator[int]:
    """Ids of the objects in a response: the body itself, `results`, and `base`/`org` lists."""
    if isinstance(body, list):
        for item in body:
            yield from _ids_in(item)
    elif isinstance(body, dict):
        if isinstance(body.get("id"), int):
            yield body["id"]
        for name in ("results", "base", "org"):
            if isinstance(body.get(name), list):
                yield from _ids_in(body[name])


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    aimed_at_other_org: int = 0
    swept: int = 0
    cross_org_hits: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def _cross_org_check(
    *,
    case: Any,
    response: Any,
    me: Tenant,
    other: Tenant,
    aimed: int | None,
    as_member: bool = False,
) -> None:
    path = case.operation.path
    # Bytes, not .text: a report download is a PDF or a spreadsheet, not UTF-8.
    text = (response.content or b"").decode("utf-8", "replace")
    if other.marker in text:
        raise AssertionError(f"{me.org.slug} saw {other.org.slug}'s text in {case.method} {path}")
    if aimed is not None:
        allowed = {404}
        if path_id_resource(path) in _KEY_FORBIDDEN and not as_member:
            allowed.add(403)
        if response.status_code not in allowed:
            raise AssertionError(
                f"{me.org.slug}'s key got {response.status_code} (not 404) for "
                f"{case.method} {path} with {other.org.slug}'s id {aimed}"
            )
    if not 200 <= response.status_code < 300:
        return
    resource = response_resource(path)
    if resource is None or "json" not in response.headers.get("Content-Type", ""):
        return
    leaked = set(_ids_in(response.json())) & other.ids.get(resource, set())
    if leaked:
        raise AssertionError(
            f"{me.org.slug}'s key got {other.org.slug}'s {resource} {sorted(leaked)} from "
            f"{case.method} {path}"
        )


def _fuzz_operation(
    *,
    operation: Any,
    mode: GenerationMode,
    me: Tenant,
    other: Tenant,
    base_url: str,
    session: requests.Session,
    tally: Tally,
    as_member: bool = False,
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    identity = f"{me.org.slug} {'owner session' if as_member else 'key'}"
    headers = me.session if as_member else me.headers
    resource = path_id_resource(operation.path) or ""
    # Generated ids rarely exist, so some cases aim at a real object: the org's own (to fuzz
    # what happens to it) or the other org's (which must be a 404).
    own = [("own", pk) for pk in sorted(me.ids.get(resource, set()))]
    foreign = [("other", pk) for pk in sorted(other.ids.get(resource, set()))]
    aim: st.SearchStrategy[tuple[str, int] | None] = st.none()
    if foreign and mode == GenerationMode.POSITIVE:
        aim = st.one_of(st.none(), st.sampled_from(own + foreign))

    @seed(SEED)
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(case=operation.as_strategy(generation_mode=mode), aimed=aim)
    def run(case: Any, aimed: tuple[str, int] | None) -> None:
        foreign_id = None
        if aimed is not None:
            whose, pk = aimed
            case.path_parameters = {**(case.path_parameters or {}), "id": pk}
            if whose == "other":
                foreign_id = pk
                tally.aimed_at_other_org += 1
        if as_member and case.headers:
            # A browser with a session sends no Authorization of its own. A non-Bearer one is
            # left for a proxy in front (basic auth on a staging site) and the session still
            # counts, which schemathesis would read as "generated auth accepted".
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
        tally.cases[label] += 1
        try:
            response = case.call_and_validate(
                base_url=base_url, session=session, headers=headers, checks=CHECKS
            )
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{label} [{identity}, {mode.value}]: {failure.title}"
                tally.failures.setdefault(key, str(group)[:1200])
            return
        tally.statuses[response.status_code] += 1
        try:
            _cross_org_check(
                case=case,
                response=response,
                me=me,
                other=other,
                aimed=foreign_id,
                as_member=as_member,
            )
        except AssertionError as exc:
            tally.cross_org_hits.append(str(exc))

    run()


def _sweep_other_org_ids(
    operations: list[Any],
    me: Tenant,
    other: Tenant,
    base_url: str,
    session: requests.Session,
    tally: Tally,
) -> list[str]:
    """Every id of the other org, through every operation with an {id}, as `me`: a 404."""
    bad = []
    for operation in operations:
        resource = path_id_resource(operation.path)
        if resource is None:
            continue
        allowed = {403, 404} if resource in _KEY_FORBIDDEN else {404}
        for pk in sorted(other.ids.get(resource, set())):
            url = base_url + operation.path.replace("{id}", str(pk))
            method = operation.method.upper()
            body: dict[str, Any] | None = {} if method in ("POST", "PATCH") else None
            response = session.request(method, url, json=body, headers=me.headers, timeout=30)
            tally.swept += 1
            if response.status_code not in allowed or other.marker in response.text:
                bad.append(f"{method} {url} as {me.org.slug}: {response.status_code}")
    return bad


@pytest.fixture
def tenants(
    org: Organization, other_org: Organization, settings: LazySettings
) -> tuple[Tenant, Tenant]:
    limits = {**settings.PLAN_LIMITS}
    limits["business"] = {**limits["business"], "rate": "1000000/m"}
    settings.PLAN_LIMITS = limits
    return _seed_tenant(org, "alpha-only-q7x"), _seed_tenant(other_org, "bravo-only-k3z")


def test_schemathesis_finds_no_errors_and_no_cross_org_access(
    live_server: Any, tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, bravo = tenants
    base_url = live_server.url
    schema: Any = schemathesis.openapi.from_url(f"{base_url}/api/v1/schema")
    session = requests.Session()
    tally = Tally()
    started = time.monotonic()

    operations = [result.ok() for result in schema.get_all_operations()]
    swept = _sweep_other_org_ids(operations, alpha, bravo, base_url, session, tally)
    swept += _sweep_other_org_ids(operations, bravo, alpha, base_url, session, tally)
    for me, other in ((alpha, bravo), (bravo, alpha)):
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(
                    operation=operation,
                    mode=mode,
                    me=me,
                    other=other,
                    base_url=base_url,
                    session=session,
                    tally=tally,
                )
    # Whatever the fuzzing left of each org's objects is still out of the other's reach.
    swept += _sweep_other_org_ids(operations, alpha, bravo, base_url, session, tally)
    swept += _sweep_other_org_ids(operations, bravo, alpha, base_url, session, tally)
    # Members, invitations, keys and the audit trail are for signed-in members only (a key gets
    # 403): fuzz them as Alpha's owner, last, since that may revoke Alpha's keys.
    for operation in operations:
        if operation.path.split("/")[3] in _KEY_FORBIDDEN:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(
                    operation=operation,
                    mode=mode,
                    me=alpha,
                    other=bravo,
                    base_url=base_url,
                    session=session,
                    tally=tally,
                    as_member=True,
                )
    elapsed = time.monotonic() - started

    total = sum(tally.cases.values())
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    print(f"\nschemathesis: {total} cases over {len(tally.cases)} operations in {elapsed:.0f} s")
    for label, n in sorted(tally.cases.items()):
        print(f"  {n:5d}  {label}")
    print(f"  statuses: {dict(sorted(tally.statuses.items()))}")
    print(f"  aimed at the other org's ids: {tally.aimed_at_other_org}")
    print(f"  other org's ids sent through every {{id}} operation: {tally.swept} requests")
    print(f"  failures: {len(tally.failures)}; cross-org hits: {len(tally.cross_org_hits)}")
    for hit in tally.cross_org_hits[:20]:
        print(f"  CROSS-ORG: {hit}")
    assert not tally.failures, "\n\n".join(f"{k}\n{v}" for k, v in tally.failures.items())
    assert server_errors == 0
    assert not tally.cross_org_hits, "\n".join(tally.cross_org_hits[:50])
    assert not swept, "\n".join(swept)
    assert total >= MIN_TOTAL_CASES, f"only {total} cases; raise PUNA_FUZZ_EXAMPLES"
    assert tally.aimed_at_other_org > 0


def test_fuzz_helpers_map_paths_to_resources() -> None:
    assert response_resource("/api/v1/feedback/{id}/") == "feedback"
    assert response_resource("/api/v1/label-sets/{id}/examples/") == "examples"
    assert path_id_resource("/api/v1/label-sets/{id}/examples/") == "label-sets"
    assert path_id_resource("/api/v1/feedback/") is None
    assert sorted(_ids_in({"results": [{"id": 1}, {"id": 2}]})) == [1, 2]
    assert sorted(_ids_in({"base": [{"id": 3}], "org": [{"id": 4}]})) == [3, 4]
