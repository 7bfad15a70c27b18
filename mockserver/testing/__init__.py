"""The testing kit: the mock in a background thread, a handle on its control API, a webhook receiver.

The pytest plugin (``mockserver.plugin``) wraps these in fixtures; use them directly elsewhere (unittest, a
script, another test runner)::

    from mockserver.settings import Settings
    from mockserver.testing import MockControl, ServerThread

    with ServerThread(Settings(seed=0)) as server, MockControl(server.base_url, server) as mock:
        mock.post("spaceai", "/v1/chat/completions", json={...})
"""

from mockserver.testing.control import ControlError, MockControl, ProviderInfo
from mockserver.testing.golden import GoldenName, golden_errors, golden_path, load_golden
from mockserver.testing.server import LOOPBACK, ServerPool, ServerThread
from mockserver.testing.webhooks import ReceivedWebhook, WebhookReceiver, verify_signature

__all__ = [
    "LOOPBACK",
    "ControlError",
    "GoldenName",
    "MockControl",
    "ProviderInfo",
    "ReceivedWebhook",
    "ServerPool",
    "ServerThread",
    "WebhookReceiver",
    "golden_errors",
    "golden_path",
    "load_golden",
    "verify_signature",
]
