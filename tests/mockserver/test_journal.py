"""The request journal over real HTTP: capped in entries and bytes, long paths truncated, read in pages."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mockserver.core.calls import JsonReply
from mockserver.core.journal import ENTRY_BYTES, MAX_PATH_CHARS, MAX_PROBLEM_CHARS, TRUNCATED

SPACEAI = "spaceai"


def requests_page(mock: Any, path: str = "/_mock/requests", status: int = 200) -> dict[str, Any]:
    """One answer of the journal route (``path`` as given, or a ``next`` the mock wrote)."""
    response = mock.http.get(mock.base_url + path, timeout=10)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def journal_bytes(mock: Any) -> float:
    """The ``mockserver_journal_bytes`` gauge."""
    text = mock.http.get(f"{mock.base_url}/_mock/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return float(families["mockserver_journal_bytes"].samples[0].value)


def test_a_long_path_is_stored_truncated(start_mock: Any) -> None:
    mock = start_mock(providers=(SPACEAI,))
    # 30,000 characters: close to the longest request line the server reads (a 100 KB one is refused
    # with a 400 before it reaches a provider, so it is never journaled).
    long_tail = "x" * 30_000
    assert mock.get(SPACEAI, f"/v1/{long_tail}").status_code == 404
    assert mock.get(SPACEAI, "/v1/" + "y" * 100_000).status_code == 400
    (entry,) = requests_page(mock)["requests"]
    assert len(entry["path"]) == MAX_PATH_CHARS + len(TRUNCATED)
    assert entry["path"] == (f"/{SPACEAI}/v1/{long_tail}")[:MAX_PATH_CHARS] + TRUNCATED


# Journal ids 1, 2, 3... are the memory backend's; Redis ids are unique and time-ordered, not consecutive
# (ms * 1024 + instance: ARCHITECTURE.md), so this test's arithmetic on ids holds on memory only. The caps
# and pages on Redis: tests/state/test_contract.py.
@pytest.mark.parametrize("state_backend", ["memory"], indirect=True)
def test_the_journal_stays_under_its_byte_cap(start_mock: Any) -> None:
    cap = 64 * 1024
    mock = start_mock(providers=(SPACEAI,), journal_max_bytes=cap)
    path = "/v1/models/" + "m" * 1900  # an unknown model: a 404, journaled with its ~2 KB path
    for _ in range(100):
        assert mock.get(SPACEAI, path).status_code == 404
    entries = mock.journal()
    size = sum(ENTRY_BYTES + len(e["path"]) for e in entries)
    assert size <= cap
    assert 20 < len(entries) < 100  # the newest that fit, not all of them
    assert [e["id"] for e in entries] == list(range(101 - len(entries), 101))
    assert journal_bytes(mock) == size


# Journal ids 1, 2, 3... are the memory backend's; Redis ids are unique and time-ordered, not consecutive
# (ms * 1024 + instance: ARCHITECTURE.md), so this test's arithmetic on ids holds on memory only. The caps
# and pages on Redis: tests/state/test_contract.py.
@pytest.mark.parametrize("state_backend", ["memory"], indirect=True)
def test_the_journal_keeps_its_newest_entries_within_the_entry_cap(start_mock: Any) -> None:
    mock = start_mock(providers=(SPACEAI,), journal_max_entries=10)
    for _ in range(15):
        assert mock.get(SPACEAI, "/v1/models").status_code == 200
    assert [e["id"] for e in mock.journal()] == list(range(6, 16))


def test_the_caps_are_command_line_flags(mock_cli: Any) -> None:
    with mock_cli(
        "--provider", SPACEAI, "--journal-max-entries", "3", "--journal-max-bytes", "100000"
    ) as origin:
        auth = {"Authorization": "Bearer sk-spaceai-mockkey-0001"}
        for _ in range(5):
            assert requests.get(f"{origin}/v1/models", headers=auth, timeout=10).status_code == 200
        answer = requests.get(f"{origin}/_mock/requests", timeout=10).json()
        assert [e["id"] for e in answer["requests"]] == [3, 4, 5]
        assert requests.get(f"{origin}/_mock/health", timeout=10).json()["status"] == "ok"


def test_violations_keep_a_short_description(mock: Any) -> None:
    async def broken(call: Any) -> JsonReply:
        return JsonReply({"object": "list", "data": "z" * 100_000})  # 'data' must be an array

    # A behaviour answering outside the spec: the mock records the violation, quoting the body.
    handlers = mock.server.mock.providers[SPACEAI].handlers
    handlers["listModels"], working = broken, handlers["listModels"]
    try:
        assert mock.get(SPACEAI, "/v1/models").status_code == 500  # strict validation: the violation's 500
    finally:
        handlers["listModels"] = working
    (violation,) = mock.violations()
    assert violation["problem"].endswith(TRUNCATED)
    assert len(violation["problem"]) == MAX_PROBLEM_CHARS + len(TRUNCATED)
    mock.reset()  # the violation was made on purpose


# Journal ids 1, 2, 3... are the memory backend's; Redis ids are unique and time-ordered, not consecutive
# (ms * 1024 + instance: ARCHITECTURE.md), so this test's arithmetic on ids holds on memory only. The caps
# and pages on Redis: tests/state/test_contract.py.
@pytest.mark.parametrize("state_backend", ["memory"], indirect=True)
def test_the_journal_reads_in_pages(start_mock: Any) -> None:
    mock = start_mock(providers=(SPACEAI,))
    for _ in range(250):
        assert mock.get(SPACEAI, "/v1/models").status_code == 200
    # Without a cursor: the newest page (default size 100), oldest first, and the way to older entries.
    first = requests_page(mock)
    assert [e["id"] for e in first["requests"]] == list(range(151, 251))
    assert first["next"] == "/_mock/requests?before=151"
    seen = [e["id"] for e in first["requests"]]
    page = first
    while page["next"] is not None:
        page = requests_page(mock, page["next"])
        seen = [e["id"] for e in page["requests"]] + seen
    assert seen == list(range(1, 251))  # every entry once
    # Forwards from the oldest, as a client tailing the journal reads it.
    seen, path = [], f"/_mock/requests?provider={SPACEAI}&after=0&limit=120"
    while path is not None:
        page = requests_page(mock, path)
        assert len(page["requests"]) <= 120
        seen += [e["id"] for e in page["requests"]]
        path = page["next"]
    assert seen == list(range(1, 251))
    # The test kit follows the pages.
    assert [e["id"] for e in mock.journal(SPACEAI)] == list(range(1, 251))
    assert [e["id"] for e in mock.journal(SPACEAI, limit=130)] == list(range(121, 251))
    assert requests_page(mock, "/_mock/requests?limit=1000")["next"] is None
    # Both cursors: the entries between them, forwards.
    window = requests_page(mock, "/_mock/requests?after=10&before=20&limit=5")
    assert [e["id"] for e in window["requests"]] == list(range(11, 16))
    assert [e["id"] for e in requests_page(mock, window["next"])["requests"]] == list(range(16, 20))
    for bad in ("limit=1001", "limit=0", "after=-1", "before=0", "after=x", f"after={'9' * 30}"):
        requests_page(mock, f"/_mock/requests?{bad}", status=400)
