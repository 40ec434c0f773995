"""Property-based tests of the runtime's HTTP API from its own OpenAPI schema (schemathesis):
thousands of generated requests, valid and invalid, against the real test bundle. None may be
answered with a server error; every refused one is a 4xx that names what was wrong; every
answered search is logged exactly once."""

from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from ltrr_core.logs import read_logs

pytestmark = pytest.mark.slow
TOKEN = "property-token"
# Examples per (operation, mode): together well over 2,000 requests. /healthz has one shape and
# no invalid form; /admin/reload takes only a header, which has no invalid form that HTTP can carry.
# The explain endpoints answer (or refuse) but never log.
EXAMPLES = {
    ("POST", "/search", GenerationMode.POSITIVE): 800,
    ("POST", "/search", GenerationMode.NEGATIVE): 500,
    ("POST", "/feedback", GenerationMode.POSITIVE): 350,
    ("POST", "/feedback", GenerationMode.NEGATIVE): 350,
    ("POST", "/admin/reload", GenerationMode.POSITIVE): 200,
    ("GET", "/healthz", GenerationMode.POSITIVE): 1,
    ("GET", "/explain.json", GenerationMode.POSITIVE): 120,
    ("GET", "/explain.json", GenerationMode.NEGATIVE): 80,
    ("GET", "/explain", GenerationMode.POSITIVE): 60,
    ("GET", "/explain", GenerationMode.NEGATIVE): 40,
}


def _explains_itself(response) -> bool:
    """A 4xx body says what was wrong: a message, or pydantic's list of (field, rule); the explain
    page shows the message on the page."""
    content_type = response.headers.get("content-type") or [""]  # schemathesis: a list per header
    if (content_type if isinstance(content_type, str) else content_type[0]).startswith("text/html"):
        return 'id="error"' in response.text
    detail = response.json().get("detail")
    if isinstance(detail, list):
        return all(item.get("loc") and item.get("msg") for item in detail)
    return isinstance(detail, str) and len(detail) > 10


def test_generated_requests_get_no_server_error_and_answered_searches_are_logged_once(service_for_properties, tmp_path):
    from ltrr_core.runtime.http import create_app

    log_root = tmp_path / "logs"
    app = create_app(service_for_properties, log_root, lambda: service_for_properties, TOKEN)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = {(op.method.upper(), op.path): op for op in (result.ok() for result in schema.get_all_operations())}
    assert {path for _, path in operations} == {
        "/search",
        "/feedback",
        "/healthz",
        "/admin/reload",
        "/explain",
        "/explain.json",
    }
    statuses: Counter[tuple[str, int]] = Counter()
    answered: list[str] = []
    unexplained: list[str] = []

    for (method, path, mode), n in EXAMPLES.items():

        @settings(
            max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        @given(case=operations[(method, path)].as_strategy(generation_mode=mode))
        def exercise(case) -> None:
            response = case.call()
            statuses[(case.path, response.status_code)] += 1
            assert response.status_code < 500, f"{case.method} {case.path} {case.body!r}: {response.text[:300]}"
            if 400 <= response.status_code < 500 and not _explains_itself(response):
                unexplained.append(f"{case.path} {response.status_code}: {response.text[:200]}")
            if case.path == "/search" and response.status_code == 200:
                answered.append(response.json()["request_id"])

        exercise()

    total = sum(statuses.values())
    assert total >= 2000, statuses
    assert not unexplained, unexplained[:5]
    assert not any(code >= 500 for _, code in statuses)
    assert statuses[("/search", 200)] >= 200  # the generator reached the search path, not only refusals
    app.state.recorder.flush()
    # Exactly once: every row in every log file, not the reader's deduplicated view.
    on_disk = [
        rid
        for part in (log_root / "impressions").rglob("*.parquet")
        for rid in pq.read_table(part, columns=["request_id"]).column(0).to_pylist()
    ]
    assert Counter(on_disk) == Counter(answered)
    assert set(read_logs(log_root, "impressions")["request_id"]) == set(answered)


@pytest.fixture(scope="module")
def service_for_properties(bundle_dir, q2e_platform):
    from ltrr_core.runtime import load_service

    return load_service(q2e_platform[0], bundle_dir)
