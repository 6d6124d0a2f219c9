"""Playwright (sync API) driving Debian's Chromium against pytest-django's live server.

Never a downloaded browser: /usr/bin/chromium comes from the system's package manager
(`apt-get install chromium`), and each test gets a fresh profile directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / ".data" / "screenshots"


@pytest.fixture(autouse=True)
def _allow_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    # Playwright's sync API runs an event loop in the test's thread, which makes Django refuse
    # ORM calls from it as "async"; the test thread only sets up data and checks results, so it
    # is safe. Scoped to browser tests so it never leaks into other tests or subprocesses.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _fresh_rate_limits(transactional_db: None) -> None:
    # Sign-up and sign-in are rate limited per IP; every browser test comes from 127.0.0.1.
    cache.clear()


class ConsoleErrors(list[str]):
    """JavaScript errors and failed requests the pages reported."""

    def watch(self, page: Any) -> None:
        def on_console(msg: Any) -> None:
            if msg.type == "error":
                self.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.append(str(exc)))


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[Any]:
    """A Chromium context with its own new profile directory."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium). "
            "The browser tests never download a browser."
        )
    from playwright.sync_api import sync_playwright

    profile = tmp_path / "chromium-profile"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: Any, console_errors: ConsoleErrors) -> Any:
    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    console_errors.watch(page)
    return page


@pytest.fixture
def screenshot() -> Any:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shoot(page: Any, name: str, *, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return shoot
