"""The provider-neutral core: specs, routing, validation, auth, rate limits, state, clock, text, streams.

Nothing in this package imports ``mockserver.providers`` or branches on a provider's name.
"""
