"""An org's own categories: label set → examples → training in the worker → activate → roll
back, through the API, with another org seeing none of it."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from feedback.models import Feedback
from feedback.services import feedback_recategorize
from inference import classify
from inference.models import ModelVersion, TrainingRun
from tenants.models import Organization
from tests.jobs import run_worker_until_idle

pytestmark = pytest.mark.django_db(transaction=True)

TEACHING = [
    "The teacher explains the lessons clearly",
    "Ma'am Reyes is very patient with our questions",
    "Our professor is always late to class",
    "Sir explains too fast, we cannot follow",
    "Ang galing magturo ni Ma'am sa Math",
    "Hindi nagtuturo ang prof, puro reporting lang",
    "Maayo kaayo mutudlo si Sir sa Science",
    "The instructor gives helpful examples in lectures",
    "Teacher reads slides and does not explain",
    "Magaling magpaliwanag ang guro namin",
    "Our adviser never answers questions in class",
    "The lecture on fractions by our teacher was excellent",
]
FACILITIES = [
    "The classroom aircon is broken again",
    "Walang tubig sa CR ng building B",
    "The library wifi is very slow",
    "Guba ang bentilador sa among classroom",
    "The chairs in room 204 are broken",
    "Sobrang init sa gym, walang electric fan",
    "The comfort rooms are dirty and smell bad",
    "Projector in the AVR does not work",
    "Kulang ang upuan sa library tuwing exam week",
    "The canteen tables are sticky and dirty",
    "Leaking roof in the science laboratory",
    "Walay kuryente sa computer lab",
]
GRADING = [
    "My grade in Filipino was computed wrong",
    "Why is my final grade lower than my exams",
    "Mali ang grade ko sa portal",
    "The grading system for the project is unfair",
    "Wala pa gi-post ang among grades",
    "Grades were released late again this semester",
    "I need a correction on my midterm grade",
    "Hindi tugma ang grade sa class record",
    "The rubric for the essay was not explained before grading",
    "Please recheck my quiz score in Math",
    "Unfair ang pag-grade sa recitation",
    "Sayop ang grado nga gi-encode sa registrar",
]


def _examples() -> list[dict[str, str]]:
    return (
        [{"text": t, "label": "Teaching"} for t in TEACHING]
        + [{"text": t, "label": "Facilities"} for t in FACILITIES]
        + [{"text": t, "label": "Grading"} for t in GRADING]
    )


def test_org_category_lifecycle(api_client: APIClient, other_api_key_client: APIClient) -> None:
    created = api_client.post(
        "/api/v1/label-sets",
        {"name": "School topics", "labels": ["Teaching", "Facilities", "Grading"]},
        format="json",
    )
    assert created.status_code == 201
    label_set = created.json()
    url = f"/api/v1/label-sets/{label_set['id']}"

    # Too few examples: refused at once, naming every label that needs more.
    api_client.post(f"{url}/examples", {"examples": _examples()[:15]}, format="json")
    refused = api_client.post(f"{url}/train", format="json")
    assert refused.status_code == 400
    message = str(refused.json()["errors"]["examples"])
    assert "Facilities (3)" in message
    assert "Grading (0)" in message
    assert "Teaching" not in message

    assert (
        api_client.post(f"{url}/examples", {"examples": _examples()}, format="json").status_code
        == 201
    )
    bad_label = api_client.post(
        f"{url}/examples", {"examples": [{"text": "x", "label": "Canteen"}]}, format="json"
    )
    assert bad_label.status_code == 400

    run = api_client.post(f"{url}/train", format="json")
    assert run.status_code == 202
    run_worker_until_idle("training")
    run_state = api_client.get(f"/api/v1/training-runs/{run.json()['id']}").json()
    assert run_state["status"] == "succeeded", run_state["error"]
    version_id = run_state["model_version"]
    version = api_client.get(f"/api/v1/models/{version_id}").json()
    assert version["status"] == "candidate"
    assert 0.0 <= version["metrics"]["macro_f1"] <= 1.0
    assert set(version["labels"]) == {"Teaching", "Facilities", "Grading"}

    # Candidates are not used until activated.
    classify.forget_cached_models()
    text = "The aircon in our classroom is broken and the CR has no water"
    before = api_client.post("/api/v1/classify", {"texts": [text]}, format="json").json()
    assert before["results"][0]["category"] is None

    assert api_client.post(f"/api/v1/models/{version_id}/activate").status_code == 200
    time.sleep(classify.CATEGORY_CHECK_SECONDS + 0.1)  # running processes notice within seconds
    after = api_client.post("/api/v1/classify", {"texts": [text]}, format="json").json()
    assert after["results"][0]["category"]["label"] == "Facilities"
    stored = api_client.post("/api/v1/feedback", {"text": text}, format="json").json()
    assert stored["category"]["label"] == "Facilities"
    assert stored["model_versions"]["category"]

    # Another org sees none of it.
    assert other_api_key_client.get("/api/v1/label-sets").json()["results"] == []
    assert other_api_key_client.get(url).status_code == 404
    assert other_api_key_client.get(f"/api/v1/models/{version_id}").status_code == 404
    assert other_api_key_client.post(f"/api/v1/models/{version_id}/activate").status_code == 404
    assert other_api_key_client.get(f"/api/v1/training-runs/{run.json()['id']}").status_code == 404
    other_result = other_api_key_client.post("/api/v1/classify", {"texts": [text]}, format="json")
    assert other_result.json()["results"][0]["category"] is None

    # Train again, activate, then roll back to the first version.
    api_client.post(
        f"{url}/examples",
        {"examples": [{"text": "Broken lockers in the hallway", "label": "Facilities"}]},
        format="json",
    )
    api_client.post(f"{url}/train", format="json")
    run_worker_until_idle("training")
    second = TrainingRun.objects.order_by("-id").first()
    assert second is not None
    assert second.model_version is not None
    api_client.post(f"/api/v1/models/{second.model_version.pk}/activate")
    assert ModelVersion.objects.get(pk=version_id).status == "retired"
    rolled = api_client.post("/api/v1/models/rollback", {"task": "category"}, format="json")
    assert rolled.status_code == 200
    assert rolled.json()["id"] == version_id
    assert ModelVersion.objects.get(pk=second.model_version.pk).status == "retired"


STORED = [
    "Our teacher explains the lessons very well",
    "Sira ang aircon sa room 204",
    "My final grade in Math was computed wrong",
    "Walay tubig sa CR sa building B",
]


def _train(api_client: APIClient, url: str) -> int:
    run = api_client.post(f"{url}/train", format="json")
    assert run.status_code == 202
    run_worker_until_idle("training")
    state = api_client.get(f"/api/v1/training-runs/{run.json()['id']}").json()
    assert state["status"] == "succeeded", state["error"]
    return int(state["model_version"])


def _stored_categories(ids: list[int]) -> list[tuple[str | None, float | None, str | None]]:
    records = Feedback.objects.filter(pk__in=ids).order_by("pk")
    return [(r.category, r.category_score, r.model_versions.get("category")) for r in records]


def _expected(version_id: int) -> list[tuple[str | None, float | None, str | None]]:
    # What ingestion would have given each text with that version active.
    model = classify.category_model_for_version(version_id)
    assert model is not None
    return [(label, score, model.version) for label, score in model.predict(STORED)]


def test_activation_and_rollback_categorise_stored_feedback(
    api_client: APIClient, other_api_key_client: APIClient, org: Organization
) -> None:
    ids = [
        api_client.post("/api/v1/feedback", {"text": t}, format="json").json()["id"] for t in STORED
    ]
    theirs = other_api_key_client.post("/api/v1/feedback", {"text": STORED[1]}, format="json")
    assert _stored_categories(ids) == [(None, None, None)] * len(STORED)
    base_versions = Feedback.objects.get(pk=ids[0]).model_versions

    label_set = api_client.post(
        "/api/v1/label-sets",
        {"name": "School topics", "labels": ["Teaching", "Facilities", "Grading"]},
        format="json",
    ).json()
    url = f"/api/v1/label-sets/{label_set['id']}"
    api_client.post(f"{url}/examples", {"examples": _examples()}, format="json")
    first = _train(api_client, url)
    # A reviewer's correction is theirs: categorising again leaves it alone.
    api_client.patch(f"/api/v1/feedback/{ids[0]}", {"corrected_category": "Grading"}, format="json")

    assert api_client.post(f"/api/v1/models/{first}/activate").status_code == 200
    run_worker_until_idle("imports")
    assert _stored_categories(ids) == _expected(first)
    assert [c for c, _, _ in _stored_categories(ids)] == [
        "Teaching",
        "Facilities",
        "Grading",
        "Facilities",
    ]
    record = Feedback.objects.get(pk=ids[0])
    assert record.corrected_category == "Grading"
    assert {k: v for k, v in record.model_versions.items() if k != "category"} == base_versions
    # Another org's feedback is not touched.
    assert Feedback.objects.get(pk=theirs.json()["id"]).category is None

    api_client.post(
        f"{url}/examples",
        {"examples": [{"text": "Broken lockers in the hallway", "label": "Facilities"}]},
        format="json",
    )
    second = _train(api_client, url)
    api_client.post(f"/api/v1/models/{second}/activate")
    run_worker_until_idle("imports")
    assert _stored_categories(ids) == _expected(second)

    api_client.post("/api/v1/models/rollback", {"task": "category"}, format="json")
    run_worker_until_idle("imports")
    assert _stored_categories(ids) == _expected(first)

    # A run for a version that is no longer active (say, queued behind a newer activation)
    # changes nothing.
    assert feedback_recategorize(org=org, version_id=second) == 0
    assert _stored_categories(ids) == _expected(first)

    # Switched off: new feedback gets no category, stored feedback keeps its categories, and a
    # roll back switches the same version on again. Another org's switch is its own.
    deactivate = "/api/v1/models/deactivate"
    assert other_api_key_client.post(deactivate, format="json").status_code == 204
    assert ModelVersion.objects.get(pk=first).status == "active"
    refused = api_client.post(deactivate, {"task": "sentiment"}, format="json")
    assert refused.status_code == 400
    assert "task" in refused.json()["errors"]
    assert ModelVersion.objects.get(pk=first).status == "active"
    assert api_client.post(deactivate, {"task": "category"}, format="json").status_code == 204
    assert ModelVersion.objects.get(pk=first).status == "retired"
    run_worker_until_idle("imports")
    assert _stored_categories(ids) == _expected(first)
    time.sleep(classify.CATEGORY_CHECK_SECONDS + 0.1)
    new = api_client.post("/api/v1/feedback", {"text": STORED[1]}, format="json").json()
    assert new["category"] is None
    rolled = api_client.post("/api/v1/models/rollback", {"task": "category"}, format="json")
    assert rolled.json()["id"] == first


def test_correcting_a_category_adds_a_training_example(api_client: APIClient) -> None:
    label_set = api_client.post(
        "/api/v1/label-sets",
        {"name": "Topics", "labels": ["Teaching", "Facilities"]},
        format="json",
    ).json()
    record = api_client.post(
        "/api/v1/feedback", {"text": "No water in the CR"}, format="json"
    ).json()
    response = api_client.patch(
        f"/api/v1/feedback/{record['id']}", {"corrected_category": "Facilities"}, format="json"
    )
    assert response.status_code == 200
    examples = api_client.get(f"/api/v1/label-sets/{label_set['id']}/examples").json()
    assert [(e["text"], e["label"], e["source"]) for e in examples] == [
        ("No water in the CR", "Facilities", "correction")
    ]
    unknown = api_client.patch(
        f"/api/v1/feedback/{record['id']}", {"corrected_category": "Canteen"}, format="json"
    )
    assert unknown.status_code == 400


def test_label_set_validation(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/label-sets", {"name": "", "labels": ["Only"]}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "labels"}
    dup = api_client.post("/api/v1/label-sets", {"name": "X", "labels": ["A", "a"]}, format="json")
    assert dup.status_code == 400
