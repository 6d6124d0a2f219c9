"""A coordinator's first day, in a real browser: sign up, upload, watch, explore, correct."""

from __future__ import annotations

import csv
import io
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from feedback.models import Feedback, ImportJob
from feedback.services import FeedbackInput, feedback_ingest
from tenants.models import Membership, Organization, Role
from tests.factories import PASSWORD, make_membership, make_org
from tests.jobs import run_worker_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMMENTS = [
    ("Ang bagal ng wifi sa library, hindi makapag-research", "form"),
    ("The wifi keeps dropping during online quizzes", "form"),
    ("Ang galing ng teacher namin sa Math, salamat po!", "sms"),
    ("Nindot kaayo ang klase ni Sir, daghang salamat", "sms"),
    ("The canteen food is too expensive for students", "email"),
    ("Mainit sa classroom, sira ang electric fan", "form"),
    ("Great job on the enrollment process this year, very fast", "email"),
    ("Ok lang naman ang library hours", "form"),
    ("The registrar was rude and the line took three hours", "form"),
    ("Salamat sa bagong computer lab, ang bilis!", "sms"),
    ("Grabe ka hinay sa internet sa campus", "sms"),
    ("Teachers explain lessons clearly and patiently", "email"),
    ('<script>alert("boom")</script> the restroom has no water', "form"),
    ("CLICK HERE http://free-load.example http://free-load.example WIN WIN WIN!!!", "form"),
]


def _csv(rows: list[tuple[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["comment", "channel", "grade"])
    for text, source in rows:
        writer.writerow([text, source, "11"])
    writer.writerow(["", "form", "12"])  # an empty comment: reported as a row error
    return out.getvalue().encode()


def _worker_in_background() -> threading.Thread:
    """The real procrastinate worker, while the page polls the import's progress."""

    def run() -> None:
        try:
            run_worker_until_idle("imports")
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _sign_up(page: Any, base: str, email: str, org_name: str) -> None:
    page.goto(f"{base}/signup/")
    page.get_by_label("Your name").fill("Maria Santos")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Organization name").fill(org_name)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/o/[^/]+/$"))


def test_sign_up_upload_watch_explore_correct_and_invite(
    page: Any, live_server: Any, tmp_path: Path, screenshot: Any, console_errors: list[str]
) -> None:
    base = live_server.url
    _sign_up(page, base, "maria@rizal.example", "Rizal High School")
    org = Organization.objects.get(name="Rizal High School")
    slug = org.slug

    # A new org is told how to send its first feedback.
    empty = page.locator("#empty-state")
    assert empty.is_visible()
    assert "curl -X POST" in empty.inner_text()
    screenshot(page, "01-empty-state")

    # Upload: choosing the file shows the columns with a guessed mapping.
    page.get_by_role("link", name="Upload a CSV file").click()
    csv_path = tmp_path / "comments.csv"
    csv_path.write_bytes(_csv(COMMENTS))
    page.get_by_label("CSV file", exact=True).set_input_files(str(csv_path))
    page.locator("#map-text").wait_for()
    assert page.locator("#map-text").input_value() == "comment"
    page.locator("#map-source").select_option("channel")
    assert "Ang bagal ng wifi" in page.locator(".preview-table").inner_text()
    screenshot(page, "02-upload-preview")

    page.get_by_role("button", name="Import", exact=True).click()
    page.wait_for_url(re.compile(rf"/o/{slug}/imports/\d+/$"))
    assert page.locator("#import-progress").get_attribute("value") == "0"
    worker = _worker_in_background()
    # The bar fills while the worker runs; when done the page shows the error report.
    page.get_by_role("heading", name="Row errors").wait_for(timeout=60_000)
    worker.join(timeout=60)
    assert page.locator("#import-progress").get_attribute("value") == "100"
    assert "Succeeded" in page.locator("#import-progress-text").inner_text()
    assert "Text is empty" in page.locator("main").inner_text()
    job = ImportJob.objects.get(organization=org)
    assert (job.created_count, job.error_count) == (len(COMMENTS), 1)
    screenshot(page, "03-import-done")

    # The overview's charts are drawn from the imported feedback.
    page.get_by_role("link", name="See the overview").click()
    for chart in ("volume", "language", "category", "source"):
        page.locator(f'canvas[data-chart="{chart}"][data-chart-drawn]').wait_for()
    assert page.locator('[data-kpi="volume"]').inner_text() == str(len(COMMENTS))
    sources = page.locator("#chart-source-h").locator("..").locator("details table")
    assert "sms" in (sources.text_content() or "")
    screenshot(page, "04-overview")

    # Explorer: search, then correct one item's sentiment in place.
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Feedback").click()
    page.get_by_label("Search").fill("wifi")
    page.get_by_label("Sentiment", exact=True).select_option("negative")
    page.get_by_role("button", name="Apply filters").click()
    rows = page.locator("#feedback-table tbody tr")
    rows.first.wait_for()
    assert rows.count() >= 1
    assert all("wifi" in text.lower() for text in rows.all_inner_texts())
    row = rows.first
    feedback_id = int(row.get_attribute("data-feedback-id") or 0)
    row.locator("select[name=corrected_sentiment]").select_option("neutral")
    row.get_by_role("button", name="Save").click()
    row.locator(".form-status").filter(has_text="Saved").wait_for()
    assert row.locator("[data-cell=sentiment]").inner_text() == "Neutral"
    corrected = Feedback.objects.get(pk=feedback_id)
    assert corrected.corrected_sentiment == "neutral"
    assert corrected.status == "reviewed"
    # Hostile text is shown as text.
    page.get_by_label("Search").fill("restroom")
    page.get_by_label("Sentiment", exact=True).select_option("")
    page.get_by_role("button", name="Apply filters").click()
    assert '<script>alert("boom")</script>' in page.locator("#feedback-table").inner_text()
    screenshot(page, "05-explorer")

    # The detail page explains the prediction and lists the review history.
    page.goto(f"{base}/o/{slug}/feedback/{feedback_id}/")
    assert page.get_by_role("heading", name="Why this sentiment").is_visible()
    assert "maria@rizal.example" in page.locator("#history-h").locator("..").inner_text()
    screenshot(page, "06-detail")

    # An API key, shown once.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("Survey form")
    page.get_by_role("button", name="Create key").click()
    assert page.locator("#new-key-value").inner_text().startswith("puna_")
    screenshot(page, "07-api-keys")

    # Invite a colleague.
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Members").click()
    page.get_by_label("Email", exact=True).fill("jun@rizal.example")
    page.get_by_label("Role", exact=True).select_option("analyst")
    page.get_by_role("button", name="Send invitation").click()
    assert "Invitation sent to jun@rizal.example" in page.locator(".messages").inner_text()
    screenshot(page, "08-members")

    pages = [
        ("09-anomalies", "anomalies/"),
        ("10-models", "models/"),
        ("13-reports", "reports/"),
        ("14-report-history", "reports/history/"),
        ("15-webhooks", "webhooks/"),
        ("16-monitoring", "monitoring/"),
        ("17-settings", "settings/"),
        ("18-imports", "imports/"),
    ]
    for name, path in pages:
        response = page.goto(f"{base}/o/{slug}/{path}")
        assert response is not None
        assert response.status == 200, path
        screenshot(page, name)

    assert console_errors == []


def test_another_orgs_user_sees_none_of_it(
    page: Any, live_server: Any, screenshot: Any, console_errors: list[str]
) -> None:
    alpha = make_org(name="Alpha High School", slug="alpha")
    feedback_ingest(org=alpha, items=[FeedbackInput(text="Alpha's secret complaint")])
    base = live_server.url
    _sign_up(page, base, "charlie@bravo.example", "Bravo Software")
    for path in ["", "feedback/", "anomalies/", "imports/", "models/", "members/"]:
        response = page.goto(f"{base}/o/alpha/{path}")
        assert response.status == 404, path
    page.goto(f"{base}/o/bravo-software/feedback/")
    assert "Alpha's secret" not in page.content()
    assert "No feedback matches" in page.locator("main").inner_text()
    console_errors.clear()  # the 404 documents above are expected


def _log_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/o/[^/]+/$"))


def _too_wide(page: Any) -> list[str]:
    """Elements that stick out past the right edge of the viewport."""
    wide: list[str] = page.evaluate(
        """() => [...document.querySelectorAll("body *")]
            .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
            .filter((el) => !el.closest(".table-wrap, .org-nav, pre"))
            .map((el) => el.tagName + "." + el.className + "#" + el.id)"""
    )
    return wide


@pytest.fixture
def analyst_with_data() -> Membership:
    org = make_org(name="Cebu Coding Co", slug="cebu")
    feedback_ingest(
        org=org,
        items=[FeedbackInput(text=text, source=source) for text, source in COMMENTS],
    )
    return make_membership(org, Role.ANALYST, email="ana@cebu.example")


def test_phone_width_and_keyboard_navigation(
    browser_context: Any,
    page: Any,
    live_server: Any,
    analyst_with_data: Membership,
    screenshot: Any,
    console_errors: list[str],
) -> None:
    base = live_server.url
    _log_in(page, base, "ana@cebu.example")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/o/cebu/")
    page.locator('canvas[data-chart="volume"][data-chart-drawn]').wait_for()
    screenshot(page, "11-phone-overview")
    # Nothing is wider than the phone: no sideways scrolling of the whole page.
    assert _too_wide(page) == []
    page.goto(f"{base}/o/cebu/feedback/")
    screenshot(page, "12-phone-explorer")
    assert _too_wide(page) == []

    # Keyboard: the first Tab reaches "Skip to content", which moves focus to the main content.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/o/cebu/feedback/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Tabbing from the main content reaches the search box; typing and Enter filters.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id_q":
            break
    assert page.evaluate("document.activeElement.id") == "id_q"
    page.keyboard.type("canteen")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=canteen"))
    assert "canteen" in page.locator("#feedback-table").inner_text().lower()
    # The current page is marked for screen readers in the navigation.
    current = page.locator('.org-nav a[aria-current="page"]')
    assert current.inner_text() == "Feedback"
    assert console_errors == []
