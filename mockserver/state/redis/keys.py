"""Where everything lives in Redis: every key name, under ``<prefix>:`` (ARCHITECTURE.md has the table)."""

from __future__ import annotations


def glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern (SCAN MATCH)."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class KeyNames:
    """The key names of one prefix (provider ids are the mock's own, never user input)."""

    __slots__ = (
        "base",
        "clock",
        "deliveries",
        "deliveries_done",
        "deliveries_due",
        "deliveries_order",
        "fault_ids",
        "faults",
        "files",
        "files_time",
        "holds_due",
        "instance",
        "jobs_due",
        "journal",
        "journal_bytes",
        "kinds",
        "notices",
        "pattern",
        "resets",
        "secret",
        "seeded",
        "violations",
    )

    def __init__(self, prefix: str) -> None:
        p = self.base = prefix + ":"
        self.pattern = glob_escape(p) + "*"
        self.seeded = p + "meta:seeded"
        self.instance = p + "meta:instance"
        self.secret = p + "meta:secret"
        self.resets = p + "meta:resets"
        self.clock = p + "clock"
        self.notices = p + "notices"
        self.faults = p + "faults"
        self.fault_ids = p + "faults:ids"
        self.kinds = p + "res:kinds"
        self.files = p + "files"
        self.files_time = p + "files:time"
        self.jobs_due = p + "jobs:due"
        self.holds_due = p + "holds:due"
        self.deliveries = p + "dlv"
        self.deliveries_order = p + "dlv:order"
        self.deliveries_due = p + "dlv:due"
        self.deliveries_done = p + "dlv:done"
        self.journal = p + "journal"
        self.journal_bytes = p + "journal:bytes"
        self.violations = p + "violations"

    # Per provider: keys, accounts and the ledger.
    def keys(self, provider: str) -> str:
        """Hash: secret -> KeyRecord JSON."""
        return f"{self.base}{provider}:keys"

    def key_ids(self, provider: str) -> str:
        """Hash: key id -> secret."""
        return f"{self.base}{provider}:keyids"

    def key_order(self, provider: str) -> str:
        """List of secrets: seeded keys in seed order, then created ones."""
        return f"{self.base}{provider}:keyorder"

    def accounts(self, provider: str) -> str:
        """Hash: account id -> AccountRecord JSON."""
        return f"{self.base}{provider}:accounts"

    def account_order(self, provider: str) -> str:
        """List of account ids in creation order."""
        return f"{self.base}{provider}:accountorder"

    def wallet(self, provider: str, account: str) -> str:
        """Hash: balance (absent: no wallet), held, carry."""
        return f"{self.base}{provider}:wallet:{account}"

    def spend(self, provider: str, key_id: str | None) -> str:
        """Hash: a key's limit (absent: none), spent, held."""
        return f"{self.base}{provider}:spend:{key_id or '-'}"

    def hold(self, hold_id: str) -> str:
        """String: ``open``, then ``settled``/``released`` for a day (so a hold ends once)."""
        return f"{self.base}hold:{hold_id}"

    def rate(self, provider: str, bucket: str) -> str:
        """Hash: the bucket's window start and count."""
        return f"{self.base}rate:{provider}:{bucket}"

    def fault_prefix(self) -> str:
        """Hash per fault: provider, operation, remaining, JSON."""
        return f"{self.base}fault:"

    # Resources, jobs, files.
    def resources(self, provider: str, kind: str) -> str:
        """Hash: id -> resource JSON."""
        return f"{self.base}res:{provider}:{kind}"

    def resources_time(self, provider: str, kind: str) -> str:
        """Sorted set: id scored by when it was stored (mock clock)."""
        return f"{self.base}res:{provider}:{kind}:time"

    def jobs(self, provider: str) -> str:
        """Hash: job id -> JobRecord JSON."""
        return f"{self.base}jobs:{provider}"

    def jobs_time(self, provider: str) -> str:
        """Sorted set: job id scored by when it was stored (retention)."""
        return f"{self.base}jobs:{provider}:time"

    def job_lease_prefix(self) -> str:
        """String with a PX expiry per leased job (member ``provider:id``)."""
        return f"{self.base}lease:job:"

    def delivery_lease_prefix(self) -> str:
        """String with a PX expiry per leased delivery."""
        return f"{self.base}lease:dlv:"

    def blob_prefix(self) -> str:
        """String per file: its bytes."""
        return f"{self.base}blob:"
