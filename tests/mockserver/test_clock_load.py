"""Advancing the clock over thousands of pending generations does not stall the server.

Each finished Artificial Studio generation has an image and a thumbnail. Drawn when the job finished, 2,000
of them made one advance take minutes (a render at a time in the event loop, tens of milliseconds each
under load) and every request meanwhile wait behind a render. They are drawn on first download now.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests

PENDING = 2_000
PROBE_BOUND = 3.0
"""Longest any request may wait while the advance is being processed (seconds). Drawing the files in the
advance made waits of minutes; 3 s leaves room for a loaded machine (1 s failed once under a load of 10)."""
ADVANCE_BOUND = 10.0
"""Longest the advance itself may take (the control client's default timeout)."""
JOB_SPEED = 0.001
"""Jobs take 2,000 s of mock time: none finishes in real time while the test creates them."""


def test_an_advance_over_2000_pending_generations_keeps_the_server_answering(
    start_mock: Callable[..., Any],
) -> None:
    mock = start_mock(providers=("artificialstudio",), job_speed=JOB_SPEED)
    body = {"tool": "create-image", "input": {"prompt": "a lighthouse in a storm"}}
    ids = []
    for _ in range(PENDING):
        response = mock.post("artificialstudio", "/api/run", json=body)
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])

    outcome: dict[str, Any] = {}

    def advance() -> None:
        started = time.monotonic()
        try:
            reply = requests.post(
                f"{mock.base_url}/_mock/clock/advance", json={"seconds": 3600}, timeout=ADVANCE_BOUND
            )
            outcome["status"] = reply.status_code
        except requests.RequestException as exc:
            outcome["error"] = repr(exc)
        outcome["seconds"] = time.monotonic() - started

    advancing = threading.Thread(target=advance)
    probes: list[float] = []
    with requests.Session() as probe:
        advancing.start()
        while advancing.is_alive() or not probes:
            started = time.monotonic()
            answer = probe.get(f"{mock.base_url}/_mock/clock", timeout=ADVANCE_BOUND)
            probes.append(time.monotonic() - started)
            assert answer.status_code == 200
        advancing.join()
    assert outcome.get("status") == 200, outcome
    assert max(probes) < PROBE_BOUND, f"slowest answer during the advance: {max(probes):.2f} s ({outcome})"

    # Every generation finished (none had before the advance), and its files are drawn on download.
    for generation_id in (ids[0], ids[-1]):
        generation = mock.get("artificialstudio", f"/api/generations/{generation_id}").json()
        assert generation["status"] == "success", generation
    image = requests.get(generation["output"], timeout=10)
    assert image.status_code == 200
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
