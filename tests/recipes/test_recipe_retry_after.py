"""Recipe: a client's retry on 429 honours Retry-After (tested without waiting)."""

import pytest
import requests

HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello!"}]}


def chat_with_retry(url, headers, body, *, sleep, attempts=3):
    """The client under test: on 429, wait what Retry-After says, then try again."""
    for _ in range(attempts):
        response = requests.post(url, json=body, headers=headers, timeout=10)
        if response.status_code != 429:
            return response
        sleep(float(response.headers["Retry-After"]))
    return response


@pytest.mark.aigen_mock(rate_limit=1)  # one request per minute and key
def test_retry_waits_for_the_rate_limit_window(aigen_mock):
    spaceai = aigen_mock.provider("spaceai")
    url, headers = spaceai.url("/v1/chat/completions"), spaceai.auth_headers()
    waits = []

    def sleep(seconds):  # stands in for time.sleep: moves the mock's clock instead of waiting
        waits.append(seconds)
        aigen_mock.advance(seconds)

    assert chat_with_retry(url, headers, HELLO, sleep=sleep).status_code == 200
    assert chat_with_retry(url, headers, HELLO, sleep=sleep).status_code == 200
    assert len(waits) == 1  # one 429, then the window passed
    assert 0 < waits[0] <= 60
    assert [entry["status"] for entry in aigen_mock.journal("spaceai")] == [200, 429, 200]


TOO_MANY = {"provider": "spaceai", "status": 429, "headers": {"Retry-After": "7"}, "count": 2}


@pytest.mark.aigen_mock(faults=[TOO_MANY])  # the next 2 SpaceAI calls answer 429
def test_retry_gives_up_after_its_attempts(aigen_mock):
    spaceai = aigen_mock.provider("spaceai")
    url, headers = spaceai.url("/v1/chat/completions"), spaceai.auth_headers()
    waits = []
    response = chat_with_retry(url, headers, HELLO, sleep=waits.append, attempts=2)
    assert response.status_code == 429
    assert waits == [7.0, 7.0]
