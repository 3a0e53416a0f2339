"""The HTML report as a person sees it: headless Chromium opens the file, no console errors, the numbers on
the page are the state store's, and a screenshot is kept for people to look at."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_fixtures import AWKWARD

from migrations.core.store import StateStore
from migrations.reporting import build_report, render
from trust import load_trust

CONFIG = Path(__file__).resolve().parents[2] / "config"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        (CHROMIUM is None or CHROMEDRIVER is None) and not os.environ.get("CI"),
        reason="headless Chromium not installed (apt-get install chromium chromium-driver); "
        "never skipped in CI, where `make test` installs it",
    ),
]


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,2000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def _errors(driver: object) -> list[dict[str, object]]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]  # type: ignore[attr-defined]


def _expected(store: StateStore, academy: str, phase: str) -> dict[str, float]:
    """What the store says, computed here from the raw rows rather than through the report model."""
    runs = store.rows("SELECT counts FROM runs WHERE academy = ? AND phase = ?", (academy, phase))
    counts = [json.loads(r["counts"] or "{}") for r in runs]
    status = store.rows("SELECT detail FROM phase_status WHERE academy = ? AND phase = ?", (academy, phase))
    detail = json.loads(status[0]["detail"]) if status else {}
    tally = {k: v for k, v in detail.items() if k in ("planned", "done", "failed", "bytes")}
    source = [detail["counts"]] if "counts" in detail else [tally] if tally else counts
    expected = {k: sum(c.get(k, 0) for c in source) for k in ("planned", "done", "failed", "bytes")}
    expected["throttled"] = sum(c.get("throttled", 0) for c in counts)
    expected["wait_seconds"] = sum(c.get("wait_seconds", 0) for c in counts)
    return expected


def test_report_in_chromium_matches_the_store(driver: object, filled_store: StateStore, tmp_path: Path):
    from selenium.webdriver.common.by import By

    page = tmp_path / "report.html"
    page.write_text(render(build_report(filled_store, load_trust(CONFIG)), "html"), encoding="utf-8")
    driver.get(page.as_uri())  # type: ignore[attr-defined]
    assert _errors(driver) == []

    for academy, phase in (
        ("oakwood", "users"),
        ("oakwood", "groups"),
        ("oakwood", "files"),
        ("stmarys", "groups"),
    ):
        row = driver.find_element(  # type: ignore[attr-defined]
            By.CSS_SELECTOR, f'table.phases tr[data-academy="{academy}"][data-phase="{phase}"]'
        )
        shown = {
            cell.get_attribute("data-metric"): float(cell.get_attribute("data-value"))
            for cell in row.find_elements(By.CSS_SELECTOR, "td[data-metric]")
        }
        for key, value in _expected(filled_store, academy, phase).items():
            assert shown[key] == pytest.approx(value), (academy, phase, key)

    all_done = sum(
        _expected(filled_store, a, p)["done"]
        for a in ("oakwood", "stmarys")
        for p in ("users", "groups", "memberships", "files")
    )
    total = driver.find_element(By.CSS_SELECTOR, '[data-total="done"]')  # type: ignore[attr-defined]
    assert float(total.get_attribute("data-value")) == all_done
    assert total.text == f"{all_done:,}"

    # Awkward names arrive as text, never as markup, and the script in a finding never runs.
    body = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert AWKWARD in body
    assert "<script>alert(1)</script>" in body
    assert driver.find_elements(By.CSS_SELECTOR, "svg[data-chart=progress]")  # type: ignore[attr-defined]

    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    assert shot.stat().st_size > 10_000


def test_console_errors_are_seen(driver: object, tmp_path: Path):
    """The console check above can fail: a page that logs an error is caught by the same reading."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><title>x</title><script>console.error('boom')</script>", "utf-8")
    driver.get(page.as_uri())  # type: ignore[attr-defined]
    assert any("boom" in str(e.get("message")) for e in _errors(driver))
