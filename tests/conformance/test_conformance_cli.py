"""The command line against the embedded mock: exit codes, reports, redaction, budget, --against-mock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from _suite_helpers import FAST, Target, implemented

from conformance.cli import build_parser, settings_from_args
from conformance.settings import Settings
from conformance.suite import planned_checks
from mockserver.resources import PROVIDER_IDS

AGAINST_MOCK_GOAL = 240.0
"""Seconds the whole --against-mock --thorough run may take (all five providers): ~30 s on an idle 2-core
machine, 105 s measured with seven engineers' test runs sharing it; a bound against hangs, not a benchmark."""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lines(output: str, status: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(status)]


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_a_conforming_provider_exits_0(provider: str, run_cli: Any) -> None:
    if provider not in implemented():
        pytest.skip(f"the mock does not serve {provider} yet")
    # A mock of its own: its rate limit is low enough for --thorough's 429 probe (the shared one's is not).
    code, out, _ = run_cli("--against-mock", "--provider", provider, *FAST, "--thorough")
    assert code == 0, out
    assert out.rstrip().splitlines()[-1].startswith("RESULT: no violations in ")
    assert out.rstrip().endswith(" checks (exit 0)")
    assert not _lines(out, "FAIL")
    assert not _lines(out, "ERROR")
    assert not _lines(out, "skip")


def test_without_allow_spend_costly_operations_are_not_sent(mock_target: Target, run_cli: Any) -> None:
    provider = "spaceai"
    code, out, _ = run_cli(*mock_target.args(provider), *FAST)
    assert code == 3, out
    assert any("streaming.events" in line and "--allow-spend" in line for line in _lines(out, "skip"))
    chats = [e for e in mock_target.journal(provider) if e["operation_id"] == "createChatCompletion"]
    # Only the envelope check's deliberately broken requests reach the billed operation.
    assert all(e["status"] >= 400 for e in chats)


def test_progress_goes_to_stderr_one_line_per_check(mock_target: Target, run_cli: Any) -> None:
    args = [a for a in FAST if a != "--quiet"]
    code, out, err = run_cli(*mock_target.args("studioaicore"), *args)
    assert code == 3
    planned = planned_checks(Settings(provider="studioaicore", base_url="http://x", api_key="k"))
    for check in planned:
        assert sum(1 for line in err.splitlines() if f" {check} " in line) == 1, check
    assert out.count("\n") >= len(planned)


def test_junit_xml_parses_and_lists_every_check(mock_target: Target, run_cli: Any, tmp_path: Path) -> None:
    junit = tmp_path / "out" / "junit.xml"
    code, out, _ = run_cli(*mock_target.args("spaceai"), *FAST, "--allow-spend", "--junit-xml", str(junit))
    assert code == 3, out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("name") == "conformance.spaceai"
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == planned_checks(Settings(provider="spaceai", base_url="http://x", api_key="k"))
    assert int(suite.get("failures", "-1")) == 0
    # Checks not run are skips naming what they need; those that do not apply to the spec a type of their own.
    skipped = {case.get("name"): case.find("skipped") for case in suite.iter("testcase")}
    not_run = {name: s for name, s in skipped.items() if s is not None and s.get("type") == "not-run"}
    assert sorted(not_run) == ["extremes.costly", "ratelimit.exhaust"]
    assert str(not_run["extremes.costly"].get("message")).startswith("not run, needs --allow-spend full")
    assert str(not_run["ratelimit.exhaust"].get("message")).startswith("not run, needs --exhaust-rate-limit")
    na = [s for s in skipped.values() if s is not None and s.get("type") == "not-applicable"]
    assert na
    assert all(s.get("message", "").startswith("does not apply: ") for s in na)
    assert int(suite.get("skipped", "-1")) == len(not_run) + len(na)


def test_markdown_report_is_written(mock_target: Target, run_cli: Any, tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    code, _, _ = run_cli(*mock_target.args("studioaicore"), *FAST, "--allow-spend", "--report", str(report))
    assert code == 3
    text = report.read_text()
    assert text.startswith("# Conformance report")
    assert text.splitlines()[2].endswith(
        "2 not run: 1 needs --allow-spend full, 1 needs --exhaust-rate-limit (exit 3)"
    )
    assert "| `schema.response_schema_conformance` | pass |" in text


def test_the_api_key_never_appears_in_any_output(mock_target: Target, run_cli: Any, tmp_path: Path) -> None:
    provider = "spaceai"
    key = mock_target.provider(provider)["api_key"]
    junit, report = tmp_path / "junit.xml", tmp_path / "report.md"
    args = [a for a in FAST if a != "--quiet"]
    code, out, err = run_cli(
        *mock_target.args(provider),
        *args,
        "--allow-spend",
        "--junit-xml",
        str(junit),
        "--report",
        str(report),
    )
    assert code == 3
    for text in (out, err, junit.read_text(), report.read_text()):
        assert key not in text


# -- usage and connection errors: exit 2 ------------------------------------------------------------------


def test_missing_base_url_is_a_usage_error(run_cli: Any) -> None:
    code, _, err = run_cli("--provider", "spaceai", "--api-key", "k")
    assert code == 2
    assert "--base-url" in err


def test_modelstudio_without_org_id_is_a_usage_error(run_cli: Any) -> None:
    code, _, err = run_cli("--provider", "modelstudio", "--base-url", "http://127.0.0.1:1", "--api-key", "k")
    assert code == 2
    assert "--org-id" in err


TARGET = ("--provider", "spaceai", "--base-url", "http://127.0.0.1:1", "--api-key", "k")


@pytest.mark.parametrize(
    "argv",
    [
        ("--provider", "nope", "--base-url", "http://127.0.0.1:1", "--api-key", "k"),
        ("--provider", "spaceai", "--base-url", "ftp://host", "--api-key", "k"),
        (*TARGET, "--phases", "stateful"),
        (*TARGET, "--max-requests", "0"),
        (*TARGET, "--webhook-listen", "x"),
        (*TARGET, "--allow-spend", "lots"),
        ("--against-mock", "--base-url", "http://127.0.0.1:1"),
    ],
)
def test_bad_options_are_usage_errors(argv: tuple[str, ...], run_cli: Any) -> None:
    code, _, _ = run_cli(*argv)
    assert code == 2


def test_thorough_on_a_remote_target_needs_a_public_webhook_url(run_cli: Any) -> None:
    remote = ("--provider", "spaceai", "--base-url", "https://api.example.com", "--api-key", "k")
    code, _, err = run_cli(*remote, "--thorough")
    assert code == 2
    assert "--thorough on a target that is not on this machine needs --webhook-public-url" in err


def test_thorough_turns_on_spend_the_429_probe_and_a_receiver() -> None:
    parser = build_parser()
    remote = ["--provider", "spaceai", "--base-url", "https://api.example.com", "--api-key", "k"]
    args = parser.parse_args([*remote, "--thorough", "--webhook-public-url", "https://hooks.example:8443"])
    settings = settings_from_args(args, parser)
    assert (settings.spend, settings.exhaust_rate_limit) == ("minimal", True)
    assert settings.webhook_listen == ("0.0.0.0", 8443)
    local = ["--provider", "spaceai", "--base-url", "http://127.0.0.1:9", "--api-key", "k", "--thorough"]
    settings = settings_from_args(parser.parse_args([*local, "--allow-spend", "full"]), parser)
    assert (settings.spend, settings.webhook_listen) == ("full", ("127.0.0.1", 0))


def test_help_documents_every_exit_status(run_cli: Any) -> None:
    code, out, _ = run_cli("--help")
    assert code == 0
    for status in ("0  every check", "1  at least one violation", "2  a usage error", "3  no violation"):
        assert status in out


def test_unreachable_base_url_exits_2_with_a_clear_message(run_cli: Any) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code, out, err = run_cli("--provider", "spaceai", "--base-url", url, "--api-key", "secret-key", "--quiet")
    assert code == 2
    assert f"cannot connect to {url}" in err
    assert "exit 2" in out
    assert "secret-key" not in out + err


# -- safety: the request budget -----------------------------------------------------------------------------


def test_the_request_budget_is_never_exceeded(mock_target: Target, run_cli: Any) -> None:
    provider, budget = "pahlavan", 60
    code, out, _ = run_cli(*mock_target.args(provider), *FAST, "--allow-spend", "--max-requests", str(budget))
    assert code == 3, out
    assert "need --max-requests" in out.splitlines()[-1] or "needs --max-requests" in out.splitlines()[-1]
    assert "stopped early" in out
    assert any("request budget" in line for line in _lines(out, "skip"))
    assert len(mock_target.journal(provider)) <= budget


def test_list_checks_prints_the_plan(run_cli: Any) -> None:
    code, out, _ = run_cli(
        "--provider",
        "pahlavan",
        "--base-url",
        "http://127.0.0.1:1",
        "--api-key",
        "k",
        "--list-checks",
        "--checks",
        "schema.not_a_server_error,storage",
    )
    assert code == 0
    assert out.split() == ["pahlavan", "schema.not_a_server_error", "pahlavan", "storage.roundtrip"]


# -- the whole product: --against-mock ----------------------------------------------------------------------


def test_against_mock_thorough_checks_every_provider_quickly_and_exits_0(
    tmp_path: Path, mock_target: Target
) -> None:
    junit, report = tmp_path / "junit.xml", tmp_path / "report.md"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "--against-mock",
            "--thorough",
            "--seed",
            "0",
            "--junit-xml",
            str(junit),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    elapsed = time.monotonic() - started
    print(f"--against-mock took {elapsed:.1f} s")
    served = implemented()
    expected = 0 if set(served) == set(PROVIDER_IDS) else 2
    assert result.returncode == expected, result.stdout[-3000:] + result.stderr[-3000:]
    assert elapsed < AGAINST_MOCK_GOAL
    suites = {s.get("name"): s for s in ET.parse(junit).getroot().iter("testsuite")}
    for provider in served:
        suite = suites[f"conformance.{provider}"]
        names = [case.get("name") for case in suite.iter("testcase")]
        assert names == planned_checks(Settings(provider=provider, base_url="http://x", api_key="k"))
        assert suite.get("failures") == "0"
        assert suite.get("errors") == "0"
        assert not [s for s in suite.iter("skipped") if s.get("type") != "not-applicable"]
    assert report.read_text().startswith("# Conformance report")
    # The subprocess's mock is seeded like the shared one, so it hands out the same keys.
    keys = {entry["api_key"] for entry in mock_target.mock.providers()}
    for text in (result.stdout, result.stderr, junit.read_text(), report.read_text()):
        assert not [key for key in keys if key in text]
