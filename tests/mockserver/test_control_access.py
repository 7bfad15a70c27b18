"""Who may use the control API (``/_mock``), over real HTTP.

A non-loopback bind needs a token (``python -m mockserver --host 0.0.0.0`` in a loopback-only network
namespace); on loopback the API stays open but refuses a rebound ``Host``, cross-origin state changes and
non-JSON bodies; CORS on ``/_mock`` answers only the mock's own origin and ``--cors-origin`` ones.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from test_control_spec import spec_errors

from conformance.embedded import EmbeddedMock, mock_settings
from mockserver.control import PUBLIC_ROUTES, build_control_app
from mockserver.errors import ConfigError
from mockserver.mock import build_mock
from mockserver.settings import Settings
from mockserver.testing.control import ControlError, MockControl

PROBE = Path(__file__).with_name("_bind_probe.py")
TOKEN = "test-control-token-0123456789"
EVIL = "https://evil.example"
DASHBOARD = "https://dashboard.example"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
FORMS = {
    "urlencoded": {"data": {"seconds": "1"}},
    "multipart": {"files": {"seconds": ("x", b"1")}},
    "text/plain": {"data": b'{"seconds": 1}', "headers": {"Content-Type": "text/plain"}},
    "an empty form": {"data": b"", "headers": {"Content-Type": "text/plain"}},
    "no type with a body": {"data": b'{"seconds": 1}'},
    "octet-stream with a body": {"data": b"{}", "headers": {"Content-Type": "application/octet-stream"}},
}
"""Bodies a cross-site ``<form>`` (or a CORS-safelisted ``fetch``) can send, and a body without a type."""


# -- a non-loopback bind -----------------------------------------------------------------------------


def _namespace_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0


def run_on_all_interfaces(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``python -m mockserver --host 0.0.0.0 <args>`` probed over loopback (``_bind_probe.py``), in a
    loopback-only network namespace so the bind reaches nothing else."""
    command = [sys.executable, str(PROBE), *args]
    if _namespace_available():
        command = ["unshare", "-n", "bash", "-c", "ip link set lo up && exec " + shlex.join(command)]
    elif os.environ.get("CI"):
        pytest.fail("CI needs 'unshare -n' (root) to bind 0.0.0.0 in a loopback-only network namespace")
    # Else (a developer machine without unshare): the mock listens on every interface for a few seconds.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_")}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**base_env, **(env or {})}, check=False
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    assert "error" not in found, found
    return found


def assert_locked(results: dict[str, Any]) -> None:
    """The control API refuses requests without the token, with a wrong one, or another scheme."""
    for name in ("no_token", "no_token_reset", "wrong_token", "other_scheme"):
        seen = results[name]
        assert seen["status"] == 401, (name, seen)
        assert seen["body"]["error"]["code"] == "unauthorized", name
        assert seen["www_authenticate"].startswith("Bearer "), name
    assert results["right_token"]["status"] == 200
    assert results["right_token_reset"]["body"] == {"status": "reset"}
    assert results["provider_call"]["status"] == 200  # provider routes need no control token


def test_a_non_loopback_bind_generates_a_token_shown_once() -> None:
    found = run_on_all_interfaces()
    token = found["generated_token"]
    assert len(token or "") >= 32, found["output"]
    assert_locked(found["results"])
    # Printed in the banner, never again (not in the log lines of the refused or accepted requests).
    assert found["output"].count(token) == 1, found["output"]
    assert found["exit"] == 0


def test_a_non_loopback_bind_takes_the_token_from_the_environment() -> None:
    found = run_on_all_interfaces(env={"MOCKSERVER_CONTROL_TOKEN": TOKEN})
    assert found["generated_token"] is None
    assert TOKEN not in found["output"]  # a token the operator chose is never printed
    assert_locked(found["results"])


def test_a_token_that_cannot_travel_in_a_header_is_refused_at_start() -> None:
    for bad in ("two words", "", "caf\u00e9"):
        done = subprocess.run(
            [sys.executable, "-m", "mockserver", "--control-token", bad],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, bad
        assert "--control-token" in done.stderr
        assert "Traceback" not in done.stderr


# -- a token on loopback -----------------------------------------------------------------------------


def test_a_token_given_on_loopback_is_required_and_mockcontrol_sends_it(start_mock: Any) -> None:
    mock = start_mock(control_token=TOKEN)  # attach_mock's MockControl resets it: it sends the token
    mock.advance(30)
    assert mock.now() > 0
    assert mock.faults() == []
    assert mock.provider("spaceai").api_key
    control = f"{mock.base_url}/_mock"
    for (method, path), response in (
        (("GET", "/clock"), requests.get(f"{control}/clock", timeout=10)),
        (("POST", "/reset"), requests.post(f"{control}/reset", timeout=10)),
        (
            ("GET", "/clock"),
            requests.get(f"{control}/clock", headers={"Authorization": f"Bearer {TOKEN}x"}, timeout=10),
        ),
    ):
        assert response.status_code == 401
        assert spec_errors(method, path, 401, response) == []
    assert requests.get(f"{control}/clock", timeout=10, headers={"Authorization": f"bearer {TOKEN}"}).json()[
        "offset"
    ] == pytest.approx(30)  # not reset by the refused call; the scheme is case-insensitive


def test_mockcontrol_on_a_remote_mock_takes_the_token_or_the_environment(
    start_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = start_mock(control_token=TOKEN).base_url
    monkeypatch.delenv("MOCKSERVER_CONTROL_TOKEN", raising=False)
    with MockControl(base_url) as remote, pytest.raises(ControlError, match="401"):
        remote.reset()
    with MockControl(base_url, token=TOKEN) as remote:
        remote.reset()
    monkeypatch.setenv("MOCKSERVER_CONTROL_TOKEN", TOKEN)
    with MockControl(base_url) as remote:
        remote.reset()
        assert remote.get("spaceai", "/v1/models").request.headers["Authorization"] != f"Bearer {TOKEN}"


def test_the_conformance_embedded_mock_sends_its_token() -> None:
    with EmbeddedMock(mock_settings(control_token=TOKEN)) as embedded:
        assert {p["id"] for p in embedded.providers()} >= {"spaceai"}
        assert requests.get(f"{embedded.base_url}/_mock/providers", timeout=10).status_code == 401


def test_every_control_route_requires_the_token(start_mock: Any) -> None:
    mock = start_mock(control_token=TOKEN)
    app = build_control_app(build_mock(mock.server.settings))
    routes = {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}
    # A route's canonical path drops the pattern of its variables: /ui/{name:[^/]*} is /ui/{name}.
    public = {(method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)) for method, path, _ in PUBLIC_ROUTES}
    assert public <= routes
    assert len(routes - public) > 10
    for method, path in sorted(routes - public):
        url = f"{mock.base_url}/_mock" + path.replace("{", "x").replace("}", "")  # /keys/xprovider/xkey_id
        response = requests.request("GET" if method == "*" else method, url, timeout=10)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"


def test_the_dashboard_files_need_no_token_and_its_data_does(start_mock: Any) -> None:
    # A browser cannot send a header with a page load: the page loads, then asks for the token.
    mock = start_mock(control_token=TOKEN)
    page = requests.get(f"{mock.base_url}/_mock/ui", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    script = requests.get(f"{mock.base_url}/_mock/ui/app.js", timeout=10)
    assert script.status_code == 200
    assert requests.get(f"{mock.base_url}/_mock/ui/nothing.js", timeout=10).status_code == 404
    for data in ("/_mock/providers", "/_mock/events", "/_mock/resources"):
        assert requests.get(mock.base_url + data, timeout=10).status_code == 401, data
    # The Host check still applies to the page on an open loopback mock.
    open_mock = start_mock()
    rebound = requests.get(f"{open_mock.base_url}/_mock/ui", headers={"Host": "evil.example"}, timeout=10)
    assert rebound.status_code == 403


def test_a_non_loopback_bind_without_a_token_is_refused_when_assembled() -> None:
    with pytest.raises(ConfigError, match="control token"):
        build_control_app(build_mock(Settings(host="0.0.0.0")))


# -- CORS on /_mock ----------------------------------------------------------------------------------


def test_control_preflights_answer_only_the_own_and_listed_origins(start_mock: Any) -> None:
    mock = start_mock(cors_origins=("*", DASHBOARD))
    url = f"{mock.base_url}/_mock/reset"
    refused = requests.options(url, headers={"Origin": EVIL, **PREFLIGHT}, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert "Access-Control-Allow-Credentials" not in refused.headers
    for origin in (DASHBOARD, mock.base_url):
        answered = requests.options(url, headers={"Origin": origin, **PREFLIGHT}, timeout=10)
        assert answered.status_code == 204, origin
        assert answered.headers["Access-Control-Allow-Origin"] == origin
        assert "Access-Control-Allow-Credentials" not in answered.headers
    # Responses likewise: headers for a listed origin, none for another.
    listed = requests.get(f"{mock.base_url}/_mock/clock", headers={"Origin": DASHBOARD}, timeout=10)
    assert listed.headers["Access-Control-Allow-Origin"] == DASHBOARD
    other = requests.get(f"{mock.base_url}/_mock/clock", headers={"Origin": EVIL}, timeout=10)
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers
    # The providers keep their '*': any origin is answered there.
    provider = mock.provider("spaceai").url("/v1/models")
    assert requests.options(provider, headers={"Origin": EVIL, **PREFLIGHT}, timeout=10).status_code == 204


def test_the_default_star_does_not_open_the_control_api(mock: Any) -> None:
    url = f"{mock.base_url}/_mock/keys"
    refused = requests.options(url, headers={"Origin": EVIL, **PREFLIGHT}, timeout=10)
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


# -- loopback without a token: Host, Origin, content type --------------------------------------------


def test_a_rebound_host_is_refused_on_loopback(mock: Any) -> None:
    mock.advance(40)
    port = mock.base_url.rsplit(":", 1)[1]
    control = f"{mock.base_url}/_mock"
    for host in (
        f"evil.example:{port}",
        "evil.example",
        f"127.0.0.1.evil.example:{port}",
        f"10.0.0.1:{port}",
    ):
        for method, path in (("GET", "/webhooks/secrets"), ("POST", "/reset")):
            response = requests.request(method, control + path, headers={"Host": host}, timeout=10)
            assert response.status_code == 403, (host, path)
            assert response.json()["error"]["code"] == "forbidden"
            assert spec_errors(method, path, 403, response) == []
    assert requests.get(f"{control}/clock", timeout=10).json()["offset"] == 40  # the resets were refused
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"127.1.2.3:{port}", "LOCALHOST"):
        assert requests.get(f"{control}/clock", headers={"Host": host}, timeout=10).status_code == 200, host
    # The providers answer any Host, as before.
    spaceai = mock.provider("spaceai")
    headers = {**spaceai.auth_headers(), "Host": f"evil.example:{port}"}
    assert requests.get(spaceai.url("/v1/models"), headers=headers, timeout=10).status_code == 200


def test_form_posts_cannot_change_state(mock: Any) -> None:
    mock.advance(50)
    for name, body in FORMS.items():
        for path in ("/reset", "/clock/advance"):
            response = requests.post(f"{mock.base_url}/_mock{path}", timeout=10, **body)  # type: ignore[arg-type]
            assert response.status_code == 415, (name, path, response.text)
            assert response.json()["error"]["code"] == "unsupported_media_type"
            assert spec_errors("POST", path, 415, response) == []
    assert requests.get(f"{mock.base_url}/_mock/clock", timeout=10).json()["offset"] == 50
    # JSON, with parameters, and a bodiless call (curl -X POST, MockControl.reset) keep working.
    typed = {"Content-Type": "Application/JSON; charset=utf-8"}
    advanced = requests.post(
        f"{mock.base_url}/_mock/clock/advance", data=b'{"seconds": 1}', headers=typed, timeout=10
    )
    assert advanced.json()["offset"] == 51
    assert requests.delete(f"{mock.base_url}/_mock/faults", timeout=10).status_code == 200
    octet = {"Content-Type": "application/octet-stream"}  # aiohttp's client on a bodiless POST
    assert requests.delete(f"{mock.base_url}/_mock/faults", headers=octet, timeout=10).status_code == 200
    assert requests.post(f"{mock.base_url}/_mock/reset", timeout=10).json() == {"status": "reset"}
    assert requests.get(f"{mock.base_url}/_mock/clock", timeout=10).json()["offset"] == 0


def test_cross_origin_state_changes_are_refused_on_loopback(mock: Any) -> None:
    mock.advance(60)
    # fetch(url, {method: "POST", mode: "no-cors"}) with no body: no preflight, no content type, an Origin.
    refused = requests.post(f"{mock.base_url}/_mock/reset", headers={"Origin": EVIL}, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert requests.get(f"{mock.base_url}/_mock/clock", timeout=10).json()["offset"] == 60
    own = requests.post(f"{mock.base_url}/_mock/reset", headers={"Origin": mock.base_url}, timeout=10)
    assert own.status_code == 200
