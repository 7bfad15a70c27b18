"""List operations hold their answers to their paging and filtering query parameters.

Which parameter pages or filters, and how, is read from the spec's ``x-list-parameter`` (see
``specs/CONVENTIONS.md``): ``limit`` caps the item count, ``{equals: field}`` keeps items whose field
equals the value, ``{contains: [fields]}`` keeps items where the value is a case-insensitive substring of
one of the fields. Every answer
must also list each id once. The values tried come from the spec (the parameter's bounds, enum and examples)
and from the unfiltered listing itself (a search term cut out of a listed id), so the same check runs against
any deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.checks import BehaviourCheck, Outcome
from conformance.client import Exchange
from conformance.context import Context, Skip
from conformance.spec import OperationInfo, SpecInfo
from mockserver.core.spec import resolve

CHECK = "listing.parameters"
NO_MATCH = "zz-conformance-no-such-item"
"""A search term no listed item should contain."""


@dataclass(frozen=True, slots=True)
class ListParameter:
    """A query parameter of a list operation and what it promises."""

    name: str
    role: str
    """``limit``, ``equals`` or ``contains``."""
    fields: tuple[str, ...]
    schema: dict[str, Any]
    examples: tuple[Any, ...]


def list_parameters(spec: SpecInfo, op: OperationInfo) -> list[ListParameter]:
    """The operation's query parameters that carry ``x-list-parameter``."""
    found = []
    for raw in op.raw.get("parameters", []):
        param = resolve(spec.document, raw)
        marker = param.get("x-list-parameter")
        if param.get("in") != "query" or marker is None:
            continue
        schema = resolve(spec.document, param.get("schema", {}))
        examples = tuple(resolve(spec.document, e).get("value") for e in param.get("examples", {}).values())
        if "example" in param:
            examples += (param["example"],)
        if marker == "limit":
            found.append(ListParameter(param["name"], "limit", (), schema, examples))
        elif isinstance(marker, dict) and "equals" in marker:
            found.append(ListParameter(param["name"], "equals", (str(marker["equals"]),), schema, examples))
        elif isinstance(marker, dict) and "contains" in marker:
            fields = tuple(str(f) for f in marker["contains"])
            found.append(ListParameter(param["name"], "contains", fields, schema, examples))
    return found


def list_operations(spec: SpecInfo) -> list[OperationInfo]:
    """GET operations with at least one ``x-list-parameter`` query parameter."""
    return [op for op in spec.operations if op.method == "GET" and list_parameters(spec, op)]


def _applies(spec: SpecInfo) -> str | None:
    return None if list_operations(spec) else "the spec has no list operation with x-list-parameter"


def _items(body: Any) -> list[Any] | None:
    """The listed items: the answer itself when it is an array, else its one array property."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        arrays = [value for value in body.values() if isinstance(value, list)]
        if len(arrays) == 1:
            return arrays[0]
    return None


class _Lister:
    """Sends one list operation with query values and checks every answer against what they promise."""

    def __init__(self, ctx: Context, op: OperationInfo, params: list[ListParameter], out: Outcome) -> None:
        self.ctx, self.op, self.params, self.out = ctx, op, params, out
        self.sent = 0

    def fetch(self, query: dict[str, Any]) -> list[Any] | None:
        """The items answered to ``query`` (None when the answer was not a 200 list), checked."""
        params = {name: str(value) for name, value in query.items()}
        path = self.ctx.path(self.op)
        exchange = self.ctx.client.request(self.op.method, path, params=params, auth=not self.op.public)
        self.sent += 1
        asked = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else " (no parameters)"
        if exchange.status != 200:
            message = f"a schema-valid query{asked} was answered {exchange.status}"
            self.out.add(self.ctx.violation(CHECK, self.op, message, exchange))
            return None
        items = _items(exchange.json())
        if items is None:
            message = f"the answer to{asked} holds no single list of items"
            self.out.add(self.ctx.violation(CHECK, self.op, message, exchange))
            return None
        self._judge(query, asked, items, exchange)
        return items

    def _judge(self, query: dict[str, Any], asked: str, items: list[Any], exchange: Exchange) -> None:
        ctx, op, out = self.ctx, self.op, self.out
        ids = [item.get("id") for item in items if isinstance(item, dict) and "id" in item]
        repeated = sorted({str(i) for i in ids if ids.count(i) > 1})
        if repeated:
            message = f"the answer to{asked} lists {', '.join(repeated[:5])} more than once"
            out.add(ctx.violation(CHECK, op, message, exchange), key=f"repeat|{asked}")
        for param in self.params:
            if param.name not in query:
                continue
            value = query[param.name]
            if param.role == "limit" and len(items) > int(value):
                message = f"{len(items)} items answered to{asked}: more than {param.name}={value}"
                out.add(ctx.violation(CHECK, op, message, exchange), key=f"limit|{asked}")
            elif param.role == "equals":
                field = param.fields[0]
                wrong = [i for i in items if not isinstance(i, dict) or i.get(field) != value]
                if wrong:
                    shown = ", ".join(repr(i.get(field)) if isinstance(i, dict) else "?" for i in wrong[:3])
                    message = f"{len(wrong)} items answered to{asked} have {field} {shown}, not {value!r}"
                    out.add(ctx.violation(CHECK, op, message, exchange), key=f"equals|{asked}")
            elif param.role == "contains":
                needle = str(value).lower()
                wrong = [i for i in items if not _contains(i, param.fields, needle)]
                if wrong:
                    first = wrong[0].get("id") if isinstance(wrong[0], dict) else wrong[0]
                    message = (
                        f"{len(wrong)} items answered to{asked} (e.g. {first!r}) contain {value!r} in none "
                        f"of {', '.join(param.fields)}"
                    )
                    out.add(ctx.violation(CHECK, op, message, exchange), key=f"contains|{asked}")


def _contains(item: Any, fields: tuple[str, ...], needle: str) -> bool:
    return isinstance(item, dict) and any(needle in str(item.get(f, "")).lower() for f in fields)


def _limits(param: ListParameter) -> list[int]:
    """Limits to try: the smallest allowed, two, and the largest (each within the schema's bounds)."""
    low = int(param.schema.get("minimum", 1))
    high = param.schema.get("maximum")
    tried = [max(low, 1), max(low, 2)] + ([int(high)] if high is not None else [])
    return list(dict.fromkeys(v for v in tried if high is None or v <= int(high)))


def _enum(schema: dict[str, Any], spec: SpecInfo) -> list[Any]:
    schema = resolve(spec.document, schema)
    if "enum" in schema:
        return list(schema["enum"])
    return [schema["const"]] if "const" in schema else []


def check_parameters(ctx: Context) -> Outcome:
    """At most ``limit`` items, every item matching each filter, no id listed twice."""
    out = Outcome()
    total = 0
    for op in list_operations(ctx.spec):
        params = list_parameters(ctx.spec, op)
        lister = _Lister(ctx, op, params, out)
        widest: dict[str, Any] = {}
        for param in params:
            if param.role == "limit" and param.schema.get("maximum") is not None:
                widest[param.name] = int(param.schema["maximum"])
        everything = lister.fetch({}) or []
        if widest:
            everything = lister.fetch(widest) or everything
        for param in params:
            if param.role == "limit":
                for limit in _limits(param):
                    lister.fetch({param.name: limit})
            elif param.role == "equals":
                values = _enum(param.schema, ctx.spec) or list(param.examples)
                for value in values:
                    lister.fetch({**widest, param.name: value})
            else:
                for term, source in _search_terms(everything, param):
                    found = lister.fetch({**widest, param.name: term})
                    ids = [i.get("id") for i in found or [] if isinstance(i, dict)]
                    if found is not None and source is not None and source not in ids:
                        message = (
                            f"{param.name}={term} does not list {source!r}, whose {param.fields[0]} holds it"
                        )
                        out.add(ctx.violation(CHECK, op, message))
        documented = {p.name: p.examples[0] for p in params if p.examples}
        if len(documented) > 1:
            lister.fetch(documented)
        total += lister.sent
    if not total:
        raise Skip("no list operation could be sent")
    out.detail = f"{total} list queries checked"
    return out


def _search_terms(items: list[Any], param: ListParameter) -> list[tuple[str, Any]]:
    """``(term, id of an item it must find)``: one cut from a listed item's field (in the other case), the
    documented examples, and a term that matches nothing."""
    terms: list[tuple[str, Any]] = [(str(e), None) for e in param.examples if e is not None]
    for item in items:
        if isinstance(item, dict):
            text = str(item.get(param.fields[0], ""))
            if len(text) >= 3:
                terms.append((text[1:4].swapcase(), item.get("id")))
                break
    terms.append((NO_MATCH, None))
    return terms


CHECKS = [
    BehaviourCheck(CHECK, "Lists honour limit and filter parameters", _applies, check_parameters),
]
