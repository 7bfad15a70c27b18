"""``python -m mockserver --host 0.0.0.0`` probed from the same machine; prints what it saw as JSON.

Run by ``test_control_access.py`` inside a loopback-only network namespace (``unshare -n``), so the
non-loopback bind reaches nothing but this probe. Usage: ``_bind_probe.py [mockserver args...]``; the
environment (``MOCKSERVER_CONTROL_TOKEN``) passes through.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import requests

GENERATED = re.compile(r"^control token \(generated[^)]*\): (\S+)$", re.M)
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seen(response: requests.Response) -> dict[str, Any]:
    """What a test needs of a response."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return {
        "status": response.status_code,
        "body": body,
        "www_authenticate": response.headers.get("WWW-Authenticate"),
    }


def probe(base: str, token: str | None) -> dict[str, Any]:
    """The control API without, with a wrong and with the right token; a provider call, which needs none."""
    control = f"{base}/_mock"
    right = {"Authorization": f"Bearer {token}"}
    results = {
        "no_token": seen(requests.get(f"{control}/providers", timeout=10)),
        "no_token_reset": seen(requests.post(f"{control}/reset", timeout=10)),
        "wrong_token": seen(
            requests.get(f"{control}/providers", headers={"Authorization": "Bearer x"}, timeout=10)
        ),
        "other_scheme": seen(
            requests.get(f"{control}/providers", headers={"Authorization": f"Basic {token}"}, timeout=10)
        ),
        "right_token": seen(requests.get(f"{control}/providers", headers=right, timeout=10)),
        "right_token_reset": seen(requests.post(f"{control}/reset", headers=right, timeout=10)),
    }
    listing = results["right_token"]["body"]
    if isinstance(listing, dict) and listing.get("providers"):
        spaceai = {p["id"]: p for p in listing["providers"]}["spaceai"]
        key = {"Authorization": f"Bearer {spaceai['api_key']}"}
        results["provider_call"] = seen(requests.get(f"{base}/spaceai/v1/models", headers=key, timeout=10))
    return results


def main(args: list[str]) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mockserver", "--host", "0.0.0.0", "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    requests.get(f"{base}/_mock/providers", timeout=1)
                    break
                except requests.RequestException:
                    if server.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        return {"error": "the mock did not start", "output": log.read()}
                    time.sleep(0.05)  # real time: a separate process binding its port
            log.seek(0)
            banner = log.read()
            match = GENERATED.search(banner)
            token = match.group(1) if match else None
            results = probe(base, token or os.environ.get("MOCKSERVER_CONTROL_TOKEN"))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.seek(0)
        return {"generated_token": token, "results": results, "output": log.read(), "exit": server.returncode}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
