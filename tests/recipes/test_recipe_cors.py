"""Recipe: a browser frontend (its dev server's origin) calling the mock: preflight, then the request."""

import pytest
import requests

FRONTEND = "http://localhost:5173"


@pytest.mark.aigen_mock(cors_origins=[FRONTEND])  # like: python -m mockserver --cors-origin <origin>
def test_the_browser_may_call_spaceai(aigen_mock):
    url = aigen_mock.url("spaceai", "/v1/chat/completions")
    preflight = requests.options(
        url,
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization, content-type"

    # What fetch() sends next: the request itself, with the Origin header.
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello!"}]}
    response = aigen_mock.post("spaceai", "/v1/chat/completions", json=body, headers={"Origin": FRONTEND})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert "X-RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]

    elsewhere = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    assert requests.options(url, headers=elsewhere, timeout=10).status_code == 403  # not an allowed origin
