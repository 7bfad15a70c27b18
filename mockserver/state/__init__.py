"""Everything the mock remembers, behind one interface (``api.State``) with two backends.

``memory`` (embedded, the default) keeps state in this process; ``redis`` keeps it in a Redis 7 / Valkey
server under a key prefix, so several processes and machines act as one mock and state survives restarts.
Nothing outside this package imports a backend module or branches on which backend runs: the rest of the
mock asks ``State`` for what it needs (find a key, reserve cents, put a job, claim a delivery).
"""
