"""The ``memory`` backend: everything in this process's memory, as the mock always kept it.

One process is the whole mock, so every "atomic" operation is simply a method that never awaits: under
asyncio nothing else runs between its check and its change. The coroutines never yield either, and the
request path's calls are synchronous (``cached_key``, ``admit_now``, ``record``): it costs what the
dictionaries cost. Leases on jobs and
deliveries are kept (a claimed one is not handed out again until finished, put back or the lease runs
out) although one process never competes with another; they run on real (monotonic) time, so advancing
the mock's clock while a finisher runs does not hand its job out a second time.
"""

from mockserver.state.memory.backend import MemoryState

__all__ = ["MemoryState"]
