"""``python -m conformance proxy`` as a user runs it: exit status on a signal, reports, recording, secrets.

The proxy runs as a real subprocess; its upstream is the real mock (Pahlavan at its root, so the signed URLs
it builds from ``X-Forwarded-Host`` lead back through the proxy) or the test's breaking upstream.
"""

from __future__ import annotations

import re
import shutil
import signal
import ssl
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from _proxy_helpers import AppThread, ProxyProcess, breaking_app, free_port

from conformance.embedded import EmbeddedMock, mock_settings

GOOD_KEY = "Bearer sk-test-key-good"
STREAMED = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Hi"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}
PROXY = (sys.executable, "-m", "conformance", "proxy")
CERT_OPTIONS = ("-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def _stream(url: str, breaks: str) -> None:
    headers = {"Authorization": GOOD_KEY, "X-Break": breaks}
    answer = requests.post(f"{url}/v1/chat/completions", json=STREAMED, headers=headers, timeout=30)
    assert answer.status_code == 200


def test_sigterm_after_a_violation_exits_1_with_the_reports_written(
    upstream: AppThread, tmp_path: Path
) -> None:
    junit, markdown = tmp_path / "junit.xml", tmp_path / "report.md"
    args = ["--provider", "spaceai", "--upstream", upstream.url, "--quiet"]
    proxy = ProxyProcess([*args, "--junit-xml", str(junit), "--report", str(markdown)], free_port(), tmp_path)
    _stream(proxy.url, "ok")
    _stream(proxy.url, "no_done")
    assert proxy.stop(signal.SIGTERM) == 1
    output = proxy.output()
    # --quiet: the violations, not a line per exchange.
    assert "  ! #2 createChatCompletion streaming.events" in output
    assert "#1 POST /v1/chat/completions 200" not in output
    # stdout ends with the verdict, as the suite's does.
    assert proxy.out.read_text().rstrip().splitlines()[-1].startswith("RESULT: ")
    failures = {case.get("name"): case.find("failure") for case in ET.parse(junit).getroot().iter("testcase")}
    assert failures["streaming.events"] is not None
    assert "the last event is not [DONE]" in (failures["streaming.events"].text or "")
    assert failures["schema.response_schema_conformance"] is None
    text = markdown.read_text()
    assert "streaming.events" in text
    assert "the last event is not [DONE]" in text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_after_clean_traffic_exits_0(upstream: AppThread, tmp_path: Path, sig: int) -> None:
    junit = tmp_path / "junit.xml"
    proxy = ProxyProcess(
        ["--provider", "spaceai", "--upstream", upstream.url, "--junit-xml", str(junit)],
        free_port(),
        tmp_path,
    )
    _stream(proxy.url, "ok")
    assert proxy.stop(sig) == 0
    assert "#1 POST /v1/chat/completions 200" in proxy.output()
    assert "0 violations" in proxy.output()
    assert not list(ET.parse(junit).getroot().iter("failure"))


def test_an_unreachable_upstream_is_a_502_not_a_violation(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = ProxyProcess(["--provider", "spaceai", "--upstream", dead], free_port(), tmp_path)
    answer = requests.post(
        f"{proxy.url}/v1/chat/completions", json=STREAMED, headers={"Authorization": GOOD_KEY}, timeout=30
    )
    assert answer.status_code == 502
    assert requests.get(f"{proxy.url}/_proxy/violations", timeout=10).json()["violations"] == []
    assert proxy.stop() == 0
    assert "upstream unreachable" in proxy.output()


def test_an_https_upstream(tmp_path: Path) -> None:
    """TLS to the upstream, verified against the trust store (here a test CA given by SSL_CERT_FILE)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for a TLS upstream")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            *CERT_OPTIONS,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    secure = AppThread(breaking_app, ssl_context=context).start()
    try:
        assert secure.url.startswith("https://")
        proxy = ProxyProcess(
            ["--provider", "spaceai", "--upstream", secure.url],
            free_port(),
            tmp_path,
            env={"SSL_CERT_FILE": str(cert)},
        )
        _stream(proxy.url, "ok")
        _stream(proxy.url, "no_done")
        assert proxy.stop() == 1
    finally:
        secure.stop()
    assert "#1 POST /v1/chat/completions 200" in proxy.output()
    assert "the last event is not [DONE]" in proxy.output()


def test_help_documents_the_exit_status(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "conformance", "proxy", "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0
    for flag in (
        "--provider",
        "--upstream",
        "--host",
        "--port",
        "--record",
        "--junit-xml",
        "--report",
        "--quiet",
    ):
        assert flag in shown.stdout
    assert "exit status" in shown.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "conformance", "proxy", "--provider", "spaceai", "--upstream", "ftp://x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 2
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    unwritable = subprocess.run(
        [*PROXY, "--provider", "spaceai", "--upstream", "http://x", "--record", str(blocked / "rec")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unwritable.returncode == 2
    assert "cannot record to" in unwritable.stderr


@pytest.fixture
def pahlavan_mock() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(mock_settings(provider="pahlavan")) as mock:
        yield mock


def test_no_secret_reaches_the_console_the_reports_or_the_recording(
    pahlavan_mock: EmbeddedMock, tmp_path: Path
) -> None:
    key = next(p for p in pahlavan_mock.providers() if p["id"] == "pahlavan")["api_key"]
    record, junit, markdown = tmp_path / "rec", tmp_path / "junit.xml", tmp_path / "report.md"
    proxy = ProxyProcess(
        [
            "--provider",
            "pahlavan",
            "--upstream",
            pahlavan_mock.base_url,
            "--record",
            str(record),
            "--junit-xml",
            str(junit),
            "--report",
            str(markdown),
        ],
        free_port(),
        tmp_path,
    )
    auth = {"Authorization": f"Bearer {key}"}
    url = proxy.url
    # A presigned round trip: the signed URLs come back through the proxy (the mock builds them from
    # X-Forwarded-Host), and the download carries its signature in the query.
    presign = {"filename": "logo.png", "content_type": "image/png", "bytes": len(PNG), "path": "site/assets"}
    presigned = requests.post(f"{url}/api/v1/storage/presign", json=presign, headers=auth, timeout=10).json()
    assert presigned["upload_url"].startswith(url)
    upload = requests.put(presigned["upload_url"], data=PNG, headers=presigned["headers"], timeout=10)
    assert upload.status_code == 200
    commit = requests.post(
        f"{url}/api/v1/storage/commit", json={"key": presigned["key"]}, headers=auth, timeout=10
    )
    assert commit.ok
    signed = requests.post(
        f"{url}/api/v1/storage/sign-url", json={"key": presigned["key"]}, headers=auth, timeout=10
    )
    signed_url = signed.json()["url"]
    signature = requests.utils.urlparse(signed_url).query.split("signature=")[1].split("&")[0]
    assert len(signature) >= 16
    download = requests.get(signed_url, timeout=10)
    assert download.content == PNG
    # A request that breaks the spec (the key in its prose too), so the reports carry a reproduction.
    bad = {
        "model": "glm-4.5",
        "messages": [{"role": "user", "content": f"my key is {key}."}],
        "max_tokens": -1,
    }
    requests.post(f"{url}/api/v1/chat/completions", json=bad, headers=auth, timeout=10)
    endpoints = requests.get(f"{url}/_proxy/violations", timeout=10).text
    endpoints += requests.get(f"{url}/_proxy/exchanges", timeout=10).text
    assert proxy.stop() == 1  # the bad request is the client's violation
    output = proxy.output()
    assert "request.body" in output
    assert "/api/v1/storage/object?" in output
    files = [p for p in record.rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".yaml"]) == 6
    assert any(p.read_bytes() == PNG for p in files), "binary bodies are stored as files beside the exchange"
    texts = {
        "console": output,
        "endpoints": endpoints,
        "junit": junit.read_text(),
        "markdown": markdown.read_text(),
        **{str(p): p.read_bytes().decode("utf-8", errors="replace") for p in files},
    }
    for where, text in texts.items():
        assert key not in text, f"the API key is in {where}"
        assert signature not in text, f"the URL signature is in {where}"
    assert "[REDACTED]" in texts["markdown"]
    # The value only (the format's redact_url writes the mark as is or percent-encoded, a valid URI).
    assert re.search(r"signature=(\[REDACTED\]|%5BREDACTED%5D)[& ]", output)
    recorded = [yaml.safe_load(p.read_text()) for p in sorted(record.rglob("*.yaml"))]
    assert [r["request"]["path"] for r in recorded][:2] == [
        "/api/v1/storage/presign",
        "/api/v1/storage/upload",
    ]
    assert "authorization" not in recorded[0]["request"]["headers"]
    assert recorded[0]["response"]["status"] == 200
