"""The suite's building blocks without a server: guard, redaction, SSE parsing, curl, config, reports."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.checks import all_checks
from conformance.checks.billing import money_problems
from conformance.checks.storage import tamper
from conformance.client import (
    BudgetExhausted,
    Redactor,
    RequestGuard,
    curl_command,
    iter_sse_data,
    parse_retry_after,
    response_excerpt,
)
from conformance.context import Context
from conformance.profiles import PROFILES, profile
from conformance.report import markdown, outcome_line, summary, write_junit
from conformance.results import CheckResult, ProviderRun, Status, Violation, exit_code
from conformance.runner import build_config
from conformance.settings import Settings
from conformance.spec import SpecInfo
from mockserver.resources import PROVIDER_IDS


class FakeClock:
    """A clock that only moves when the guard sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_guard_stops_at_the_budget() -> None:
    guard = RequestGuard(3)
    for _ in range(3):
        guard.acquire()
    with pytest.raises(BudgetExhausted):
        guard.acquire()
    assert guard.used == 3


def test_guard_paces_requests_at_the_client_rate() -> None:
    clock = FakeClock()
    guard = RequestGuard(100, rate_limit=4, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        guard.acquire()
    assert clock.now == pytest.approx(1001.0)  # five requests at 4/s: the fifth goes out 1 s after the first


def test_guard_holds_requests_back_for_retry_after() -> None:
    clock = FakeClock()
    guard = RequestGuard(100, clock=clock, sleep=clock.sleep, max_retry_after=30)
    guard.acquire()
    assert guard.observe(429, {"Retry-After": "7"}) == 7
    guard.acquire()
    assert clock.now == pytest.approx(1007.0)
    assert guard.observe(429, {"retry-after": "3600"}) == 30  # capped by --max-retry-after
    assert guard.observe(200, {"Retry-After": "5"}) is None


def test_guard_paces_schemathesis_through_account_and_wait_turn() -> None:
    clock = FakeClock()
    guard = RequestGuard(100, rate_limit=2, clock=clock, sleep=clock.sleep)
    guard.account()
    guard.wait_turn()
    guard.account()
    assert clock.now == pytest.approx(1000.5)
    assert guard.used == 2


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("12") == 12
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_redactor_masks_secrets_and_credential_headers() -> None:
    redact = Redactor(("sk-secret", "whsec_abc"))
    assert redact("Bearer sk-secret and whsec_abc") == "Bearer [REDACTED] and [REDACTED]"
    assert redact.headers({"Authorization": "Bearer x", "X-Other": "sk-secret"}) == {
        "Authorization": "[REDACTED]",
        "X-Other": "[REDACTED]",
    }


@pytest.mark.parametrize("key", ["x", "ex", "sk-" + "a1" * 18 + "Z"])
def test_redactor_replaces_whole_values_only(key: str) -> None:
    redact = Redactor((key,))
    # Where the key stands whole: a header, a query value, a path segment, a JSON value, an echo in a message.
    assert redact(key) == "[REDACTED]"
    assert redact(f"https://api/v1/{key}?k={key}&o=1") == "https://api/v1/[REDACTED]?k=[REDACTED]&o=1"
    assert redact(f'{{"key": "{key}", "msg": "bad key {key}."}}') == (
        '{"key": "[REDACTED]", "msg": "bad key [REDACTED]."}'
    )
    # Never inside a longer word or token, whatever the length: "x" in "exit", "ex" in "text".
    for word in ("(exit 2)", "text", "index", f"{key}s", f"a{key}", f"{key}-2"):
        assert redact(word) == word
        assert redact.text(f"RESULT: {word} (exit 2)") == f"RESULT: {word} (exit 2)"
    # Prose: a key too short to tell from a word is left alone; a real key is still removed.
    assert ("[REDACTED]" in redact.text(f"echoed {key}")) == (len(key) >= 8)


def test_curl_and_excerpt_never_show_the_key() -> None:
    redact = Redactor(("sk-secret",))
    curl = curl_command(
        "POST",
        "https://api/x?key=sk-secret",
        {"Authorization": "Bearer sk-secret"},
        b'{"k":"sk-secret"}',
        redact,
    )
    assert "sk-secret" not in curl
    assert curl.startswith("curl -X POST")
    excerpt = response_excerpt(401, {"Content-Type": ["application/json"]}, b'{"echo":"sk-secret"}', redact)
    assert excerpt.splitlines()[0] == "HTTP 401"
    assert "sk-secret" not in excerpt


def test_sse_parsing_follows_the_event_stream_format() -> None:
    lines = ['data: {"a":1}', "", ": comment", "data: line1", "data: line2", "", "event: x", "data: [DONE]"]
    assert list(iter_sse_data(iter(lines))) == ['{"a":1}', "line1\nline2", "[DONE]"]


def test_tamper_changes_only_the_signature() -> None:
    url = "http://h/api/v1/storage/object?key=a%2Fb&expires=9&signature=abc0"
    tampered = tamper(url)
    assert tampered != url
    assert "signature=abc1" in tampered
    assert "key=a%2Fb" in tampered


def test_money_problems_check_cents_usd_and_metered() -> None:
    good = {"final_charge_cents": 3, "final_charge_usd": 0.03, "metered_final_charge_usd": 0.0251}
    assert money_problems(good) == []
    bad = {"final_charge_cents": 3, "final_charge_usd": 0.3, "metered_final_charge_usd": -1}
    found = money_problems(bad)
    assert any("!= final_charge_cents 3 / 100" in p for p in found)
    assert any("negative" in p for p in found)


def test_every_provider_has_a_profile_and_its_operations_exist() -> None:
    assert set(PROFILES) == set(PROVIDER_IDS)
    for provider in PROVIDER_IDS:
        spec, known = SpecInfo(provider), profile(provider)
        for operation_id in [*known.costly, *known.runtime_rejections]:
            assert spec.has(operation_id), (provider, operation_id)


def test_check_ids_are_unique_and_grouped_by_family() -> None:
    ids = [check.id for check in all_checks()]
    assert len(ids) == len(set(ids))
    assert {i.split(".")[0] for i in ids} == {
        "envelope",
        "listing",
        "ratelimit",
        "streaming",
        "usage",
        "jobs",
        "webhooks",
        "billing",
        "storage",
        "extremes",
    }


def test_selection_by_family_and_by_id() -> None:
    settings = Settings(provider="spaceai", base_url="http://x", api_key="k", checks=("schema", "jobs.run"))
    assert settings.selects("schema.ignored_auth")
    assert settings.selects("jobs.run")
    assert not settings.selects("jobs.batch")
    assert not settings.selects("schemax")


def _context(settings: Settings) -> Context:
    from conformance.client import HttpClient

    spec = SpecInfo(settings.provider)
    guard = RequestGuard(10)
    client = HttpClient(settings.base, spec.auth_headers(settings.api_key), guard, timeout=1)
    ctx = Context(settings, profile(settings.provider), spec, guard, client, Redactor(settings.secrets()))
    ctx.cache["models"] = [{"id": "gpt-4o"}]
    return ctx


@pytest.mark.parametrize(
    ("spend", "expected"),
    [
        ("none", {"enabled": False}),
        (
            "minimal",
            {
                "phases": {
                    "coverage": {"generation": {"mode": "negative"}},
                    "fuzzing": {"generation": {"mode": "negative"}},
                }
            },
        ),
        ("full", None),
    ],
)
def test_costly_operations_follow_the_spend_setting(spend: str, expected: Any) -> None:
    settings = Settings(provider="spaceai", base_url="http://x", api_key="k", spend=spend)  # type: ignore[arg-type]
    config = build_config(_context(settings), ["not_a_server_error"])
    overrides = {o["include-operation-id"]: o for o in config.get("operations", [])}
    if expected is None:
        assert "createChatCompletion" not in overrides
    else:
        entry = {k: v for k, v in overrides["createChatCompletion"].items() if k != "include-operation-id"}
        assert entry == expected
    assert config["checks"]["not_a_server_error"] == {"enabled": True}
    assert config["checks"]["ignored_auth"] == {"enabled": False}
    assert config["max-stream-events"] >= 1000


def test_config_never_lets_generated_webhooks_leave_for_arbitrary_hosts() -> None:
    settings = Settings(provider="artificialstudio", base_url="http://x", api_key="k", spend="full")
    config = build_config(_context(settings), ["not_a_server_error"])
    assert config["parameters"]["body.webhook"] == "https://webhook.invalid/conformance"


def test_declared_5xx_other_than_500_is_not_a_server_error_violation() -> None:
    settings = Settings(provider="pahlavan", base_url="http://x", api_key="k", spend="full")
    config = build_config(_context(settings), ["not_a_server_error"])
    overrides = {o["include-operation-id"]: o for o in config["operations"]}
    allowed = overrides["createGeneration"]["checks"]["not_a_server_error"]["expected-statuses"]
    assert "502" in allowed
    assert "500" not in allowed


def _runs() -> list[ProviderRun]:
    violation = Violation(
        check="envelope.errors",
        operation="GET /v1/models (listModels)",
        message="/error/code is 400 but the HTTP status is 401",
        request="curl -X GET http://x/v1/models -H 'Authorization: [REDACTED]'",
        response="HTTP 401\n\n{}",
        location="spaceai.yaml#/components/schemas/Error",
    )
    results = [
        CheckResult("spaceai", "schema.not_a_server_error", Status.PASS, "9 responses checked"),
        CheckResult("spaceai", "envelope.errors", Status.FAIL, "3 checked", [violation], omitted=2),
        CheckResult("spaceai", "jobs.run", Status.NA, "the spec has no createRun operation"),
    ]
    return [ProviderRun("spaceai", "http://x", results, seed=7)]


def test_reports_render_every_check_and_violation(tmp_path: Path) -> None:
    runs, redact = _runs(), Redactor(())
    text = summary(runs, redact)
    assert "FAIL  envelope.errors" in text
    assert "spec:     spaceai.yaml#/components/schemas/Error" in text
    assert "n/a   jobs.run" in text
    assert text.endswith("RESULT: 3 violations in 1 of 2 checks (1 passed) (exit 1)")
    junit = tmp_path / "j.xml"
    write_junit(runs, junit, redact)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    report = markdown(runs, redact)
    assert "| `envelope.errors` | FAIL | 3 violation(s); 3 checked |" in report
    assert "_2 more envelope.errors violation(s) not listed._" in report


def test_exit_codes() -> None:
    assert exit_code(_runs()) == 1
    assert exit_code([ProviderRun("spaceai", "http://x")]) == 0
    unreachable = ProviderRun("spaceai", "http://x", fatal="cannot connect")
    assert exit_code([unreachable]) == 2
    passed = CheckResult("spaceai", "envelope.errors", Status.PASS)
    na = CheckResult("spaceai", "jobs.run", Status.NA, "the spec has no createRun operation")
    assert exit_code([ProviderRun("spaceai", "http://x", [passed, na])]) == 0
    spend = CheckResult("spaceai", "streaming.events", Status.SKIP, "spending needed", needs="--allow-spend")
    model = CheckResult("spaceai", "billing.quote", Status.SKIP, "no model", needs="--model")
    fact = CheckResult("spaceai", "streaming.consistency", Status.SKIP, "the target is not deterministic")
    results = [passed, na, spend, dataclasses.replace(spend), model, fact]
    incomplete = ProviderRun("spaceai", "http://x", results)
    assert exit_code([incomplete]) == 3
    assert outcome_line([incomplete]) == (
        "RESULT: no violations in 1 check; 4 not run: 2 need --allow-spend, 1 needs --model, "
        "spaceai streaming.consistency: the target is not deterministic (exit 3)"
    )
