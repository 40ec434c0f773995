"""The Prefect UI driven like an operator would (Playwright, Debian's Chromium; ``tests.browser``):
a deployment's *Custom run* form filled and submitted, then the run's page until it completes and
its markdown artifact. Verified against Prefect 3.9's default UI served at the server root.

    Deployments -> deployment -> "Run" -> "Custom run"
      -> start_date / end_date (a date-picker pop-over: a native <input type=date> and "Apply")
      -> steps: "list" (instead of "None") -> a multi-select listbox, each option ticked
      -> "Submit": the UI posts create_flow_run and returns to the deployment with a short toast.

Pitfalls: the UI's API URL (PREFECT_UI_API_URL) must name the server's real port; "Run" must match
exactly (the sidebar's "Runs" contains it); the steps listbox does not always open on a click
(ArrowDown opens it) nor close on Escape (a click outside it does); the toast is mounted twice, the
last copy on top; the run page's tabs have no role="tab". Prefect's client (asyncio.run) must not
be called while the browser is open (``tests.browser.chromium``).
"""

from __future__ import annotations

import json
import re
import time

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PWTimeout

from tests.browser import ARTIFACTS

UI_TIMEOUT_MS = 120_000
FINAL_BAD = ("Failed", "Crashed", "Cancelled", "Cancelling")
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _shot(page: Page, name: str) -> None:
    """A screenshot under var/test-artifacts (best effort: a failed screenshot fails nothing)."""
    try:
        page.screenshot(path=str(ARTIFACTS / f"prefect-{name}.png"), full_page=True)
    except Exception:  # noqa: BLE001 - screenshots are best effort
        pass


def _prop(page: Page, label: str):
    """One parameter of the schema form (``.schema-form-property``), by its label text
    (the label reads e.g. "start_date" or "steps (Optional)")."""
    return page.locator(".schema-form-property").filter(
        has=page.locator(".schema-form-property__label", has_text=re.compile(rf"^\s*{re.escape(label)}(\s|$)"))
    )


def _set_date(page: Page, label: str, iso_day: str, attempts: int = 2) -> None:
    prop = _prop(page, label)
    prop.wait_for()
    # an optional date (anyOf [date, null]) shows a "date | None" button group first
    type_button = prop.get_by_role("button", name="date", exact=True)
    if type_button.count():
        type_button.click()
    shown = prop.locator(".p-date-button__value")
    for attempt in range(attempts):
        prop.locator(".p-date-button__control").click()  # "Select date" / the current date
        picker = page.locator(".p-date-picker").filter(has=page.locator("input[type=date]"))
        picker.wait_for()
        # "Selected Date" is a native <input type="date">: Playwright fills it with YYYY-MM-DD
        # (Chromium shows it as mm/dd/yyyy); the calendar grid above it can be ignored.
        picker.locator("input[type=date]").fill(iso_day)
        picker.get_by_role("button", name="Apply", exact=True).click()
        picker.wait_for(state="hidden")
        # the button then reads e.g. "Jan 2nd, 2026" (it re-renders a moment after the pop-over closes)
        try:
            expect(shown).not_to_have_text(re.compile(r"^\s*(Select date)?\s*$"), timeout=15_000)
            return
        except AssertionError as error:
            if attempt == attempts - 1:
                message = f"{label}: the date picker did not take {iso_day} (shows {shown.inner_text()!r})"
                raise RuntimeError(message) from error


def _pick_steps(page: Page, label: str, steps: list[str]) -> None:
    prop = _prop(page, label)
    prop.wait_for()
    # list[Literal[...]] | None: the "list | None" button group defaults to None
    prop.get_by_role("button", name="list", exact=True).click()
    control = prop.locator(".p-select-button__control")
    control.wait_for()
    listbox = page.get_by_role("listbox")  # teleported to <body> (.p-pop-over-content)
    opened = False
    for attempt in ("click", "ArrowDown", "click"):
        if attempt == "click":
            control.click()
        else:
            control.press(attempt)
        try:
            listbox.wait_for(timeout=4000)
            opened = True
            break
        except PWTimeout:
            continue
    if not opened:
        raise RuntimeError(f"{label}: the options list did not open")
    for step in steps:
        option = listbox.get_by_role("option", name=step, exact=True)
        # the options sit in a virtual scroller: filter with the search box so the option is rendered
        search = listbox.get_by_placeholder("Search")
        if search.count():
            search.fill(step)
        # a click toggles the option's checkbox (so never click one that is already ticked);
        # the listbox stays open (multi-select)
        if not option.locator("input[type=checkbox]").is_checked():
            option.click()
        if search.count():
            search.fill("")
    # Escape does not close this listbox: click outside it (the "Parameters" heading)
    page.keyboard.press("Escape")
    if listbox.is_visible():
        page.get_by_text("Parameters", exact=True).first.click()
    listbox.wait_for(state="hidden")
    chips = prop.locator(".p-select-button__value")
    try:
        for step in steps:  # one removable chip per picked option
            expect(chips).to_contain_text(step, timeout=15_000)
    except AssertionError as error:
        raise RuntimeError(f"{label}: {steps} not all selected (shows {chips.inner_text()!r})") from error


def start_custom_run(page: Page, ui_base: str, deployment_name: str, start: str, end: str, steps: list[str]) -> str:
    """Start a run of ``deployment_name`` ("ltrr-backfill" or "backfill/ltrr-backfill") from the UI's
    Custom run form with start_date/end_date (YYYY-MM-DD) and ``steps`` (empty: leave None = all).
    Returns the new flow run's id."""
    ui_base = ui_base.rstrip("/")
    name = deployment_name.split("/")[-1]
    page.set_default_timeout(UI_TIMEOUT_MS)

    page.goto(f"{ui_base}/deployments")
    search = page.get_by_placeholder("Search deployments")
    search.wait_for()
    search.fill(name)  # the list is paginated (10 a page): narrow it first
    page.get_by_role("link", name=name, exact=True).first.click()
    page.wait_for_url(re.compile(r".*/deployments/deployment/" + UUID_RE))
    run_button = page.get_by_role("button", name="Run", exact=True)  # not the sidebar's "Runs"
    run_button.click()
    page.get_by_text("Custom run", exact=True).click()  # menu: "Quick run" | "Custom run"
    page.wait_for_url(re.compile(r".*/deployments/deployment/" + UUID_RE + r"/run"))
    _prop(page, "start_date").wait_for()
    _shot(page, "a1-custom-run-form")

    _set_date(page, "start_date", start)
    _set_date(page, "end_date", end)
    if steps:
        _pick_steps(page, "steps", steps)
    _shot(page, "a2-form-filled")

    with page.expect_response(
        lambda r: r.request.method == "POST" and re.search(r"/deployments/[^/]+/create_flow_run$", r.url) is not None,
        timeout=UI_TIMEOUT_MS,
    ) as created:
        page.get_by_role("button", name="Submit", exact=True).click()
    response = created.value
    if not response.ok:
        raise RuntimeError(f"create_flow_run answered {response.status}: {response.text()[:500]}")
    run_id = response.json()["id"]

    # the UI returns to the deployment page (?tab=Runs) and shows a toast for ~5 s:
    # "<run name> scheduled to start now [View run]"; "View run" opens /runs/flow-run/<id>
    # (the page mounts two toast containers (#prefect-design-toast-app twice), so the same toast is in
    # the DOM twice, stacked at the same place: the LAST copy is on top; clicking the first one waits
    # forever on "another element intercepts pointer events")
    run_name = response.json().get("name") or ""
    view_run = (
        page.locator(".toast-flow-run-create").filter(has_text=run_name).get_by_role("button", name="View run").last
    )
    try:
        view_run.click(timeout=15_000)
        page.wait_for_url(re.compile(r".*/runs/flow-run/" + UUID_RE), timeout=UI_TIMEOUT_MS)
        url_id = re.search(r"/runs/flow-run/(" + UUID_RE + ")", page.url).group(1)
        if url_id != run_id:
            raise RuntimeError(f"the UI opened flow run {url_id}, create_flow_run said {run_id}")
    except PWTimeout:
        # toast already gone (slow machine): the id from the page's own request stands
        page.goto(f"{ui_base}/runs/flow-run/{run_id}")
    _shot(page, "a3-flow-run-page")
    return run_id


def _run_state(page: Page) -> str:
    return page.locator(".page-heading-flow-run__meta .state-badge").first.inner_text().strip()


def wait_completed_and_read_artifact(
    page: Page, ui_base: str, run_id: str, timeout_s: float, artifact_key: str | None = None, raw: bool = True
) -> str:
    """On the flow run's page, wait until its state badge reads Completed (raise on
    Failed/Crashed/Cancelled or timeout), open its Artifacts tab, open the artifact (``artifact_key``,
    else the first one) and return its markdown: the raw markdown ("Show raw data") when ``raw`` and
    available, else the rendered text."""
    ui_base = ui_base.rstrip("/")
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{ui_base}/runs/flow-run/{run_id}")
    badge = page.locator(".page-heading-flow-run__meta .state-badge").first
    badge.wait_for()
    deadline, last_reload = time.monotonic() + timeout_s, time.monotonic()
    while True:
        state = _run_state(page)
        if state == "Completed":
            break
        if state in FINAL_BAD:
            _shot(page, "a4-run-not-completed")
            raise RuntimeError(f"flow run {run_id} ended {state}")
        if time.monotonic() > deadline:
            _shot(page, "a4-run-timeout")
            raise TimeoutError(f"flow run {run_id} still {state!r} after {timeout_s}s")
        # the page polls the API itself; reload now and then in case it went stale
        if time.monotonic() - last_reload > 60:
            page.reload()
            badge.wait_for()
            last_reload = time.monotonic()
        page.wait_for_timeout(2000)
    _shot(page, "a4-run-completed")

    # tabs are <li class="p-tab"> in a role=tablist (no role=tab)
    page.get_by_role("tablist").get_by_text("Artifacts", exact=True).click()
    panel = page.locator("#artifacts-content")
    panel.wait_for()
    cards = panel.get_by_role("link").filter(has=page.locator(".artifact-card"))
    if artifact_key:
        cards = cards.filter(has=page.locator(".artifact-card__title", has_text=artifact_key))
    cards.first.wait_for()
    _shot(page, "a5-artifacts-tab")
    cards.first.click()
    page.wait_for_url(re.compile(r".*/artifacts/artifact/" + UUID_RE))
    rendered = page.locator(".artifact-data-markdown")
    rendered.wait_for()
    _shot(page, "a6-artifact")
    text = rendered.inner_text()
    if raw:
        # "Show raw data" shows the artifact's data as a JSON string (one numbered line) in
        # section.artifact-data-raw .p-code-highlight: decode it back to the markdown
        show_raw = page.get_by_role("button", name="Show raw data", exact=True)
        try:
            show_raw.wait_for(timeout=15_000)
        except PWTimeout:
            return text
        show_raw.click()
        code = page.locator(".artifact-data-raw .p-code-highlight").first
        for _ in range(3):
            try:
                # it renders empty first, then the (highlighted) JSON string
                expect(code).to_contain_text('"', timeout=15_000)
                shown = code.text_content() or ""
                quote = shown.find('"')
                decoded, _ = json.JSONDecoder().raw_decode(shown[quote:])
                if isinstance(decoded, str) and decoded.strip():
                    _shot(page, "a7-artifact-raw")
                    return decoded
            except (AssertionError, ValueError):
                pass
            page.wait_for_timeout(1000)
        # fall back to the rendered text
    return text
