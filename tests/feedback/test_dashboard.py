"""The dashboard's feedback and model pages: roles, isolation, escaping, exports, reviews."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from feedback import imports
from feedback.models import Feedback, ImportJob, ReviewEvent, ReviewStatus
from feedback.services import FeedbackInput, feedback_ingest
from inference import services as inference_services
from inference.models import LabelSet, ModelVersion, Task, VersionStatus
from tenants.models import Membership, Organization, Role
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db

XSS = '<script>alert("puna")</script><img src=x onerror=alert(1)>'
FORMULA = '=HYPERLINK("http://evil.example","click")'
SPAM = "BUY NOW!!! Cheap loans http://spam.example.com http://spam.example.com call 09171234567"


def _ingest(org: Organization, *texts: str, source: str = "form") -> list[Feedback]:
    result = feedback_ingest(org=org, items=[FeedbackInput(text=t, source=source) for t in texts])
    assert not result.errors, result.errors
    return [result.created[i] for i in range(len(texts))]


def _labels(org: Organization) -> LabelSet:
    return inference_services.label_set_create(
        org=org, name="Topics", labels=["Teaching", "Facilities"], created_by=None
    )


def _version(org: Organization, label_set: LabelSet, name: str, f1: float) -> ModelVersion:
    return ModelVersion.objects.create(
        task=Task.CATEGORY,
        organization=org,
        label_set=label_set,
        version=name,
        artifact=b"not-a-model",
        sha256="0" * 64,
        labels=label_set.labels,
        metrics={"macro_f1": f1, "accuracy": f1, "n": 40, "examples": 40},
    )


@pytest.fixture
def alpha(org: Organization, owner: Membership) -> dict[str, Any]:
    """Alpha's data: ordinary, hostile and flagged feedback, an import, a label set, versions."""
    items = _ingest(
        org,
        "Ang galing ng teacher namin, salamat po!",
        "The wifi in the library is so slow, I cannot research.",
        XSS,
        FORMULA,
        SPAM,
    )
    # A hostile source name reaches the overview's chart data.
    _ingest(org, "Okay lang ang canteen", source="</script><script>alert(2)</script>")
    job = imports.import_create(
        org=org,
        filename="comments.csv",
        content=b"comment\nMaganda ang klase\nMainit sa room\n",
        mapping=None,
        created_by=owner.user,
    )
    label_set = _labels(org)
    first = _version(org, label_set, "cat-a", 0.70)
    inference_services.model_version_activate(org=org, version=first)
    second = _version(org, label_set, "cat-b", 0.80)
    return {
        "feedback": items,
        "xss": items[2],
        "formula": items[3],
        "job": job,
        "label_set": label_set,
        "versions": (first, second),
    }


def _pages(slug: str, data: dict[str, Any]) -> list[str]:
    fb = data["feedback"][0].pk
    return [
        f"/o/{slug}/",
        f"/o/{slug}/?period=7",
        f"/o/{slug}/?period=90",
        f"/o/{slug}/?period=custom&since=2020-01-01&until=2030-12-31",
        f"/o/{slug}/feedback/",
        f"/o/{slug}/feedback/?q=wifi&sentiment=negative&flagged=no&status=new&language=en",
        f"/o/{slug}/feedback/{fb}/",
        f"/o/{slug}/anomalies/",
        f"/o/{slug}/anomalies/?status=",
        f"/o/{slug}/imports/",
        f"/o/{slug}/imports/{data['job'].pk}/",
        f"/o/{slug}/models/",
        f"/o/{slug}/models/label-sets/{data['label_set'].pk}/",
    ]


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.ANALYST, Role.VIEWER])
def test_every_page_renders_for_each_role(
    role: str,
    org: Organization,
    alpha: dict[str, Any],
    make_member: Callable[..., Membership],
    login_as: Callable[[Membership], Client],
) -> None:
    client = login_as(make_member(org, role))
    for url in _pages(org.slug, alpha):
        response = client.get(url)
        assert response.status_code == 200, url
    assert client.get(f"/o/{org.slug}/imports/{alpha['job'].pk}/progress/").json()["total"] == 2
    assert client.get(f"/o/{org.slug}/feedback/export.csv").status_code == 200
    assert client.get(f"/o/{org.slug}/imports/{alpha['job'].pk}/errors.csv").status_code == 200


def test_viewer_sees_no_mutating_controls(
    org: Organization,
    alpha: dict[str, Any],
    make_member: Callable[..., Membership],
    login_as: Callable[[Membership], Client],
) -> None:
    viewer = login_as(make_member(org, Role.VIEWER))
    for url in _pages(org.slug, alpha):
        html = viewer.get(url).content.decode()
        # The only form that posts is the layout's "Sign out".
        assert html.count('method="post"') == 1, url
        assert "Sign out" in html


def _writes(slug: str, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    fb = data["feedback"][0].pk
    label_set = data["label_set"].pk
    return [
        (f"/o/{slug}/feedback/{fb}/review/", {"corrected_sentiment": "negative"}),
        (f"/o/{slug}/feedback/bulk/", {"ids": [fb], "status": "dismissed"}),
        (f"/o/{slug}/imports/", {"action": "import"}),
        (f"/o/{slug}/models/label-sets/new/", {"name": "Other", "labels": "a\nb"}),
        (f"/o/{slug}/models/label-sets/{label_set}/", {"text": "Ok", "label": "Teaching"}),
        (f"/o/{slug}/models/label-sets/{label_set}/train/", {}),
        (f"/o/{slug}/models/versions/{data['versions'][1].pk}/activate/", {}),
        (f"/o/{slug}/models/rollback/", {}),
    ]


def test_viewer_is_refused_every_write(
    org: Organization,
    alpha: dict[str, Any],
    make_member: Callable[..., Membership],
    login_as: Callable[[Membership], Client],
) -> None:
    viewer = login_as(make_member(org, Role.VIEWER))
    for url, data in _writes(org.slug, alpha):
        assert viewer.post(url, data).status_code == 403, url
    fb = Feedback.objects.get(pk=alpha["feedback"][0].pk)
    assert fb.corrected_sentiment is None
    assert fb.status == ReviewStatus.NEW
    assert not ReviewEvent.objects.exists()
    assert alpha["versions"][1].__class__.objects.get(pk=alpha["versions"][1].pk).status == (
        VersionStatus.CANDIDATE
    )


def test_other_orgs_ids_are_404_on_every_page_and_action(
    org: Organization, alpha: dict[str, Any], other_owner: Membership, login_as: Any
) -> None:
    charlie = login_as(other_owner)
    own = other_owner.organization.slug
    fb = alpha["feedback"][0].pk
    pages = [
        url.replace(f"/o/{org.slug}/", f"/o/{own}/")
        for url in _pages(org.slug, alpha)
        if any(part in url for part in ("/feedback/", "/imports/", "/label-sets/"))
        and "?" not in url
        and not url.endswith(("/feedback/", "/imports/"))
    ]
    pages += [
        f"/o/{own}/imports/{alpha['job'].pk}/progress/",
        f"/o/{own}/imports/{alpha['job'].pk}/errors.csv",
    ]
    assert len(pages) == 5
    for url in pages:
        assert charlie.get(url).status_code == 404, url
    for url, data in _writes(org.slug, alpha):
        # Alpha's slug: not a member. Alpha's ids in Charlie's own org: not found.
        assert charlie.post(url, data).status_code == 404, url
        if "/label-sets/new/" in url or url.endswith(("/rollback/", "/imports/")):
            continue
        assert charlie.post(url.replace(f"/o/{org.slug}/", f"/o/{own}/"), data).status_code == (
            404
        ), url
    # Labelling an example from Alpha's feedback inside Charlie's own label set: not found.
    charlie_set = _labels(other_owner.organization)
    response = charlie.post(
        f"/o/{own}/models/label-sets/{charlie_set.pk}/", {"feedback_id": fb, "label": "Teaching"}
    )
    assert response.status_code == 404
    # A bulk action mixing one's own and a foreign id changes nothing.
    (mine,) = _ingest(other_owner.organization, "Ayos naman")
    response = charlie.post(
        f"/o/{own}/feedback/bulk/", {"ids": [mine.pk, fb], "status": "dismissed"}
    )
    assert response.status_code == 404
    assert Feedback.objects.get(pk=mine.pk).status == ReviewStatus.NEW
    assert Feedback.objects.get(pk=fb).status == ReviewStatus.NEW
    # And nothing of Alpha's shows in Charlie's lists.
    html = charlie.get(f"/o/{own}/feedback/").content.decode()
    assert "library is so slow" not in html
    assert "Ayos naman" in html
    assert "comments.csv" not in charlie.get(f"/o/{own}/imports/").content.decode()
    assert "Topics" in charlie.get(f"/o/{own}/models/").content.decode()  # Charlie's own set
    assert "cat-a" not in charlie.get(f"/o/{own}/models/").content.decode()


def test_csv_export_neutralises_formula_cells_and_follows_the_filter(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    response = web_client.get(f"/o/{org.slug}/feedback/export.csv")
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode("utf-8-sig")  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 6
    texts = {row["text"] for row in rows}
    assert "'" + FORMULA in texts
    assert FORMULA not in texts
    assert all(not row["text"].startswith(("=", "+", "-", "@")) for row in rows)

    filtered = web_client.get(f"/o/{org.slug}/feedback/export.csv?q=wifi")
    body = b"".join(filtered.streaming_content).decode("utf-8-sig")  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["id"] for row in rows] == [str(alpha["feedback"][1].pk)]


def test_feedback_text_is_escaped_everywhere(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    slug = org.slug
    urls = [
        f"/o/{slug}/",
        f"/o/{slug}/feedback/",
        f"/o/{slug}/feedback/{alpha['xss'].pk}/",
        f"/o/{slug}/models/label-sets/{alpha['label_set'].pk}/",
    ]
    for url in urls:
        html = web_client.get(url).content.decode()
        assert '<script>alert("puna")' not in html, url
        assert "<img src=x" not in html, url
        assert "<script>alert(2)" not in html, url
    detail = web_client.get(urls[2]).content.decode()
    assert "&lt;script&gt;alert(&quot;puna&quot;)&lt;/script&gt;" in detail
    # The hostile source sits in the chart data, escaped so it cannot close the script tag.
    overview = web_client.get(urls[0]).content.decode()
    assert "\\u003C/script\\u003E\\u003Cscript\\u003Ealert(2)" in overview


def test_inline_correction_returns_json_and_records_history(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    fb = alpha["feedback"][1]
    url = f"/o/{org.slug}/feedback/{fb.pk}/review/"
    response = web_client.post(
        url,
        {"corrected_sentiment": "positive", "corrected_category": "Facilities"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    assert response.json()["feedback"] == {
        "id": fb.pk,
        "sentiment": "positive",
        "category": "Facilities",
        "status": "reviewed",
    }
    bad = web_client.post(url, {"corrected_category": "Nope"}, HTTP_ACCEPT="application/json")
    assert bad.status_code == 400
    assert "corrected_category" in bad.json()["errors"]
    # The correction became a training example and shows in the review history.
    assert alpha["label_set"].examples.filter(label="Facilities").count() == 1
    detail = web_client.get(f"/o/{org.slug}/feedback/{fb.pk}/").content.decode()
    assert "alice@alpha.example" in detail
    assert "sentiment \u2013 \u2192 positive" in detail
    # Without JavaScript: a redirect back to where the form was.
    plain = web_client.post(url, {"status": "dismissed", "next": f"/o/{org.slug}/feedback/"})
    assert plain.status_code == 302
    assert plain["Location"] == f"/o/{org.slug}/feedback/"
    offsite = web_client.post(url, {"status": "new", "next": "https://evil.example/"})
    assert offsite["Location"] == f"/o/{org.slug}/feedback/{fb.pk}/"


def test_saving_a_row_unchanged_marks_it_reviewed_without_a_correction(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    fb = alpha["feedback"][0]
    web_client.post(
        f"/o/{org.slug}/feedback/{fb.pk}/review/", {"corrected_sentiment": fb.sentiment}
    )
    fb.refresh_from_db()
    assert fb.status == ReviewStatus.REVIEWED
    assert fb.corrected_sentiment is None


def test_bulk_status_changes_the_selected_items(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    chosen = [alpha["feedback"][0].pk, alpha["feedback"][1].pk]
    response = web_client.post(
        f"/o/{org.slug}/feedback/bulk/", {"ids": chosen, "status": "reviewed"}
    )
    assert response.status_code == 302
    statuses = dict(Feedback.objects.values_list("pk", "status"))
    assert [statuses[pk] for pk in chosen] == ["reviewed", "reviewed"]
    assert statuses[alpha["feedback"][2].pk] == "new"
    assert web_client.post(f"/o/{org.slug}/feedback/bulk/", {"status": "reviewed"}).status_code == (
        302
    )


def test_explorer_filters_search_and_paginates(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    html = web_client.get(f"/o/{org.slug}/feedback/?q=wifi").content.decode()
    assert "1 item match" in html
    assert "library" in html
    assert "teacher" not in html
    _ingest(org, *[f"Comment number {n} about the canteen food" for n in range(30)])
    page1 = web_client.get(f"/o/{org.slug}/feedback/?source=form").content.decode()
    assert "Page 1 of 2" in page1
    page2 = web_client.get(f"/o/{org.slug}/feedback/?source=form&page=2").content.decode()
    assert "Page 2 of 2" in page2
    ignored = web_client.get(f"/o/{org.slug}/feedback/?since=notadate&sentiment=angry")
    assert ignored.status_code == 200
    assert "ignored" in ignored.content.decode()


def test_new_org_sees_how_to_send_its_first_feedback(web_client: Client, org: Organization) -> None:
    key, _ = make_api_key(org, name="Survey form")
    html = web_client.get(f"/o/{org.slug}/").content.decode()
    assert 'id="empty-state"' in html
    assert f"puna_{key.prefix}_" in html
    assert "curl -X POST" in html
    assert "/api/v1/feedback" in html


def test_overview_shows_kpis_charts_and_latest_flagged(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    response = web_client.get(f"/o/{org.slug}/?period=7")
    charts = response.context["charts"]
    assert response.context["kpis"]["volume"] == 6
    assert sum(charts["volume"]["total"]) == 6
    assert len(charts["volume"]["labels"]) in (7, 8)  # the current partial day included
    assert sum(charts["source"]["values"]) == 6
    flagged = Feedback.objects.filter(organization=org, flagged=True).count()
    assert response.context["kpis"]["flagged"] == flagged
    assert len(response.context["latest_flagged"]) == flagged
    # A custom period before anything arrived: zero, but not the new-org empty state.
    empty = web_client.get(f"/o/{org.slug}/?period=custom&since=2020-01-01&until=2020-01-31")
    assert empty.context["kpis"]["volume"] == 0
    assert 'id="empty-state"' not in empty.content.decode()
    bad = web_client.get(f"/o/{org.slug}/?period=custom&since=2020-02-01&until=2020-01-01")
    assert "must not be after" in bad.content.decode()


def test_upload_previews_columns_then_queues_the_import(
    web_client: Client, org: Organization
) -> None:
    content = b"id,comment,channel\n1,Ang init sa classroom,sms\n2,Great teacher,form\n"

    def upload(**fields: Any) -> Any:
        data = {"file": io.BytesIO(content), "source": "survey", **fields}
        data["file"].name = "survey.csv"
        return web_client.post(f"/o/{org.slug}/imports/", data)

    preview = upload(action="preview", HTTP_X_PUNA_FRAGMENT="preview")
    html = preview.content.decode()
    assert '<option value="comment" selected>comment</option>' in html
    assert "Ang init sa classroom" in html
    wrong = upload(action="import", map_text="nope")
    assert wrong.status_code == 200
    assert "There is no column named" in wrong.content.decode()
    response = upload(action="import", map_text="comment", map_source="channel")
    job = ImportJob.objects.get(organization=org)
    assert response["Location"] == f"/o/{org.slug}/imports/{job.pk}/"
    assert job.mapping["source"] == "channel"
    progress = web_client.get(f"/o/{org.slug}/imports/{job.pk}/progress/").json()
    assert progress == {
        "status": "queued",
        "status_label": "Queued",
        "done": False,
        "percent": 0,
        "processed": 0,
        "total": 2,
        "created": 0,
        "duplicates": 0,
        "errors": 0,
        "text": "Queued: 0 of 2 rows (0%)",
    }


def test_anomalies_group_flagged_items_by_reason_and_confirm_or_dismiss(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    flagged = list(Feedback.objects.filter(organization=org, flagged=True))
    assert flagged, "the spam text should be flagged"
    response = web_client.get(f"/o/{org.slug}/anomalies/")
    reasons = {g["reason"] for g in response.context["groups"]}
    assert reasons == {r for fb in flagged for r in fb.reasons}
    target = flagged[0]
    web_client.post(f"/o/{org.slug}/feedback/{target.pk}/review/", {"status": "dismissed"})
    target.refresh_from_db()
    assert target.status == ReviewStatus.DISMISSED
    open_items = web_client.get(f"/o/{org.slug}/anomalies/").context["groups"]
    assert all(target.pk not in [fb.pk for fb in g["items"]] for g in open_items)
    reason = target.reasons[0]
    page = web_client.get(f"/o/{org.slug}/anomalies/?status=dismissed&reason={reason}")
    assert [fb.pk for fb in page.context["page"].object_list] == [target.pk]


def test_switching_off_categories_is_the_orgs_own_and_needs_models_write(
    web_client: Client,
    org: Organization,
    alpha: dict[str, Any],
    other_owner: Membership,
    make_member: Callable[..., Membership],
    login_as: Callable[[Membership], Client],
) -> None:
    first, _ = alpha["versions"]
    url = f"/o/{org.slug}/models/deactivate/"
    assert login_as(other_owner).post(url).status_code == 404
    assert login_as(make_member(org, Role.VIEWER)).post(url).status_code == 403
    assert web_client.get(url).status_code == 405
    first.refresh_from_db()
    assert first.status == VersionStatus.ACTIVE
    assert web_client.post(url).status_code == 302
    first.refresh_from_db()
    assert first.status == VersionStatus.RETIRED


def _shipped_manifest() -> dict[str, Any]:
    path = Path(__file__).resolve().parents[2] / "onnx_models" / "manifest.json"
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return manifest


def test_models_page_compares_activates_and_rolls_back(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    first, second = alpha["versions"]
    page = web_client.get(f"/o/{org.slug}/models/")
    rows = {row["version"].pk: row for row in page.context["versions"]}
    assert rows[second.pk]["delta_f1"] == pytest.approx(0.10)
    assert {m["task"] for m in page.context["base_models"]} >= {"Sentiment", "Language"}
    # The anomaly screen's figures on the evaluation set, from the manifest's metrics.
    [anomaly] = [m for m in page.context["base_models"] if m["task"] == "Anomaly"]
    screening = _shipped_manifest()["models"]["anomaly"]["metrics"]["screening"]
    assert anomaly["screening"] == {
        "languages": ["Cebuano", "English", "Tagalog"],
        "normal_n": sum(m["n"] for m in screening["eval_normal"].values()),
        "normal_flagged": sum(m["flagged"] for m in screening["eval_normal"].values()),
        "planted_n": screening["eval_anomalous"]["n"],
        "caught": screening["eval_anomalous"]["caught"],
    }
    assert "planted spam, abuse, gibberish" in page.content.decode()
    web_client.post(f"/o/{org.slug}/models/versions/{second.pk}/activate/")
    second.refresh_from_db()
    assert second.status == VersionStatus.ACTIVE
    web_client.post(f"/o/{org.slug}/models/rollback/")
    first.refresh_from_db()
    assert first.status == VersionStatus.ACTIVE
    assert "Stop using categories" in web_client.get(f"/o/{org.slug}/models/").content.decode()
    web_client.post(f"/o/{org.slug}/models/deactivate/")
    first.refresh_from_db()
    assert first.status == VersionStatus.RETIRED
    page = web_client.get(f"/o/{org.slug}/models/")
    assert page.context["active"] is None
    assert "Stop using categories" not in page.content.decode()


def test_label_sets_are_created_labelled_and_training_explains_what_is_missing(
    web_client: Client, org: Organization, alpha: dict[str, Any]
) -> None:
    response = web_client.post(
        f"/o/{org.slug}/models/label-sets/new/", {"name": "Support", "labels": "Billing, Bugs"}
    )
    label_set = LabelSet.objects.get(organization=org, name="Support")
    assert response["Location"] == f"/o/{org.slug}/models/label-sets/{label_set.pk}/"
    url = f"/o/{org.slug}/models/label-sets/{label_set.pk}/"
    web_client.post(url, {"text": "I was charged twice", "label": "Billing"})
    web_client.post(url, {"feedback_id": alpha["feedback"][1].pk, "label": "Bugs"})
    assert sorted(label_set.examples.values_list("label", flat=True)) == ["Billing", "Bugs"]
    refused = web_client.post(f"{url}train/", follow=True)
    assert "need more" in refused.content.decode()
    assert not label_set.runs.exists()


def test_pages_of_a_new_org_work_before_anything_exists(
    web_client: Client, org: Organization
) -> None:
    for url in [
        f"/o/{org.slug}/feedback/",
        f"/o/{org.slug}/anomalies/",
        f"/o/{org.slug}/imports/",
        f"/o/{org.slug}/models/",
    ]:
        assert web_client.get(url).status_code == 200, url
