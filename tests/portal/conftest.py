"""The portal's browser tests: the processes `make run` starts (Temporal dev server, embedded cloud
with short delays, worker, API) and Debian's Chromium driven by Playwright (never a downloaded browser).

Screenshots go to test-artifacts/portal/ (git-ignored); the README's come from there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.stacks import launched_stack
from tools.run import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"
# Auto-waiting assertions wait this long (ms) for the page to show what is expected.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cloud_args = ["--build-delay", "0.3", "--delete-delay", "0.2", "--start-delay", "0.1", "--stop-delay", "0.1",
                  "--reboot-delay", "0.3", "--rebuild-delay", "0.3"]  # fmt: skip
    with launched_stack(tmp_path_factory.mktemp("portal-stack"), cloud_args) as running:
        yield running


@pytest.fixture(scope="package")
def base_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.api_port}"


def api_as(base_url: str, username: str) -> httpx.Client:
    """The JSON API signed in as a demo directory user (password demo-<name>), for set-up and checks."""
    client = httpx.Client(base_url=base_url, timeout=30)
    login = client.post("/auth/login", json={"username": username, "password": f"demo-{username}"})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['token']}"
    return client


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (tools/browser/install.sh)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


class Portal:
    """Browser contexts (one per signed-in user: cookies are per context), closed at the end."""

    def __init__(self, browser: Browser, base_url: str, downloads: Path) -> None:
        self.browser, self.base_url, self.downloads = browser, base_url, downloads
        self.contexts: list[BrowserContext] = []

    def page(self, width: int = 1280, height: int = 900) -> Page:
        context = self.browser.new_context(base_url=self.base_url, viewport={"width": width, "height": height},
                                           accept_downloads=True)  # fmt: skip
        self.contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm: the tests mean it
        return page

    def sign_in(self, username: str, width: int = 1280, height: int = 900) -> Page:
        """Sign in through the login form, as a person would."""
        page = self.page(width, height)
        page.goto("/portal/desktops")
        expect(page).to_have_url(f"{self.base_url}/portal/login?next=/portal/desktops")
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill(f"demo-{username}")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="My desktops")).to_be_visible()
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def portal(browser: Browser, base_url: str, tmp_path: Path) -> Iterator[Portal]:
    opened = Portal(browser, base_url, tmp_path)
    yield opened
    opened.close()


def shot(page: Page, name: str) -> Path:
    """A screenshot kept as a test artifact (test-artifacts/portal/<name>.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path
