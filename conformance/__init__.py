"""Conformance suite: checks a deployment of one of the five AI-generation APIs against its OpenAPI spec.

Schema conformance comes from schemathesis (examples, coverage and fuzzing phases); named behaviour checks
cover what a schema cannot (error envelopes, rate limits, streaming, jobs, webhooks, billing, storage).
Entry points: ``python -m conformance`` / the ``conformance`` script (``conformance.cli``),
``conformance.suite.run_provider`` from Python, and ``conformance.pytest_support`` from pytest.
"""
