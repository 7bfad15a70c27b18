"""Answers from what stands in front of an API, not from the API: a proxy refusing an over-long request.

Real deployments sit behind reverse proxies and load balancers whose limits the spec cannot know: nginx and
Apache refuse a request line or header line over 8 KB (``large_client_header_buffers 4 8k``,
``LimitRequestLine 8190``), aiohttp over 8190 bytes, Node.js a header block over 16 KB, and nginx a body over
1 MB (``client_max_body_size``); nginx also answers ``TRACE`` itself, with its own 405 page. Such a refusal
(a 414 or 431, a 400 or 413 on a request over those limits, a 405 to TRACE; in each case not the provider's
JSON envelope) is reported as a warning naming the limit, never as the API's violation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

from conformance.spec import OperationInfo, SpecInfo

LINE_LIMIT = 8000
"""Bytes of a request line or one header line above which common front ends refuse (8 KB, less slack)."""
HEADERS_LIMIT = 16_000
"""Bytes of the whole header block above which common front ends refuse (Node.js: 16 KB)."""
BODY_LIMIT = 1024 * 1024
"""Bytes of body above which a default nginx refuses (``client_max_body_size 1m``)."""
TOO_LONG = {414: "URI Too Long", 431: "Request Header Fields Too Large"}
FRONT_END_METHODS = frozenset({"TRACE", "CONNECT"})
"""Methods that front ends answer themselves (nginx refuses TRACE with its own 405 page)."""
ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}


def request_sizes(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None
) -> tuple[int, int, int, int]:
    """Bytes on the wire of: the request line, the longest header line, the header block, the body."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    line = len(f"{method} {target} HTTP/1.1".encode())
    lines = [len(f"{k}: {v}".encode()) for k, v in headers.items()]
    return line, max(lines, default=0), sum(n + 2 for n in lines), len(body or b"")


def _envelope(spec: SpecInfo, media_type: str, content: bytes) -> bool:
    """Whether a body is the provider's own JSON error envelope."""
    if "json" not in media_type or not spec.has_schema("Error"):
        return False
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return False
    return not spec.errors(ERROR_SCHEMA, body)


def refusal(
    spec: SpecInfo,
    operation: OperationInfo | None,
    request: tuple[str, str, Mapping[str, str], bytes | None],
    status: int,
    media_type: str,
    content: bytes,
) -> str | None:
    """A warning when an answer is a front end's refusal, not the API's (``None`` when it is the API's)."""
    if status not in (400, 405, 413, 414, 431):
        return None
    method, url, headers, body = request
    line, longest, block, size = request_sizes(method, url, headers, body)
    shown = media_type or "without a content type"
    if status == 405 and method.upper() in FRONT_END_METHODS:
        limit = f"{method.upper()} answered 405 {shown}: a front end refuses the method itself (nginx: TRACE)"
    elif status in TOO_LONG and str(status) not in (operation.raw.get("responses", {}) if operation else {}):
        limit = f"{status} {TOO_LONG[status]}: a front end limits request lines or headers (commonly 8 KB)"
    elif status == 413 and size > BODY_LIMIT:
        limit = "413 on a body over 1 MB: a front end limits bodies (nginx client_max_body_size 1m)"
    elif status == 400 and (line > LINE_LIMIT or longest > LINE_LIMIT or block > HEADERS_LIMIT):
        limit = (
            f"400 {shown}, not the API's envelope, on a request over the 8 KB line limit of common front "
            "ends (nginx large_client_header_buffers, Apache LimitRequestLine, aiohttp 8190 bytes)"
        )
    else:
        return None
    if _envelope(spec, media_type, content):
        return None  # the API's own answer: judged like any other
    where = operation.label if operation is not None else f"{method} {urlsplit(url).path}"
    sizes = f"{line:,}-byte request line, {block:,} bytes of headers, {size:,}-byte body"
    return f"{where}: {limit} [{sizes}]; not counted as a violation"
