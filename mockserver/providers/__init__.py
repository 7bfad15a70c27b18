"""Provider modules: each holds only its provider's quirks on top of the core."""

from __future__ import annotations

import importlib

from mockserver.core.calls import ProviderModule


def load_module(provider_id: str) -> ProviderModule:
    """Import ``mockserver.providers.<id>`` and return its ``PROVIDER``."""
    module = importlib.import_module(f"mockserver.providers.{provider_id}")
    provider: ProviderModule = module.PROVIDER
    return provider
