"""The layout the request path relies on: no middleware, no sub-app per provider, a route per operation,
no response signal on the root app.

Each of these cost a request time when present (README, Performance); these tests keep them out, and the
HTTP tests check that what they used to do (CORS preflights and headers, JSON errors of the control API)
still works.
"""

from __future__ import annotations

from typing import Any

import requests
from aiohttp import web

from mockserver.app import create_app
from mockserver.core.spec import load_spec
from mockserver.resources import PROVIDER_IDS, spec_path
from mockserver.settings import Settings


def _apps(app: web.Application) -> list[web.Application]:
    found = [app]
    for resource in app.router.resources():
        sub = getattr(resource, "_app", None)
        if isinstance(sub, web.Application):
            found.extend(_apps(sub))
    return found


def test_no_app_has_a_middleware_and_only_the_control_api_is_a_sub_app() -> None:
    app = create_app(Settings())
    apps = _apps(app)
    assert [a for a in apps if a.middlewares] == []
    prefixes = [r.canonical for r in app.router.resources() if isinstance(r, web.PrefixedSubAppResource)]
    assert prefixes == ["/_mock"]


def test_only_the_control_api_has_a_response_signal() -> None:
    app = create_app(Settings())
    assert list(app.on_response_prepare) == []
    control = [a for a in _apps(app) if a is not app]
    assert [len(a.on_response_prepare) for a in control] == [1]


def test_cors_headers_reach_every_kind_of_response(mock: Any) -> None:
    origin = {"Origin": "http://localhost:3000"}
    base = mock.provider("spaceai").base_url
    key = {"Authorization": f"Bearer {mock.provider('spaceai').api_key}", **origin}
    responses = {
        "operation": requests.get(f"{base}/v1/models", headers=key, timeout=10),
        "unknown path": requests.get(f"{base}/v1/nothing-here", headers=key, timeout=10),
        "wrong method": requests.delete(f"{base}/v1/models", headers=key, timeout=10),
        "no key": requests.get(f"{base}/v1/models", headers=origin, timeout=10),
    }
    # The control API answers its own origin (a page the mock served), never the providers' '*'.
    own = {"Origin": mock.base_url}
    control = {
        "control API": requests.get(f"{mock.base_url}/_mock/providers", headers=own, timeout=10),
        "control API 404": requests.get(f"{mock.base_url}/_mock/nothing-here", headers=own, timeout=10),
    }
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses == {
        "operation": 200,
        "unknown path": 404,
        "wrong method": 405,
        "no key": 401,
    }
    assert [r.status_code for r in control.values()] == [200, 404]
    for name, response in responses.items():
        assert response.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000", name
        assert response.headers.get("Vary") == "Origin", name
    for name, response in control.items():
        assert response.headers.get("Access-Control-Allow-Origin") == mock.base_url, name
        assert response.headers.get("Vary") == "Origin", name
        assert "Access-Control-Allow-Credentials" not in response.headers, name
    plain = requests.get(f"{base}/v1/models", headers={"Authorization": key["Authorization"]}, timeout=10)
    assert "Access-Control-Allow-Origin" not in plain.headers


def test_every_operation_is_a_route_of_its_own() -> None:
    routes = {(r.method, r.resource.canonical) for r in create_app(Settings()).router.routes() if r.resource}
    for provider_id in PROVIDER_IDS:
        for op in load_spec(spec_path(provider_id)).operations:
            assert (op.method, f"/{provider_id}{op.path}") in routes, op.operation_id


def test_preflights_are_answered_and_other_options_get_the_envelope(mock: Any) -> None:
    url = mock.provider("spaceai").base_url + "/v1/chat/completions"
    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    answered = requests.options(url, headers=preflight, timeout=10)
    assert answered.status_code == 204
    assert answered.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    plain = requests.options(url, timeout=10)
    assert plain.status_code == 405
    assert plain.headers["Allow"] == "POST"
    assert plain.json()["error"]["type"] == "method_not_allowed"
    control = requests.options(f"{mock.base_url}/_mock/providers", headers=preflight, timeout=10)
    assert control.status_code == 403  # the providers' default '*' does not open the control API
    own = {**preflight, "Origin": mock.base_url}
    control = requests.options(f"{mock.base_url}/_mock/providers", headers=own, timeout=10)
    assert control.status_code == 204
    assert control.headers["Access-Control-Allow-Origin"] == mock.base_url


def test_control_api_errors_stay_json(mock: Any) -> None:
    missing = requests.get(f"{mock.base_url}/_mock/nothing-here", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = requests.delete(f"{mock.base_url}/_mock/providers", timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "GET"
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    json_type = {"Content-Type": "application/json"}
    bad_body = requests.post(f"{mock.base_url}/_mock/clock/advance", data=b"{", headers=json_type, timeout=10)
    assert bad_body.status_code == 400
    assert "error" in bad_body.json()
