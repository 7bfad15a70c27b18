"""The Redis backend of ``State`` (imported only by ``state.factory``, only when a redis:// URL is asked for).

Modules by role: ``connection`` (client, timeouts, errors), ``keys`` (every key name), ``scripts`` (the Lua
scripts), ``batch`` (one pipeline per loop turn), ``ledger`` (keys, accounts, money), ``tables`` (resources,
files), ``queues`` (jobs, deliveries), ``journal`` (journal, violations), ``notices`` (pub/sub between
instances), ``state`` (``RedisState``).
"""

from mockserver.state.redis.state import RedisState

__all__ = ["RedisState"]
