"""Control routes for operating the mock: ``/_mock/metrics`` (Prometheus) and ``/_mock/health``."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from mockserver.control.base import ControlHandler, json_reply, mock_of
from mockserver.core.health import check_all


async def metrics(request: web.Request) -> web.Response:
    """``GET /_mock/metrics``: Prometheus' text format (OpenMetrics if the scraper asks for it)."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    mock = mock_of(request)
    await mock.collector.refresh()
    response = web.Response(body=encode(mock.metrics))
    # Set whole: the type carries parameters (version, charset) aiohttp's content_type would not take.
    response.headers["Content-Type"] = content_type
    return response


async def health(request: web.Request) -> web.Response:
    """``GET /_mock/health``: 200 when every dependency is ``ok``, else 503 (``degraded`` or ``down``)."""
    status, checks = await check_all(mock_of(request).health_checks())
    return json_reply({"status": status, "checks": checks}, 200 if status == "ok" else 503)


OPS_ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("GET", "/metrics", metrics),
    ("GET", "/health", health),
]
"""Operations routes, relative to ``/_mock``."""
