"""Verdicts a CI can trust (issue 12): what was not run, a refused key, redaction, front-end refusals, litter.

Each test runs the command line over real HTTP against the embedded mock (shared, dedicated or mutated).
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _suite_helpers import FAST, Target
from mutants import _auth, on_envelope, on_reply

from conformance.client import HttpClient, Redactor, RequestGuard
from conformance.context import Context
from conformance.profiles import profile
from conformance.settings import Settings
from conformance.spec import SpecInfo
from mockserver.core.calls import BytesReply, Call, Reply
from mockserver.errors import ApiError
from mockserver.mock import Mock
from mockserver.resources import PROVIDER_IDS


def _result(out: str) -> str:
    return out.rstrip().splitlines()[-1]


# -- finding 1: a default run does not claim conformance -----------------------------------------------------


def test_default_flags_end_with_exit_3_and_name_what_each_check_needs(run_cli: Any) -> None:
    code, out, _ = run_cli("--against-mock", "--provider", "artificialstudio", *FAST)
    assert code == 3, out
    assert "conforms" not in out
    assert re.fullmatch(
        r"RESULT: no violations in \d+ checks; 3 not run: 2 need --allow-spend, 1 needs --allow-spend full"
        r" \(exit 3\)",
        _result(out),
    ), _result(out)


def test_a_spec_without_a_models_listing_says_first_that_model_is_needed(
    mock_target: Target, run_cli: Any
) -> None:
    args = [a for a in mock_target.args("modelstudio") if a != "--model"]
    args = [a for a in args if a not in (mock_target.provider("modelstudio").get("models") or [])]
    code, out, _ = run_cli(*args, *FAST, "--allow-spend", "--checks", "jobs.batch")
    assert code == 3, out
    lines = out.splitlines()
    assert lines[0].startswith("== modelstudio")
    assert lines[1].startswith("note: the API cannot list its models")
    assert "--model" in lines[1]
    assert _result(out).endswith("1 not run: 1 needs --model (exit 3)")
    assert any(line.startswith("skip") and " jobs.batch " in line for line in lines)


# -- finding 2: a refused key stops the run ---------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_a_refused_key_stops_the_run_with_exit_2(provider: str, mock_target: Target, run_cli: Any) -> None:
    args = mock_target.args(provider)
    args[args.index("--api-key") + 1] = "wrong-key-123"
    code, out, err = run_cli(*args, *FAST)
    assert code == 2, out
    assert "the target refused the API key (401 " in err
    assert "): check --api-key" in err
    assert not [line for line in out.splitlines() if line.startswith(("pass", "FAIL"))]
    # One request, and nothing else, reached the target.
    assert len(mock_target.journal(provider)) == 1


# -- finding 3: redaction replaces whole values, never text around them --------------------------------------


def _lenient_and_echoing(key: str) -> Callable[[Mock], None]:
    """Any Bearer token is accepted, and every error envelope echoes the key (a leaky target)."""

    def render(error: ApiError, envelope: dict[str, Any]) -> dict[str, Any]:
        return {"error": {"type": "oops", "message": f"bad request for key {key}", "code": 0}}

    def patch(mock: Mock) -> None:
        _auth("studioaicore", presence_only=True)(mock)
        on_envelope("studioaicore", render)(mock)

    return patch


@pytest.mark.parametrize("key", ["x", "ex", "sk-studio-" + "0123456789abcdef" * 2 + "wxyz"])
def test_redaction_keeps_the_text_around_a_key_of_any_length(
    key: str, mutant: Callable[..., Target], run_cli: Any, tmp_path: Path
) -> None:
    target = mutant("studioaicore", _lenient_and_echoing(key))
    args = target.args("studioaicore")
    args[args.index("--api-key") + 1] = key
    junit, report = tmp_path / "junit.xml", tmp_path / "report.md"
    quiet = [a for a in FAST if a != "--quiet"]
    code, out, err = run_cli(
        *args, *quiet, "--checks", "envelope", "--junit-xml", str(junit), "--report", str(report)
    )
    assert code == 1, out
    assert re.search(r"\(exit 1\)$", _result(out)), _result(out)
    texts = {"stdout": out, "stderr": err, "junit": junit.read_text(), "report": report.read_text()}
    for name, text in texts.items():
        # Never a [REDACTED] glued into a word: "(e[REDACTED]it 1)" was finding 3.
        assert not re.search(r"[A-Za-z0-9]\[REDACTED\]|\[REDACTED\][A-Za-z0-9]", text), name
        assert "envelope.errors" in text, name
    # The key is replaced where it is carried: the credential header and the echoed body.
    assert "'Authorization: [REDACTED]'" in out
    assert "bad request for key [REDACTED]" in out
    assert f"for key {key}" not in out + report.read_text() + junit.read_text()
    if len(key) >= 8:
        for name, text in texts.items():
            assert key not in text, name


# -- finding 6: an over-long request refused by a front end is a warning -------------------------------------


def _front_end(status: int) -> Callable[[Mock], None]:
    """Pahlavan's model listing answers a plain-text ``status`` when ``q`` is given (a proxy's 414/431)."""

    def change(call: Call, reply: Reply) -> Reply:
        if "q" in call.request.query:
            return BytesReply(f"{status} Too Long".encode(), "text/plain", status=status)
        return reply

    return on_reply("pahlavan", "listModels", change)


@pytest.mark.parametrize("status", [414, 431])
def test_a_front_end_refusal_is_a_warning_not_a_violation(
    status: int, mutant: Callable[..., Target], run_cli: Any, tmp_path: Path
) -> None:
    target = mutant("pahlavan", _front_end(status))
    junit, report = tmp_path / "junit.xml", tmp_path / "report.md"
    argv = [*target.args("pahlavan"), "--seed", "0", "--quiet", "--checks", "schema,envelope,ratelimit"]
    code, out, _ = run_cli(*argv, "--junit-xml", str(junit), "--report", str(report))
    refused = [e for e in target.journal("pahlavan") if e["status"] == status]
    assert refused, "the fuzzing never sent a long q: the test proves nothing"
    assert code in (0, 3), out
    assert not [line for line in out.splitlines() if line.startswith("FAIL")]
    warning = f"warning: GET /api/v1/models (listModels): {status} "
    assert warning in out
    assert "front end" in out
    assert "not counted as a violation" in out
    assert re.search(r"; 1 warning \(exit [03]\)$", _result(out)), _result(out)
    system_out = ET.parse(junit).getroot().find("testsuite/system-out")
    assert system_out is not None
    assert warning.removeprefix("warning: ") in str(system_out.text)
    assert "Warnings (not violations):" in report.read_text()


def test_a_plain_400_on_an_over_long_request_line_is_a_warning(mock_target: Target) -> None:
    # The mock's aiohttp refuses a request line over 32 KB with a plain-text 400 (nginx: over 8 KB).
    entry = mock_target.provider("pahlavan")
    settings = Settings(provider="pahlavan", base_url=entry["base_url"], api_key=entry["api_key"])
    spec = SpecInfo("pahlavan")
    client = HttpClient(settings.base, spec.auth_headers(settings.api_key), RequestGuard(10), timeout=10)
    ctx = Context(settings, profile("pahlavan"), spec, client.guard, client, Redactor(settings.secrets()))
    op = spec.operation("downloadObject")
    long = client.request("GET", "/api/v1/storage/object", params={"key": "k" * 40_000})
    short = client.request("GET", "/api/v1/storage/object", params={"key": "k" * 10})
    client.close()
    assert long.status == 400, long.excerpt(ctx.redact)
    assert long.media_type == "text/plain"
    ctx.observe(op, long)
    ctx.observe(op, short)
    assert [exchange for _, exchange in ctx.observed] == [short]
    assert len(ctx.warnings) == 1
    assert "400 text/plain, not the API's envelope" in ctx.warnings[0]
    assert "8 KB line limit" in ctx.warnings[0]


# -- finding 7: no litter ---------------------------------------------------------------------------------


def _run_module(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_hypothesis_writes_to_the_user_cache_never_the_working_directory(tmp_path: Path) -> None:
    cwd, cache, chosen = tmp_path / "work", tmp_path / "cache", tmp_path / "chosen"
    cwd.mkdir()
    argv = ["--against-mock", "--provider", "spaceai", "--max-examples", "3", "--quiet"]
    result = _run_module(argv, cwd, {"XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert not (cwd / ".hypothesis").exists()
    assert list(cwd.iterdir()) == []
    assert (cache / "aigen-contract" / "hypothesis").is_dir()
    result = _run_module([*argv, "--hypothesis-database", str(chosen)], cwd, {"XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 3
    assert chosen.is_dir()
    assert any(chosen.iterdir())
    assert list(cwd.iterdir()) == []


# -- finding 7: no silent stretch -------------------------------------------------------------------------

SILENCE = 2.0
"""Longest a run may stay silent on a piped stderr (the display prints a status line every second)."""


def test_progress_on_a_pipe_is_never_silent_for_more_than_2_s(tmp_path: Path) -> None:
    argv = ["--against-mock", "--provider", "modelstudio", "--thorough", "--seed", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance", *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    stamped: list[tuple[float, str]] = []
    for line in process.stderr:  # read as the lines come, each stamped on arrival
        stamped.append((time.monotonic(), line.rstrip("\n")))
    assert process.wait(timeout=300) == 0, "\n".join(line for _, line in stamped[-20:])
    # From the first line to the RESULT line, the last (the interpreter's exit after it is not the run).
    times = [t for t, _ in stamped]
    gaps = [(b - a, stamped[i][1]) for i, (a, b) in enumerate(itertools.pairwise(times))]
    longest = max(gaps)
    assert longest[0] <= SILENCE, f"silent for {longest[0]:.1f} s after: {longest[1]}"
    status = [line for _, line in stamped if re.search(r"requests, \d+ s, \d+ violations? so far$", line)]
    assert any(line.startswith("[modelstudio] schemathesis ") for line in status), status
    assert stamped[-1][1].startswith("RESULT: ")


def test_quiet_prints_nothing_on_stderr(mock_target: Target, run_cli: Any) -> None:
    code, _, err = run_cli(*mock_target.args("spaceai"), *FAST, "--checks", "envelope")
    assert code == 0
    assert err == ""
