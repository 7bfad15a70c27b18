"""Extreme but schema-valid input over real HTTP: a valid answer, or a 400 in the envelope; never a 500.

Each test reproduces a crash the conformance suite's ``extremes`` checks found: an integer written with an
exponent (``1e20``) priced as a float, amounts too large for a JSON number, and a lone UTF-16 surrogate in a
prompt (which cannot be encoded as UTF-8) in rendering, JSON answers and a job's finish callback.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from mockserver.testing.control import MockControl as MockClient

QUOTES = "/api/v1/quotes"
SURROGATE = "\ud800"


def _raw_post(mock: MockClient, provider: str, path: str, text: str) -> requests.Response:
    """POST a JSON body written by hand (``1e20`` stays ``1e20`` on the wire)."""
    return mock.post(provider, path, data=text.encode(), headers={"Content-Type": "application/json"})


def _quote(mock: MockClient, field: str, written: str, kind: str = "language") -> requests.Response:
    model = {"language": "glm-4.5", "image": "flux-schnell", "video": "veo-lite"}[kind]
    return _raw_post(
        mock, "pahlavan", QUOTES, f'{{"model": "{model}", "type": "{kind}", "{field}": {written}}}'
    )


def test_an_integer_written_with_an_exponent_is_priced_like_the_integer(mock: MockClient) -> None:
    cases = [("inputTokens", "language", 20), ("outputTokens", "language", 18), ("units", "image", 12)]
    for field, kind, exponent in cases:
        as_float = _quote(mock, field, f"1e{exponent}", kind)
        as_integer = _quote(mock, field, str(10**exponent), kind)
        assert as_float.status_code == 200, (field, as_float.text)
        assert as_float.json() == as_integer.json(), field
        assert as_float.json()["estimated_charge_cents"] > 10**9, field


def test_an_amount_too_large_for_a_json_number_is_a_400_in_the_envelope(mock: MockClient) -> None:
    for written in ("1" + "0" * 400, "1e300"):
        response = _quote(mock, "inputTokens", written)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["details"]["code"] == "INVALID_REQUEST"
        assert "too large to price" in body["error"]


def test_a_lone_surrogate_in_a_pahlavan_image_prompt_renders_an_image(mock: MockClient) -> None:
    body = {"model": "flux-schnell", "type": "image", "prompt": f"a {SURROGATE} lighthouse"}
    response = mock.post("pahlavan", "/api/v1/generations", json=body)
    assert response.status_code == 200, response.text
    [url] = response.json()["output_urls"]
    image = requests.get(url, timeout=10)
    assert image.status_code == 200
    assert image.content.startswith(b"\x89PNG")


def test_a_lone_surrogate_in_an_artificial_studio_prompt_finishes_the_generation(mock: MockClient) -> None:
    run = mock.post(
        "artificialstudio", "/api/run", json={"tool": "create-image", "input": {"prompt": SURROGATE}}
    )
    assert run.status_code == 200, run.text
    mock.advance(60)
    polled = mock.get("artificialstudio", f"/api/generations/{run.json()['id']}")
    assert polled.status_code == 200
    assert polled.json()["status"] == "success", polled.text
    assert requests.get(polled.json()["output"], timeout=10).content.startswith(b"\x89PNG")


def test_lone_surrogates_in_chat_and_video_prompts_get_valid_json(mock: MockClient) -> None:
    message: Any = [{"role": "user", "content": f"{SURROGATE}x{SURROGATE}"}]
    cases = [
        ("spaceai", "/v1/chat/completions", {"model": "gpt-4o", "messages": message}),
        ("studioaicore", "/v1/chat", {"model": "studiocore-1", "messages": message}),
        ("pahlavan", "/api/v1/chat/completions", {"model": "glm-4.5", "messages": message}),
        ("pahlavan", "/api/v1/videos/generations", {"model": "veo-lite", "prompt": SURROGATE}),
    ]
    for provider, path, body in cases:
        response = mock.post(provider, path, json=body)
        assert response.status_code in (200, 202), (provider, path, response.text)
        json.loads(response.content.decode("utf-8"))  # valid UTF-8 JSON
    video = mock.post("pahlavan", "/api/v1/videos/generations", json=cases[-1][2]).json()
    mock.advance(600)
    polled = mock.get("pahlavan", f"/api/v1/videos/generations/{video['id']}")
    assert polled.json()["status"] == "succeeded", polled.text


def test_an_integer_past_64_bits_in_a_job_request_creates_the_job(mock: MockClient) -> None:
    # The schemathesis sweep found it on Redis: an integral float (-6.2e141) is coerced to an int, kept in
    # the job's record with the request's settings, and orjson refuses integers past 64 bits: a 500.
    written = '{"model": "veo-lite", "prompt": "waves", "settings": {"extra": {"x": -6.2e141}}}'
    response = _raw_post(mock, "pahlavan", "/api/v1/videos/generations", written)
    assert response.status_code in (200, 202), response.text
    video = response.json()
    mock.advance(600)
    polled = mock.get("pahlavan", f"/api/v1/videos/generations/{video['id']}")
    assert polled.json()["status"] == "succeeded", polled.text
