"""The README's "Checking live traffic" works as written: its proxy command in front of the mock's CLI, its
curl commands through it, the console it shows, the exit status its table gives, the reports it names."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any

from _proxy_helpers import ProxyProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
MOCK_ORIGIN = "http://127.0.0.1:8080"
PROXY_ORIGIN = "http://127.0.0.1:8090"


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Checking live traffic\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "the README has no '## Checking live traffic' section"
    return match.group(1)


def _commands(block: str) -> list[str]:
    return [line for line in re.sub(r"\\\n\s*", "", block).splitlines() if line.strip()]


def _normalized(line: str, proxy: str, mock: str) -> str:
    line = line.replace(proxy, PROXY_ORIGIN).replace(mock, MOCK_ORIGIN)
    return re.sub(r" \d+ ms ", " N ms ", line)


def test_the_readme_commands_run_as_documented(mock_cli: Any, tmp_path: Path) -> None:
    text = section()
    proxy_block, calls_block = re.findall(r"```sh\n(.*?)\n```", text, re.S)
    (sample,) = re.findall(r"```text\n(.*?)\n```", text, re.S)
    (command,) = _commands(proxy_block)
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "conformance", "proxy"]
    assert argv[argv.index("--port") + 1] == "8090"
    exits = dict(re.findall(r"^\| (\d) \| (.+) \|$", text, re.M))
    assert set(exits) == {"0", "1", "2"}
    with mock_cli() as mock:
        args = [a.replace(MOCK_ORIGIN, mock) for a in argv[4:]]
        port_at = args.index("--port")
        del args[port_at : port_at + 2]
        proxy = ProxyProcess(args, free_port(), tmp_path, cwd=tmp_path)
        statuses = []
        for call in _commands(calls_block):
            call_argv = [a.replace(PROXY_ORIGIN, proxy.url) for a in shlex.split(call)]
            done = subprocess.run(
                [*call_argv, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30
            )
            assert done.returncode == 0, done.stderr
            statuses.append(int(done.stdout.rpartition("\n")[2]))
        assert statuses == [200, 200, 401, 200]
        code = proxy.stop(signal.SIGTERM)
    # The key-less listing is the client's violation: the table's 1.
    assert code == 1
    assert "violation" in exits["1"]
    console = proxy.err.read_text().splitlines()
    shown = [_normalized(line, proxy.url, mock) for line in sample.splitlines()]
    assert [_normalized(line, proxy.url, mock) for line in console[: len(shown)]] == shown
    assert (tmp_path / "proxy-junit.xml").is_file()
    assert "request.security" in (tmp_path / "proxy-report.md").read_text()
    assert proxy.out.read_text().rstrip().splitlines()[-1].startswith("RESULT: ")
