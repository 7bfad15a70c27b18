"""schemathesis' own response checks on live traffic: the suite's ``schema.*`` verdicts, exchange by exchange.

The spec is loaded once per proxy with the suite's check configuration (``runner.checks_config``); each
exchange becomes a schemathesis ``Case`` for its operation (the request's path parameters, query, headers and
body) and a ``Response`` (the upstream's answer), and the selected check functions are called on them as
schemathesis' engine calls them. Each failure is one finding under ``schema.<check>``, with a pointer into the
spec and schemathesis' own message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import schemathesis
from requests import PreparedRequest
from requests.structures import CaseInsensitiveDict
from schemathesis.checks import CHECKS, CheckContext, CheckFunction, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NOT_SET
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.jsonschema.bundler import unbundle_path
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.openapi.checks import JsonSchemaError
from schemathesis.schemas import APIOperation
from yarl import URL

from conformance.client import Exchange
from conformance.proxy.routing import MAX_SCHEMA_ERRORS, Finding, Matched, instance_pointer
from conformance.runner import SCHEMA_CHECKS, checks_config
from conformance.spec import OperationInfo, SpecInfo, pointer_escape

HEAD_CHECKS = ("status_code_conformance", "response_headers_conformance", "content_type_conformance")
"""The checks that need only the status line and headers: judged before a stream's body flows."""
BODY_CHECKS = ("response_schema_conformance",)
"""The check of a whole body (an event stream's events are judged one by one instead)."""
assert set(HEAD_CHECKS + BODY_CHECKS) <= set(SCHEMA_CHECKS)


@dataclass(frozen=True, slots=True)
class _Operation:
    """One operation's schemathesis objects, built when the proxy starts and kept for its life."""

    operation: APIOperation[Any, Any, Any, Any]
    context: CheckContext
    checks: dict[str, CheckFunction]


class SchemaVerdict:
    """One spec loaded by schemathesis, judging responses with the suite's ``schema.*`` checks."""

    def __init__(self, spec: SpecInfo) -> None:
        names = list(HEAD_CHECKS + BODY_CHECKS)
        config = SchemathesisConfig.from_dict(checks_config(names))
        self._schema = schemathesis.openapi.from_path(spec.path, config=config)
        load_all_checks()
        self._functions = {name: _function(name) for name in names}
        self._operations: dict[str, _Operation] = {}
        for info in spec.operations:
            # Built now rather than on an operation's first exchange, which would hold up its first event.
            self._operation(info)

    def _operation(self, info: OperationInfo) -> _Operation:
        found = self._operations.get(info.operation_id)
        if found is None:
            operation = self._schema[info.path][info.method.lower()]
            config = self._schema.config.checks_config_for(operation=operation, phase=None)
            context = CheckContext(
                override=None,
                auth=None,
                headers=None,
                config=config,
                transport_kwargs=None,
                response_checks=None,
            )
            # Enabled per operation, as the engine enables them.
            checks = {
                name: check
                for name, check in self._functions.items()
                if config.get_by_name(name=name).enabled
            }
            found = self._operations[info.operation_id] = _Operation(operation, context, checks)
        return found

    def judge(self, matched: Matched, exchange: Exchange, names: tuple[str, ...]) -> list[Finding]:
        """Run the named checks on one exchange of the matched operation; each failure is one finding."""
        info = matched.info
        if info is None or not names:
            return []
        judged = self._operation(info)
        case = _case(judged.operation, matched, exchange)
        response = _response(exchange)
        found: list[Finding] = []
        for name in names:
            check = judged.checks.get(name)
            if check is None:
                continue
            try:
                check(judged.context, response, case)
            except FailureGroup as group:
                failures = list(group.exceptions)
            except Failure as failure:
                failures = [failure]
            except AssertionError as exc:  # a plain assertion, as a custom check raises
                found.append(Finding("response", f"schema.{name}", info.pointer, str(exc)))
                continue
            else:
                continue
            found += [_finding(name, info, exchange, f) for f in failures[:MAX_SCHEMA_ERRORS]]
        return found


def _function(name: str) -> CheckFunction:
    """A built-in check by the name the suite's configuration gives it."""
    check = CHECKS.get_one(name)
    if isinstance(check, type):  # the four are functions; a class-based check has no single call
        raise TypeError(f"schemathesis' {name} is not a check function")
    return check


def _case(operation: APIOperation[Any, Any, Any, Any], matched: Matched, exchange: Exchange) -> Case[Any]:
    """The request as schemathesis' ``Case`` for its operation."""
    query: dict[str, Any] = {}
    for key, value in URL(exchange.url).query.items():
        # A repeated parameter is a list, as schemathesis holds it.
        if key in query:
            held = query[key]
            query[key] = [*held, value] if isinstance(held, list) else [held, value]
        else:
            query[key] = value
    return operation.Case(
        path_parameters=dict(matched.path_values),
        query=query,
        headers=dict(exchange.request_headers),
        body=matched.body if matched.body is not None else NOT_SET,
    )


def _response(exchange: Exchange) -> Response:
    """The upstream's answer as schemathesis' transport-neutral ``Response``."""
    request = PreparedRequest()
    request.method = exchange.method
    request.url = exchange.url
    request.headers = CaseInsensitiveDict(exchange.request_headers)
    request.body = exchange.request_body
    headers: dict[str, list[str]] = {}
    for key, value in exchange.headers.items():
        headers.setdefault(key.lower(), []).append(value)  # lower-cased, each with its values
    return Response(
        status_code=exchange.status,
        headers=headers,
        content=exchange.content,
        request=request,
        elapsed=0.0,
        verify=True,
    )


def _finding(name: str, info: OperationInfo, exchange: Exchange, failure: Failure) -> Finding:
    """One schemathesis failure as a finding: where in the spec, and schemathesis' title and message."""
    pointer = info.response_pointer(exchange.status)
    message = f"{failure.title}: {failure.message}".strip()
    if name == "status_code_conformance":
        pointer = f"{info.pointer}/responses"
    elif name == "response_headers_conformance":
        pointer = f"{pointer}/headers"
    elif name == "content_type_conformance":
        pointer = f"{pointer}/content"
    elif name == "response_schema_conformance" and isinstance(failure, JsonSchemaError):
        pointer = _schema_pointer(failure, f"{pointer}/content/{pointer_escape(exchange.media_type)}/schema")
        message = f"{instance_pointer(list(failure.instance_path))}: {message}"
    return Finding("response", f"schema.{name}", pointer, message)


def _schema_pointer(failure: JsonSchemaError, schema: str) -> str:
    """Where the failing keyword's schema is: in a component when a ``$ref`` leads there (as schemathesis'
    message says), else under the response's own schema."""
    path = list(failure.schema_path[:-1])
    # The failure keeps how the bundled schema maps back to the spec's own references.
    names = getattr(failure, "_name_to_uri", None)
    if isinstance(names, dict) and names:
        path = unbundle_path(path, names)
    segments = "/".join(pointer_escape(str(p).strip("/")) for p in path)
    if path and str(path[0]).lstrip("/").startswith("components"):
        return f"#/{segments}"
    return f"{schema}/{segments}" if segments else schema
