"""``python -m mockserver``: serve the five mocks on one port."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from mockserver.app import create_app
from mockserver.errors import MockError
from mockserver.mock import build_mock
from mockserver.settings import Settings, settings_from_args


def banner(settings: Settings, mock_keys: dict[str, str]) -> str:
    """The start-up text: each provider's base URL and API key."""
    host = f"http://{settings.host}:{settings.port}"
    lines = [f"mockserver listening on {host} (seed {settings.seed}); control API at {host}/_mock/"]
    for provider_id, key in mock_keys.items():
        base = host if settings.provider else f"{host}/{provider_id}"
        lines.append(f"  {provider_id:<17} {base:<40} key: {key}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, print the banner and serve until interrupted."""
    settings = settings_from_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        mock = build_mock(settings)
    except MockError as exc:
        print(f"mockserver: {exc}", file=sys.stderr)
        return 2
    keys = {pid: mock.services.store[pid].primary_key().key for pid in mock.providers}
    print(banner(settings, keys), flush=True)
    web.run_app(create_app(settings, mock), host=settings.host, port=settings.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
