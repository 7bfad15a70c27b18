"""Presigned storage: presign, upload, commit, sign-url, download the same bytes; tampered URLs refused.

Only touches the object it creates (a small text file under ``conformance/``). Presigned URLs are called
without the API key: their query-string signature is the credential.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from conformance.checks import BehaviourCheck, Outcome, needs
from conformance.checks.envelope import problems
from conformance.checks.jobs import validate
from conformance.client import Exchange
from conformance.context import Context
from conformance.spec import OperationInfo

CONTENT_TYPE = "text/plain"


class _Stop(Exception):
    """A step failed (already reported); the rest of the round trip cannot run."""


def tamper(url: str) -> str:
    """The same URL with the last character of its ``signature`` changed."""
    parts = urlsplit(url)
    query = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "signature" and value:
            value = value[:-1] + ("0" if value[-1] != "0" else "1")
        query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query)))


def check_roundtrip(ctx: Context) -> Outcome:
    """The downloaded bytes and type equal the uploaded ones; a tampered signature gets 403."""
    presign, commit, sign = ctx.require_operations("presignUpload", "commitUpload", "signUrl")
    out, check = Outcome(), "storage.roundtrip"
    token = secrets.token_hex(6)
    data = f"conformance check {token}\n".encode()

    def step(op: OperationInfo | str, exchange: Exchange, expected: int = 200) -> dict[str, object]:
        body = validate(ctx, out, check, op, exchange) if isinstance(op, OperationInfo) else exchange.json()
        if exchange.status != expected:
            out.add(ctx.violation(check, op, f"expected {expected}, got {exchange.status}", exchange))
            raise _Stop
        return body if isinstance(body, dict) else {}

    try:
        request = {
            "filename": f"conformance-{token}.txt",
            "content_type": CONTENT_TYPE,
            "bytes": len(data),
            "path": "conformance",
        }
        presigned = step(presign, ctx.call(presign, json_body=request))
        key, upload_url = str(presigned.get("key")), str(presigned.get("upload_url"))
        raw_headers = presigned.get("headers")
        headers = {str(k): str(v) for k, v in raw_headers.items()} if isinstance(raw_headers, dict) else {}
        method = str(presigned.get("method") or "PUT")
        step(
            f"{method} upload_url",
            ctx.client.request(method, upload_url, data=data, headers=headers, auth=False),
        )
        committed = step(commit, ctx.call(commit, json_body={"key": key}))
        if committed.get("bytes") != len(data) or committed.get("content_type") != CONTENT_TYPE:
            message = f"commit reports {committed.get('bytes')} bytes of {committed.get('content_type')}"
            out.add(
                ctx.violation(check, commit, f"{message}; {len(data)} bytes of {CONTENT_TYPE} were uploaded")
            )
        signed = step(sign, ctx.call(sign, json_body={"key": key, "expires_in": 300}))
        url = str(signed.get("url"))
        download = ctx.client.request("GET", url, auth=False)
        step("GET signed url", download)
        if download.content != data:
            out.add(
                ctx.violation(check, "GET signed url", "downloaded bytes differ from the upload", download)
            )
        if download.media_type != CONTENT_TYPE:
            message = f"downloaded as {download.media_type}, uploaded as {CONTENT_TYPE}"
            out.add(ctx.violation(check, "GET signed url", message, download))
        refused = ctx.client.request("GET", tamper(url), auth=False)
        if refused.status != 403:
            message = f"a tampered signature must be refused with 403, got {refused.status}"
            out.add(ctx.violation(check, "GET tampered signed url", message, refused))
        elif refused_problems := problems(ctx, refused):
            for problem in refused_problems:
                out.add(ctx.violation(check, "GET tampered signed url", problem, refused))
    except _Stop:
        return out
    out.detail = f"{len(data)} bytes round-tripped through {key}"
    return out


CHECKS = [
    BehaviourCheck(
        "storage.roundtrip",
        "Presign, upload, commit, sign, download; tampering refused",
        needs("presignUpload", "commitUpload", "signUrl"),
        check_roundtrip,
    ),
]
