"""Match a method and path against a spec's operations: the first stage of the request path."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from mockserver.core.spec import Operation
from mockserver.errors import ApiError, ErrorKind

_PARAM = re.compile(r"\{([^{}/]+)\}")


@dataclass(frozen=True, slots=True)
class Route:
    """A matched operation and its raw (percent-decoded) path parameters."""

    operation: Operation
    path_params: dict[str, str]


class _Template:
    __slots__ = ("names", "operations", "pattern", "static_rank")

    def __init__(self, path: str) -> None:
        self.names = _PARAM.findall(path)
        parts = _PARAM.split(path)
        # split() alternates literal text and parameter names
        regex = "".join(re.escape(part) if i % 2 == 0 else "([^/]+)" for i, part in enumerate(parts))
        self.pattern = re.compile(regex)
        # Prefer templates with more literal characters: /files/latest over /files/{id}
        self.static_rank = -len("".join(parts[::2]))
        self.operations: dict[str, Operation] = {}


class Router:
    """Routes requests to operations; unknown paths are 404 and known paths with other methods 405."""

    def __init__(self, operations: Iterable[Operation]) -> None:
        by_path: dict[str, _Template] = {}
        for op in operations:
            template = by_path.setdefault(op.path, _Template(op.path))
            template.operations[op.method] = op
        self._templates = sorted(by_path.values(), key=lambda t: t.static_rank)

    def match(self, method: str, path: str) -> Route:
        """The operation for a request, or an ``ApiError`` (404 / 405 with ``Allow``)."""
        allowed: list[str] = []
        for template in self._templates:
            # fullmatch, not ^...$: "$" would also match before a trailing newline ("/v1/models%0A").
            found = template.pattern.fullmatch(path)
            if found is None:
                continue
            op = template.operations.get(method.upper())
            if op is None:
                allowed.extend(template.operations)
                continue
            params = {
                name: unquote(value) for name, value in zip(template.names, found.groups(), strict=True)
            }
            return Route(op, params)
        if allowed:
            allow = ", ".join(sorted(set(allowed)))
            raise ApiError(
                405,
                ErrorKind.METHOD_NOT_ALLOWED,
                f"Method {method.upper()} is not allowed on {path}; allowed: {allow}.",
                headers={"Allow": allow},
            )
        raise ApiError(404, ErrorKind.NOT_FOUND, f"No such endpoint: {method.upper()} {path}.")
