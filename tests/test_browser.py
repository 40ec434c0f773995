"""The runtime's explain page in a real browser (``tests.browser``). The MLflow comparison and the
Prefect backfill form are driven in ``tests/test_nightly.py``, on the demo loop's runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.browser import ARTIFACTS, chromium, free_port, stop, wait_http
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_explain_page_shows_every_stage_of_a_query_typed_into_its_form(q2e_platform, gated_bundle_dir, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "--config",
            str(q2e_platform[2]),
            "serve",
            "--bundle",
            str(gated_bundle_dir),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 180, server, log)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/explain")
            page.fill("input[name=q]", "tayler love")  # a misspelling QU corrects
            page.click("button[type=submit]")
            page.wait_for_selector("#results")
            assert "q=tayler+love" in page.url
            understanding = page.locator("#understanding + p").inner_text()
            assert "tayler" in understanding and "taylor" in understanding  # the correction, shown
            plan = page.locator("#plan + p").inner_text()
            assert "depth" in plan and "probability" in plan
            planned = page.locator(".strategies > div > b").all_inner_texts()
            assert planned and set(planned) <= {"lexical", "semantic", "structured", "memory"}
            results = page.locator("#results + table > tbody > tr")
            assert results.count() == 11  # header + 10 results
            first = results.nth(1).inner_text()
            assert "Taylor Swift" in first
            page.locator("#results + table details summary").first.click()  # one result's features
            assert page.locator("#results + table details[open] td", has_text="fusion_score").count() == 1
            page.screenshot(path=str(ARTIFACTS / "explain.png"), full_page=True)
            assert "nothing of this request was logged" in page.content().lower()
            page.close()
    finally:
        stop(server)
