"""Reports of a run: a readable summary, JUnit XML (one testcase per check) and Markdown.

Every renderer takes the run's ``Redactor`` and passes all text through it, even though violations are
redacted when they are made: a secret must not reach any output, whatever path it took.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.client import Redactor
from conformance.results import CheckResult, ProviderRun, Status, Violation, verdict

MARKS = {
    Status.PASS: "pass",
    Status.FAIL: "FAIL",
    Status.SKIP: "skip",
    Status.ERROR: "ERROR",
    Status.NA: "n/a",
}


def check_line(result: CheckResult) -> str:
    """``FAIL  schema.response_schema_conformance  2 violations; 412 responses checked (1.2 s)``."""
    found = len(result.violations) + result.omitted
    parts = [f"{found} violation{'s' if found != 1 else ''}"] if found else []
    if result.needs and result.needs not in result.detail:
        parts.append(f"needs {result.needs}")
    if result.detail:
        parts.append(result.detail)
    tail = f"  {'; '.join(parts)}" if parts else ""
    return f"{MARKS[result.status]:<5} {result.check:<38}{tail} ({result.duration:.1f} s)"


def _violation_lines(number: int, violation: Violation) -> list[str]:
    lines = [f"  {number}. {violation.check}  {violation.operation}"]
    lines += [f"       {line}" for line in violation.message.splitlines()[:12]]
    if violation.request:
        lines.append(f"       request:  {violation.request}")
    if violation.response:
        response = violation.response.splitlines()
        lines.append(f"       response: {response[0]}")
        lines += [f"                 {line}" for line in response[1:14]]
    if violation.location:
        lines.append(f"       spec:     {violation.location}")
    return lines


def violations_text(result: CheckResult) -> str:
    """Every listed violation of a check, numbered, with its evidence."""
    lines = [line for i, v in enumerate(result.violations, 1) for line in _violation_lines(i, v)]
    if result.omitted:
        lines.append(f"  ... and {result.omitted} more")
    return "\n".join(lines)


def outcome_line(runs: list[ProviderRun]) -> str:
    """The run's verdict in one line: what ran, passed and failed, and what was not run and why."""
    return f"RESULT: {verdict(runs)}"


def summary(runs: list[ProviderRun], redact: Redactor) -> str:
    """The readable summary: a line per check, then each violation with curl, response and spec location."""
    lines: list[str] = []
    for run in runs:
        seed = f", seed {run.seed}" if run.seed is not None else ""
        lines.append(
            f"== {run.provider}  {run.base_url}  ({run.requests} requests, {run.duration:.1f} s{seed})"
        )
        if run.fatal:
            lines.append(f"ERROR {run.fatal}")
        lines += [f"note: {note}" for note in run.notes]
        lines += [check_line(result) for result in run.results]
        lines += [f"warning: {warning}" for warning in run.warnings]
        violations = [v for result in run.results for v in result.violations]
        if violations:
            lines.append("")
            lines.append(f"Violations ({run.violations}):")
            for number, violation in enumerate(violations, 1):
                lines += _violation_lines(number, violation)
        lines.append("")
    lines.append(outcome_line(runs))
    return redact.text("\n".join(lines))


def write_junit(runs: list[ProviderRun], path: Path, redact: Redactor) -> None:
    """JUnit XML: a testsuite per provider, a testcase per check; failures carry every violation."""
    root = ET.Element("testsuites", name="conformance")
    for run in runs:
        suite = ET.SubElement(root, "testsuite", name=f"conformance.{run.provider}")
        counts = {status: 0 for status in Status}
        if run.fatal:
            case = ET.SubElement(suite, "testcase", classname=f"conformance.{run.provider}", name="reachable")
            ET.SubElement(case, "error", message=redact.text(run.fatal))
            counts[Status.ERROR] += 1
        for result in run.results:
            counts[result.status] += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"conformance.{run.provider}",
                name=result.check,
                time=f"{result.duration:.3f}",
            )
            if result.status is Status.FAIL:
                found = len(result.violations) + result.omitted
                failure = ET.SubElement(
                    case, "failure", message=redact.text(f"{found} violation(s)"), type="violation"
                )
                failure.text = redact.text(violations_text(result))
            elif result.status is Status.SKIP:
                why = f"not run, needs {result.needs}: " if result.needs else "not run: "
                ET.SubElement(case, "skipped", message=redact.text(why + result.detail), type="not-run")
            elif result.status is Status.NA:
                message = redact.text(f"does not apply: {result.detail}")
                ET.SubElement(case, "skipped", message=message, type="not-applicable")
            elif result.status is Status.ERROR:
                ET.SubElement(case, "error", message=redact.text(result.detail))
            elif result.detail:
                ET.SubElement(case, "system-out").text = redact.text(result.detail)
        suite.set("tests", str(sum(counts.values())))
        suite.set("failures", str(counts[Status.FAIL]))
        suite.set("errors", str(counts[Status.ERROR]))
        suite.set("skipped", str(counts[Status.SKIP] + counts[Status.NA]))
        if run.notes or run.warnings:
            text = [f"note: {n}" for n in run.notes] + [f"warning: {w}" for w in run.warnings]
            ET.SubElement(suite, "system-out").text = redact.text("\n".join(text))
        suite.set("time", f"{run.duration:.3f}")
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def markdown(runs: list[ProviderRun], redact: Redactor) -> str:
    """The Markdown report: a table of checks per provider, then each violation with its evidence."""
    lines = ["# Conformance report", "", outcome_line(runs).removeprefix("RESULT: "), ""]
    for run in runs:
        lines += [
            f"## {run.provider}",
            "",
            f"Base URL `{run.base_url}`, {run.requests} requests, "
            f"{run.duration:.1f} s" + (f", seed `{run.seed}`" if run.seed is not None else "") + ".",
            "",
        ]
        if run.fatal:
            lines += [f"**Could not run:** {run.fatal}", ""]
            continue
        lines += [f"**Note:** {note}" for note in run.notes] + ([""] if run.notes else [])
        lines += ["| check | result | detail |", "|---|---|---|"]
        for result in run.results:
            found = len(result.violations) + result.omitted
            detail = f"{found} violation(s); {result.detail}" if found else result.detail
            if result.needs and result.needs not in detail:
                detail = f"needs {result.needs}; {detail}"
            lines.append(f"| `{result.check}` | {MARKS[result.status]} | {_cell(detail)} |")
        lines.append("")
        if run.warnings:
            lines += ["Warnings (not violations):", ""] + [f"- {_cell(w)}" for w in run.warnings] + [""]
        for result in run.results:
            for number, violation in enumerate(result.violations, 1):
                lines += [
                    f"### {result.check} #{number}: {violation.operation}",
                    "",
                    _fence(violation.message),
                    "",
                ]
                if violation.location:
                    lines += [f"Spec location: `{violation.location}`", ""]
                if violation.request:
                    lines += ["Request:", "", _fence(violation.request), ""]
                if violation.response:
                    lines += ["Response:", "", _fence(violation.response), ""]
            if result.omitted:
                lines += [f"_{result.omitted} more {result.check} violation(s) not listed._", ""]
    return redact.text("\n".join(lines))


def write_markdown(runs: list[ProviderRun], path: Path, redact: Redactor) -> None:
    """Write the Markdown report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(runs, redact), encoding="utf-8")
