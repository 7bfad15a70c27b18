"""What requests create is bounded: it expires on the mock clock (``--resource-ttl``) and each kind is capped
(``--max-resources``), oldest first. An expired or dropped resource answers the provider's ordinary 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

ALL = ("modelstudio", "artificialstudio", "pahlavan")
ORG = "org_mock_demo"
JOBS = f"/api/v1/organizations/{ORG}/generate"
PAST_ANY_JOB = 60.0


def modelstudio_job(mock: Any, prompt: str = "hello") -> str:
    body = {"model_id": "ms-demo-chat", "messages": [[{"role": "user", "content": prompt}]]}
    response = mock.post("modelstudio", JOBS, json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["job_id"])


def artificialstudio_run(mock: Any, prompt: str = "a red fox") -> str:
    response = mock.post(
        "artificialstudio", "/api/run", json={"tool": "create-image", "input": {"prompt": prompt}}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def pahlavan_video(mock: Any) -> str:
    response = mock.post(
        "pahlavan", "/api/v1/videos/generations", json={"model": "veo-lite", "prompt": "waves"}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def pahlavan_object(mock: Any) -> str:
    data = b"\x89PNG\r\n\x1a\n"
    presigned = mock.post(
        "pahlavan",
        "/api/v1/storage/presign",
        json={"filename": "a.png", "content_type": "image/png", "bytes": len(data)},
    ).json()
    upload = mock.http.put(
        presigned["upload_url"], data=data, headers={"Content-Type": "image/png"}, timeout=10
    )
    assert upload.status_code == 200, upload.text
    commit = mock.post("pahlavan", "/api/v1/storage/commit", json={"key": presigned["key"]})
    assert commit.status_code == 200, commit.text
    return str(presigned["key"])


def lookups(mock: Any, job: str, generation: str, video: str, key: str) -> dict[str, requests.Response]:
    return {
        "modelstudio job": mock.get("modelstudio", f"{JOBS}/{job}"),
        "artificialstudio generation": mock.get("artificialstudio", f"/api/generations/{generation}"),
        "pahlavan video": mock.get("pahlavan", f"/api/v1/videos/generations/{video}"),
        "pahlavan object": mock.post("pahlavan", "/api/v1/storage/sign-url", json={"key": key}),
    }


def test_resources_expire_on_the_mock_clock(start_mock: Callable[..., Any]) -> None:
    mock = start_mock(providers=ALL, resource_ttl=3600.0)
    created = modelstudio_job(mock), artificialstudio_run(mock), pahlavan_video(mock), pahlavan_object(mock)
    mock.advance(PAST_ANY_JOB)
    before = lookups(mock, *created)
    assert {name: r.status_code for name, r in before.items()} == dict.fromkeys(before, 200)
    output_url = before["artificialstudio generation"].json()["output"]
    assert requests.get(output_url, timeout=10).status_code == 200

    mock.advance(3600.0)
    after = lookups(mock, *created)
    assert {name: r.status_code for name, r in after.items()} == dict.fromkeys(after, 404)
    # Each in its provider's own envelope, as for an id that never existed.
    assert after["modelstudio job"].json()["error"]["code"] == "job_not_found"
    assert after["artificialstudio generation"].json()["code"] == "not_found"
    assert after["pahlavan video"].json()["details"]["code"] == "NOT_FOUND"
    assert after["pahlavan object"].json()["details"]["code"] == "NOT_FOUND"
    # The generated file went with them.
    assert requests.get(output_url, timeout=10).status_code == 404


def test_each_kind_is_capped_oldest_first(start_mock: Callable[..., Any]) -> None:
    mock = start_mock(providers=("modelstudio", "artificialstudio"), max_resources=3)
    jobs = [modelstudio_job(mock, f"question {n}") for n in range(5)]
    runs = [artificialstudio_run(mock, f"picture {n}") for n in range(5)]
    mock.advance(PAST_ANY_JOB)
    job_status = [mock.get("modelstudio", f"{JOBS}/{job}").status_code for job in jobs]
    run_status = [mock.get("artificialstudio", f"/api/generations/{run}").status_code for run in runs]
    assert job_status == [404, 404, 200, 200, 200]
    assert run_status == [404, 404, 200, 200, 200]
    # The files of the generations kept are kept too.
    for run in runs[2:]:
        generation = mock.get("artificialstudio", f"/api/generations/{run}").json()
        for url in (generation["output"], generation["thumbnail"]):
            assert requests.get(url, timeout=10).status_code == 200
