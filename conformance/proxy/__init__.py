"""``conformance proxy``: a validating reverse proxy that judges live traffic with the suite's own checks."""
