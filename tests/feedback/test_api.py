"""The feedback API: ingestion, idempotency, review, filters, classify, stats, isolation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from feedback.models import Feedback, UsagePeriod
from tenants.models import Organization
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db

ENGLISH_NEGATIVE = "The wifi in the library is terrible and the staff were rude to us."
TAGALOG_POSITIVE = "Ang galing po ng teacher namin, sobrang linaw magpaliwanag!"


def _post(client: APIClient, body: Any, **headers: Any) -> Any:
    return client.post("/api/v1/feedback", body, format="json", **headers)


def test_post_feedback_returns_the_classified_record(api_key_client: APIClient) -> None:
    response = _post(api_key_client, {"text": f"  {TAGALOG_POSITIVE}  ", "source": "form"})
    assert response.status_code == 201
    body = response.json()
    assert body["text"] == TAGALOG_POSITIVE
    assert body["source"] == "form"
    assert body["sentiment"]["label"] in {"negative", "neutral", "positive"}
    assert set(body["sentiment"]["scores"]) == {"negative", "neutral", "positive"}
    assert abs(sum(body["sentiment"]["scores"].values()) - 1) < 1e-4
    assert body["language"]["code"] in {"en", "tl", "ceb", "other"}
    assert body["category"] is None
    assert set(body["anomaly"]) == {"score", "flagged", "reasons"}
    assert body["model_versions"]
    assert body["status"] == "new"
    assert Feedback.objects.get(pk=body["id"]).language == body["language"]["code"]


def test_same_external_id_returns_the_existing_record(api_key_client: APIClient) -> None:
    first = _post(api_key_client, {"text": ENGLISH_NEGATIVE, "external_id": "form-42"})
    again = _post(api_key_client, {"text": "different text", "external_id": "form-42"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Feedback.objects.filter(external_id="form-42").count() == 1


def test_idempotency_key_replays_the_first_answer(api_key_client: APIClient) -> None:
    headers = {"HTTP_IDEMPOTENCY_KEY": "retry-123"}
    first = _post(api_key_client, {"text": ENGLISH_NEGATIVE}, **headers)
    second = _post(api_key_client, {"text": ENGLISH_NEGATIVE}, **headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Feedback.objects.count() == 1
    reused = _post(api_key_client, {"text": "another"}, **headers)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"


def test_idempotency_keys_belong_to_one_org(
    api_key_client: APIClient, other_api_key_client: APIClient
) -> None:
    headers = {"HTTP_IDEMPOTENCY_KEY": "shared-key"}
    assert _post(api_key_client, {"text": ENGLISH_NEGATIVE}, **headers).status_code == 201
    other = _post(other_api_key_client, {"text": ENGLISH_NEGATIVE}, **headers)
    assert other.status_code == 201
    assert "Idempotent-Replayed" not in other


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "x" * 10_001}, "text"),
        ({"text": 42}, "text"),
        ({"text": "ok", "source": "s" * 51}, "source"),
        ({"text": "ok", "metadata": "not an object"}, "metadata"),
        ({"text": "ok", "metadata": {"blob": "x" * 17_000}}, "metadata"),
        ({"text": "ok", "submitted_at": "last tuesday"}, "submitted_at"),
        ({"text": "ok", "colour": "blue"}, "colour"),
        ({"text": "a\x00b"}, "text"),
    ],
)
def test_bad_input_gets_problem_details_naming_the_field(
    api_key_client: APIClient, body: dict[str, Any], field: str
) -> None:
    response = _post(api_key_client, body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert field in problem["errors"]
    assert Feedback.objects.count() == 0


def test_read_only_key_cannot_write_but_can_classify(org: Organization) -> None:
    _, raw = make_api_key(org, "read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert _post(client, {"text": ENGLISH_NEGATIVE}).status_code == 403
    assert (
        client.post("/api/v1/feedback/batch", {"items": [{"text": "x"}]}, format="json").status_code
        == 403
    )
    classified = client.post("/api/v1/classify", {"texts": [ENGLISH_NEGATIVE]}, format="json")
    assert classified.status_code == 200
    assert client.get("/api/v1/feedback").status_code == 200


def test_batch_stores_valid_items_and_reports_invalid_ones_by_index(
    api_key_client: APIClient,
) -> None:
    _post(api_key_client, {"text": "already here", "external_id": "old-1"})
    items = [
        {"text": ENGLISH_NEGATIVE},
        {"text": ""},
        {"text": TAGALOG_POSITIVE, "external_id": "b-1"},
        {"text": "dup of b-1", "external_id": "b-1"},
        {"text": "known", "external_id": "old-1"},
        "not an object",
        {"text": "Nindot kaayo ang serbisyo sa munisipyo.", "unknown": 1},
    ]
    response = api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json")
    assert response.status_code == 200
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["created", "error", "created", "existing", "existing", "error", "error"]
    assert body["created"] == 2
    assert body["existing"] == 2
    assert body["failed"] == 3
    assert "text" in body["results"][1]["errors"]
    assert "unknown" in body["results"][6]["errors"]
    assert body["results"][3]["id"] == body["results"][2]["id"]
    assert Feedback.objects.count() == 3


def test_batch_refuses_more_than_a_thousand_items(api_key_client: APIClient) -> None:
    items = [{"text": f"item {i}"} for i in range(1001)]
    response = api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json")
    assert response.status_code == 400
    assert "items" in response.json()["errors"]
    assert Feedback.objects.count() == 0


def test_list_filters_and_full_text_search(api_key_client: APIClient) -> None:
    batch = [
        {"text": "The canteen food is cold and overpriced", "source": "form"},
        {"text": "Great teacher, very clear explanations", "source": "app"},
        {"text": "Wifi sa library ay mabagal", "source": "form"},
    ]
    api_key_client.post("/api/v1/feedback/batch", {"items": batch}, format="json")
    everything = api_key_client.get("/api/v1/feedback").json()["results"]
    assert len(everything) == 3
    forms = api_key_client.get("/api/v1/feedback?source=form").json()["results"]
    assert {r["source"] for r in forms} == {"form"}
    found = api_key_client.get("/api/v1/feedback?q=canteen").json()["results"]
    assert [r["text"] for r in found] == [batch[0]["text"]]
    label = everything[0]["sentiment"]["label"]
    by_sentiment = api_key_client.get(f"/api/v1/feedback?sentiment={label}").json()["results"]
    assert by_sentiment
    assert all(r["sentiment"]["label"] == label for r in by_sentiment)
    bad = api_key_client.get("/api/v1/feedback?sentiment=angry&since=yesterday")
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"sentiment", "since"}


def test_list_paginates_with_a_cursor(api_key_client: APIClient) -> None:
    items = [{"text": f"Comment number {i} about the enrollment"} for i in range(7)]
    api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json")
    page = api_key_client.get("/api/v1/feedback?page_size=3").json()
    seen = [r["id"] for r in page["results"]]
    while page["next"]:
        page = api_key_client.get(page["next"]).json()
        seen += [r["id"] for r in page["results"]]
    assert len(seen) == len(set(seen)) == 7


def test_patch_changes_only_review_fields_and_records_who(
    api_client: APIClient, api_key_client: APIClient
) -> None:
    record = _post(api_key_client, {"text": ENGLISH_NEGATIVE}).json()
    response = api_client.patch(
        f"/api/v1/feedback/{record['id']}",
        {"corrected_sentiment": "neutral", "status": "reviewed"},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["review"]["corrected_sentiment"] == "neutral"
    assert body["review"]["reviewed_by"] == "alice@alpha.example"
    assert body["status"] == "reviewed"
    refused = api_client.patch(
        f"/api/v1/feedback/{record['id']}", {"text": "rewritten"}, format="json"
    )
    assert refused.status_code == 400
    assert "text" in refused.json()["errors"]
    assert Feedback.objects.get(pk=record["id"]).text == ENGLISH_NEGATIVE


def test_other_org_cannot_see_or_touch_feedback(
    api_key_client: APIClient, other_api_key_client: APIClient
) -> None:
    record = _post(api_key_client, {"text": ENGLISH_NEGATIVE, "external_id": "alpha-1"}).json()
    assert other_api_key_client.get("/api/v1/feedback").json()["results"] == []
    url = f"/api/v1/feedback/{record['id']}"
    assert other_api_key_client.get(url).status_code == 404
    assert (
        other_api_key_client.patch(url, {"status": "dismissed"}, format="json").status_code == 404
    )
    assert other_api_key_client.delete(url).status_code == 404
    # The same external_id in another org is a different record.
    other = _post(other_api_key_client, {"text": "hello", "external_id": "alpha-1"})
    assert other.status_code == 201
    assert other.json()["id"] != record["id"]
    stats = other_api_key_client.get("/api/v1/stats").json()
    assert stats["total"] == 1
    assert api_key_client.delete(url).status_code == 204
    assert not Feedback.objects.filter(pk=record["id"]).exists()


def test_classify_does_not_store_and_limits_batch_size(api_key_client: APIClient) -> None:
    response = api_key_client.post(
        "/api/v1/classify", {"texts": [ENGLISH_NEGATIVE, TAGALOG_POSITIVE]}, format="json"
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 2
    assert results[0]["sentiment"]["label"] in {"negative", "neutral", "positive"}
    assert Feedback.objects.count() == 0
    too_many = api_key_client.post("/api/v1/classify", {"texts": ["x"] * 101}, format="json")
    assert too_many.status_code == 400
    empty = api_key_client.post("/api/v1/classify", {"texts": ["ok", "  "]}, format="json")
    assert empty.status_code == 400
    assert empty.json()["errors"]["texts"]


def test_stats_and_usage(api_key_client: APIClient, org: Organization) -> None:
    items = [{"text": ENGLISH_NEGATIVE}, {"text": TAGALOG_POSITIVE}]
    api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json")
    stats = api_key_client.get("/api/v1/stats?interval=week").json()
    assert stats["total"] == 2
    assert sum(stats["sentiment"].values()) == 2
    assert sum(point["total"] for point in stats["series"]) == 2
    usage = api_key_client.get("/api/v1/usage").json()
    assert usage["plan"] == "free"
    assert usage["items"] == 2
    assert usage["items_quota"] == 5000
    assert usage["items_remaining"] == 4998


def test_usage_counts_this_months_api_requests(org: Organization) -> None:
    from monitoring.services import monitoring_flush

    _, raw = make_api_key(org, "read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    monitoring_flush()
    before = client.get("/api/v1/usage").json()["requests"]
    for _ in range(3):
        client.get("/api/v1/org")
    monitoring_flush()
    # The three calls plus the first /usage call itself.
    assert client.get("/api/v1/usage").json()["requests"] == before + 4


def test_monthly_quota_refuses_with_429_and_keeps_what_fit(
    api_key_client: APIClient, org: Organization
) -> None:
    from django.utils import timezone

    UsagePeriod.objects.create(
        organization=org, month=timezone.now().date().replace(day=1), items=4_999
    )
    items = [{"text": f"feedback {i} about the canteen"} for i in range(3)]
    response = api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json")
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["created", "error", "error"]
    assert "quota" in body["results"][1]["errors"]
    refused = _post(api_key_client, {"text": "one more"})
    assert refused.status_code == 429
    assert refused.json()["code"] == "quota_exceeded"
    assert int(refused["Retry-After"]) > 0
    assert Feedback.objects.count() == 1


def test_free_plan_gets_429_on_the_61st_request_with_headers(org: Organization) -> None:
    _, raw = make_api_key(org, "read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    # Counting windows are fixed per key; if this one ends soon, start in the next one so the
    # 61 requests cannot straddle two windows.
    first = client.get("/api/v1/org")
    reset = int(first["X-RateLimit-Reset"])
    responses = [first]
    if reset - time.time() < 15:
        time.sleep(max(0.0, reset - time.time()) + 1.1)
        responses = []
    responses += [client.get("/api/v1/org") for _ in range(61 - len(responses))]
    assert [r.status_code for r in responses[:60]] == [200] * 60
    assert responses[0]["X-RateLimit-Limit"] == "60"
    assert responses[0]["X-RateLimit-Remaining"] == "59"
    assert responses[59]["X-RateLimit-Remaining"] == "0"
    limited = responses[60]
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert limited["X-RateLimit-Remaining"] == "0"
    assert int(limited["X-RateLimit-Reset"]) > time.time()
    assert limited.json()["code"] == "throttled"


def test_large_batch_round_trips_every_field(api_key_client: APIClient) -> None:
    """Batches of 50+ items are written from column arrays; every field must come back as sent."""
    items = [
        {
            "text": f"Comment {i}: ang bagal ng wifi sa library",
            "source": "widget",
            "external_id": f"big-{i}",
            "author_ref": f"student-{i}",
            "submitted_at": "2026-11-20T08:30:00+08:00",
            "metadata": {"grade": 11, "section": "Rizal", "tags": ["wifi", i]},
        }
        for i in range(120)
    ]
    response = api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created"] * 120
    for result in results[::17]:
        record = api_key_client.get(f"/api/v1/feedback/{result['id']}").json()
        i = result["index"]
        assert record["external_id"] == f"big-{i}"
        assert record["author_ref"] == f"student-{i}"
        assert record["metadata"] == {"grade": 11, "section": "Rizal", "tags": ["wifi", i]}
        assert record["submitted_at"] == "2026-11-20T00:30:00Z"
        assert record["source"] == "widget"
        assert set(record["sentiment"]["scores"]) == {"negative", "neutral", "positive"}
    found = api_key_client.get("/api/v1/feedback?q=wifi&page_size=200").json()["results"]
    assert len(found) == 120
    # The same batch again resolves to the stored records, not duplicates.
    again = api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json").json()
    assert again["existing"] == 120
    assert Feedback.objects.count() == 120


def test_a_batch_larger_than_the_whole_quota_stores_only_what_fits(
    api_key_client: APIClient, org: Organization
) -> None:
    from django.test import override_settings

    limits = {"free": {"rate": "600/m", "items_per_month": 3}}
    with override_settings(PLAN_LIMITS=limits):
        items = [{"text": f"feedback {i} about the library"} for i in range(5)]
        body = api_key_client.post("/api/v1/feedback/batch", {"items": items}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["created"] * 3 + ["error"] * 2
    assert UsagePeriod.objects.get(organization=org).items == 3
    assert Feedback.objects.count() == 3


def test_an_idempotency_key_left_in_progress_by_a_dead_request_is_freed(
    api_key_client: APIClient, org: Organization
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from tenants.idempotency import ABANDONED_AFTER, request_fingerprint
    from tenants.models import IdempotencyRecord

    headers = {"HTTP_IDEMPOTENCY_KEY": "died-midway"}
    body = {"text": ENGLISH_NEGATIVE}
    fingerprint = request_fingerprint(
        method="POST", path="/api/v1/feedback", body=b'{"text":"%s"}' % ENGLISH_NEGATIVE.encode()
    )
    record = IdempotencyRecord.objects.create(
        organization=org, key="died-midway", request_hash=fingerprint
    )
    # A request still running holds its key: the retry is told to wait.
    assert _post(api_key_client, body, **headers).status_code == 409
    # One that died (worker killed, database gone) leaves the key in progress for good.
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        created_at=timezone.now() - ABANDONED_AFTER - timedelta(seconds=1)
    )
    retried = _post(api_key_client, body, **headers)
    assert retried.status_code == 201
    assert Feedback.objects.count() == 1
