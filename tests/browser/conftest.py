"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium, headless) against a real
`trackcache dev` server started for the session in a temporary directory. Every page a test opens
is watched for console errors and uncaught exceptions, which fail the test. Without Chromium or
Playwright the tests skip locally and fail under CI=true."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from processes import free_port
from services import is_ci

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium"))
# Without the networking switches Chromium keeps trying to reach Google's services, which a
# closed network refuses (and which would show up as noise).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
# Seconds between the open tracking page's checks for updates, short so the live test is quick.
PAGE_REFRESH_SECONDS = 2


def require_browser() -> None:
    """Skip (locally) or fail (CI=true) when Chromium or the Playwright package is missing."""
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed (pip install -r requirements-dev.txt)")
    if not problems:
        return
    reason = "; ".join(problems)
    if is_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must not skip)", pytrace=False)
    pytest.skip(reason)




@dataclass(frozen=True)
class DevServer:
    url: str
    sim_url: str
    admin_token: str
    viewer_token: str
    guest_order: str
    guest_email: str
    log: Path

    def admin_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + path, timeout=10,
                                headers={"Authorization": f"Bearer {self.admin_token}"}, **kwargs)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[DevServer]:
    """`trackcache dev` in a fresh directory (SQLite, simulator, demo orders), its simulated clock
    running in real time so that the demo orders stay put until a test moves the clock."""
    require_browser()
    workdir = tmp_path_factory.mktemp("dev")
    port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKING_", "DATABASE_URL", "REDIS_URL",
                                                                   "EASYPARCEL_"))}
    env.update(PYTHONPATH=str(ROOT), TRACKING_PAGE_REFRESH_SECONDS=str(PAGE_REFRESH_SECONDS))
    log = workdir / "dev.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", "dev", "--port", str(port),
             "--sim-port", str(sim_port), "--speed", "1", "--smtp-port", str(free_port())],
            cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in banner and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.3)
            banner = log.read_text(errors="replace")
        assert "Press Ctrl-C" in banner, f"trackcache dev did not start:\n{banner[-3000:]}"
        guest = re.search(r"try as a guest\s+order (\S+), email (\S+)", banner)
        assert guest, banner
        yield DevServer(url=f"http://127.0.0.1:{port}", sim_url=f"http://127.0.0.1:{sim_port}",
                        admin_token=re.search(r"admin token\s+(\S+)", banner).group(1),
                        viewer_token=re.search(r"viewer token\s+(\S+)", banner).group(1),
                        guest_order=guest.group(1), guest_email=guest.group(2), log=log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def browser(server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageProblems:
    """Console errors and uncaught exceptions of the pages a test opened."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def watch(self, page: Any) -> Any:
        page.on("console", lambda message: self.found.append(f"console.{message.type}: {message.text} "
                                                            f"({page.url})") if message.type == "error" else None)
        page.on("pageerror", lambda error: self.found.append(f"uncaught: {error} ({page.url})"))
        return page


@pytest.fixture
def problems() -> Iterator[PageProblems]:
    watcher = PageProblems()
    yield watcher
    assert watcher.found == [], "the pages logged errors:\n" + "\n".join(watcher.found)


@pytest.fixture
def context(browser, problems) -> Iterator[Any]:
    """A fresh browser profile (no cookies) whose pages are watched for errors."""
    made = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    made.on("page", problems.watch)
    yield made
    made.close()


@pytest.fixture
def page(context) -> Any:
    return context.new_page()


# --- accessibility ----------------------------------------------------------------------------------

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BASIC_CHECKS = """() => {
  const found = [];
  const named = (el) => (el.getAttribute('aria-label') || '').trim() || el.getAttribute('aria-labelledby');
  if (!document.documentElement.lang) found.push('<html> has no lang');
  if (document.querySelectorAll('h1').length !== 1) found.push('the page needs exactly one h1');
  if (!document.querySelector('main')) found.push('no <main> landmark');
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    if (!(el.labels && el.labels.length) && !named(el)) found.push(`unlabelled ${el.tagName} #${el.id}`);
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (!el.textContent.trim() && !named(el)) found.push(`${el.tagName} without a name`);
  }
  for (const svg of document.querySelectorAll('svg')) {
    const hidden = svg.getAttribute('aria-hidden') === 'true';
    const titled = svg.getAttribute('role') === 'img' && (named(svg) || svg.querySelector('title'));
    if (!hidden && !titled) found.push('an <svg> is neither hidden nor a titled image');
  }
  for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) found.push('<img> without alt');
  return found;
}"""


def accessibility_problems(page: Any) -> list[str]:
    """axe-core's WCAG 2.1 A/AA and best-practice violations (contrast, names, landmarks, ...) plus
    our basic checks (lang, one h1, labels, named buttons and links, titled charts)."""
    page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluated by the driver, not subject to the page's CSP
    violations = page.evaluate("async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
                               ".violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.map("
                               "n => n.target.join(' ')).slice(0, 5)}))", AXE_TAGS)
    found = [json.dumps(violation) for violation in violations]
    return found + page.evaluate(BASIC_CHECKS)


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two `rgb(r, g, b)` colours."""
    def luminance(colour: str) -> float:
        channels = [int(part) / 255 for part in re.findall(r"\d+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def save_screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="initial")
    return path
