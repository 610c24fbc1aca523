"""The customer read path's state in a web process: the async read-cache and rate-limit store
(a pipelined Redis connection parsed by hiredis, or the in-process coordination of the embedded mode), the hot
order documents in memory, the deferred counting of signed-in customers' lookups, and the
listener that drops hot documents when any process invalidates an order.

One Redis round trip answers a guest read: a Lua script charges the rate limit and fetches the
cached document together (EVALSHA). A signed-in customer's read whose document is hot makes
none: its charge is counted here at once and sent to Redis with the others a few milliseconds
later (one pipeline), so the limit stays shared by every web process, behind by at most that
delay. A Redis that cannot be reached lets reads through uncounted (as `ratelimit.charge`) and
sends them to the database."""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline import read_cache, runtime
from pipeline.coordination import Coordination, OutageLog
from web import ratelimit
from web.hot_documents import HotDocuments
from web.read_bodies import ReadyDocument
from web.redis_wire import RedisWire, RedisWireError

logger = logging.getLogger(__name__)

# KEYS[1]: the rate-limit counter, KEYS[2] (optional): the read-cache entry.
# ARGV: cost, window (seconds), limit. Returns {used, pttl (-1 unless over the limit), document}.
CHARGE_AND_GET = """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
local ttl = -1
if used > tonumber(ARGV[3]) then ttl = redis.call('PTTL', KEYS[1]) end
local document = false
if #KEYS > 1 then document = redis.call('GET', KEYS[2]) end
return {used, ttl, document}
"""
# The deferred charges of a batch in one call. KEYS: the counters; ARGV: window, then each key's
# cost and limit. Returns {used, pttl (-1 unless over the limit)} per key, flattened.
CHARGE_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local used = redis.call('INCRBY', key, ARGV[2 * i])
  redis.call('EXPIRE', key, ARGV[1], 'NX')
  local ttl = -1
  if used > tonumber(ARGV[2 * i + 1]) then ttl = redis.call('PTTL', key) end
  out[2 * i - 1] = used
  out[2 * i] = ttl
end
return out
"""
# How long a deferred charge waits for company before the batch is sent.
FLUSH_DELAY_SECONDS = 0.01
WINDOW = ratelimit.WINDOW_SECONDS

STORE_OUTAGE = OutageLog(logger, "Redis (customer reads)",
                         "reads are served from the database and not counted against rate limits")


@dataclass(frozen=True)
class Charged:
    used: int
    ttl_seconds: float | None
    document: bytes | None


class RedisReadStore:
    """The read cache and rate limits in Redis, on one pipelined connection per event loop
    (web.redis_wire); the invalidation listener has a connection of its own."""

    is_shared = True

    def __init__(self, url: str, prefix: str) -> None:
        self.wire = RedisWire(url)
        self.prefix = prefix

    async def charge_and_get(self, rate_key: str, *, cost: int, limit: int, cache_key: str | None) -> Charged:
        keys = [self.prefix + rate_key] + ([self.prefix + cache_key] if cache_key else [])
        used, ttl_ms, document = await self.wire.eval_script(CHARGE_AND_GET, keys, [cost, WINDOW + 1, limit])
        return Charged(int(used), None if int(ttl_ms) < 0 else int(ttl_ms) / 1000, document or None)

    async def charge_many(self, charges: Sequence[tuple[str, int, int]]) -> list[Charged]:
        """(key, cost, limit) charges, in one script call (one command to pack and one reply to
        parse however many keys: py-spy put one EVALSHA per key at 6% of a hot customer read)."""
        prefix = self.prefix
        arguments: list[Any] = [WINDOW + 1]
        for _, cost, limit in charges:
            arguments += (cost, limit)
        flat = await self.wire.eval_script(CHARGE_MANY, [prefix + key for key, _, _ in charges], arguments)
        return [Charged(used, None if ttl < 0 else ttl / 1000, None) for used, ttl in zip(flat[::2], flat[1::2])]

    async def get(self, cache_key: str) -> bytes | None:
        value = await self.wire.call("GET", self.prefix + cache_key)
        return bytes(value) if value is not None else None

    async def close(self) -> None:
        self.wire.close()


class LocalReadStore:
    """The embedded mode's in-process coordination behind the same interface (no I/O: called
    on the event loop directly)."""

    is_shared = False

    def __init__(self, coordination: Coordination) -> None:
        self.coordination = coordination

    async def charge_and_get(self, rate_key: str, *, cost: int, limit: int, cache_key: str | None) -> Charged:
        used = self.coordination.incr(rate_key, cost, ttl_seconds=WINDOW)
        return Charged(used, self.coordination.ttl(rate_key) if used > limit else None,
                       self.coordination.get(cache_key) if cache_key else None)

    async def charge_many(self, charges: Sequence[tuple[str, int, int]]) -> list[Charged]:
        return [await self.charge_and_get(key, cost=cost, limit=limit, cache_key=None) for key, cost, limit in charges]

    async def get(self, cache_key: str) -> bytes | None:
        return self.coordination.get(cache_key)

    async def close(self) -> None:
        """Nothing to release."""


@dataclass
class LoopPart:
    """What one event loop (one web process, or one test client) holds: its store, and with
    Redis the invalidation listener (hot documents are used only while it is subscribed)."""

    store: RedisReadStore | LocalReadStore
    is_live: bool
    listener: asyncio.Task[None] | None = None
    flush: asyncio.Task[None] | None = None


@dataclass
class ReadPath:
    """The read path's state of a process for one runtime."""

    rt: runtime.Runtime
    hot: HotDocuments
    charges: DeferredCharges = field(default_factory=lambda: DeferredCharges())
    loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPart] = field(
        default_factory=weakref.WeakKeyDictionary)
    # The loop last asked about and its part (a strong reference: dropped by close_loop).
    _last: tuple[asyncio.AbstractEventLoop, LoopPart] | None = field(default=None, repr=False)

    # --- per event loop ------------------------------------------------------------------------

    def part(self) -> LoopPart:
        """This event loop's part, made (and its listener started) on first use."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:  # one loop per web process: skip the weak dictionary
            return last[1]
        part = self.loops.get(loop)
        if part is None:
            config = self.rt.config
            if config.redis_url:
                part = LoopPart(RedisReadStore(config.redis_url, f"{config.redis_namespace}:"), is_live=False)
                part.listener = loop.create_task(self._listen(part), name="read-invalidations")
            else:
                part = LoopPart(LocalReadStore(self.rt.coordination), is_live=True)
            self.loops[loop] = part
        self._last = (loop, part)
        return part

    async def close_loop(self) -> None:
        """Stop this loop's listener and close its connections (the lifespan's end)."""
        loop = asyncio.get_running_loop()
        part = self.loops.pop(loop, None)
        if self._last is not None and self._last[0] is loop:
            self._last = None
        if part is None:
            return
        for task in (part.listener, part.flush):
            if task is not None:
                await stop_task(task)
        if part.listener is None:
            await part.store.close()

    async def _listen(self, part: LoopPart) -> None:
        assert isinstance(part.store, RedisReadStore)
        channel = part.store.prefix + read_cache.INVALIDATION_CHANNEL

        def subscribed() -> None:
            # Whatever was published while unsubscribed is unknown: start empty.
            self.hot.clear()
            part.is_live = True
            STORE_OUTAGE.recovered()

        def heard(data: bytes) -> None:
            self.hot.drop(read_cache.parse_invalidation(data))

        try:
            while True:
                try:
                    await part.store.wire.listen(channel, heard, subscribed)
                except RedisWireError as error:
                    STORE_OUTAGE.failed(error, "invalidation listener")
                part.is_live = False
                self.hot.clear()
                await asyncio.sleep(1.0)
        finally:
            part.is_live = False
            await part.store.close()

    # --- hot documents --------------------------------------------------------------------------

    def hot_document(self, part: LoopPart, audience: str, order_id: str) -> ReadyDocument | None:
        return self.hot.get(audience, order_id, time.monotonic()) if part.is_live else None

    def keep(self, part: LoopPart, audience: str, order_id: str, document: ReadyDocument, generation: int) -> None:
        if part.is_live:
            self.hot.put(audience, order_id, document, time.monotonic(), generation=generation)

    # --- deferred charges -----------------------------------------------------------------------

    def charge_later(self, part: LoopPart, key: str, *, limit: int, cost: int = 1) -> ratelimit.Verdict:
        """Count a charge now and send it to Redis with the next batch (see DeferredCharges)."""
        if not part.store.is_shared:
            return ratelimit.charge(self.rt.coordination, key, limit=limit, cost=cost)
        verdict = self.charges.charge(key, cost=cost, limit=limit, now=time.monotonic())
        if part.flush is None or part.flush.done():
            part.flush = asyncio.get_running_loop().create_task(self._flush(part))
        return verdict

    async def _flush(self, part: LoopPart) -> None:
        while self.charges.has_pending():
            await asyncio.sleep(FLUSH_DELAY_SECONDS)
            batch = self.charges.take_batch()
            try:
                results = await part.store.charge_many(batch)
            except Exception as error:  # fail open, as ratelimit.charge: these charges are not counted
                STORE_OUTAGE.failed(error, "rate-limit batch")
                self.charges.settle(batch, None, now=time.monotonic())
                continue
            STORE_OUTAGE.recovered()
            self.charges.settle(batch, results, now=time.monotonic())


async def stop_task(task: asyncio.Task[None], *, every: float = 0.5) -> None:
    """Cancel `task` until it has ended. Once is not always enough: Python 3.11's asyncio.wait_for
    swallows a cancellation that arrives as its inner call completes (the listener connecting to
    Redis while a short-lived app shuts down), and the task then runs on; awaiting it once hung
    the lifespan's shutdown."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("read path task %s ended with %r", task.get_name(), task.exception())


class DeferredCharges:
    """Rate-limit charges counted in process and sent to the shared counter in batches. A verdict
    counts what the shared counter said last, plus the charges in flight to it, plus those not
    sent yet: exact within one process, behind other processes by one batch. Pure: the caller
    sends the batches and passes the clock."""

    def __init__(self, max_known: int = 10_000) -> None:
        self.max_known = max_known
        self.pending: dict[str, tuple[int, int]] = {}  # key -> (cost, limit), not sent yet
        self.in_flight: dict[str, int] = {}  # key -> cost sent, answer not back yet
        self.known: dict[str, tuple[int, float]] = {}  # key -> (shared count, window end)

    def charge(self, key: str, *, cost: int, limit: int, now: float) -> ratelimit.Verdict:
        used, ends = self.known.get(key, (0, now + WINDOW))
        if ends <= now:
            used, ends = 0, now + WINDOW
        waiting, _ = self.pending.get(key, (0, limit))
        self.pending[key] = (waiting + cost, limit)
        total = used + self.in_flight.get(key, 0) + waiting + cost
        return ratelimit.verdict_of(total, limit, ends - now)

    def has_pending(self) -> bool:
        return bool(self.pending)

    def take_batch(self) -> list[tuple[str, int, int]]:
        """The charges to send now as (key, cost, limit), counted in flight until `settle`."""
        batch, self.pending = [(key, cost, limit) for key, (cost, limit) in self.pending.items()], {}
        for key, cost, _ in batch:
            self.in_flight[key] = self.in_flight.get(key, 0) + cost
        return batch

    def settle(self, batch: Sequence[tuple[str, int, int]], results: Sequence[Charged] | None, *, now: float) -> None:
        """The shared counter's answers to a batch (None: it could not be sent; those charges are
        let go, as `ratelimit.charge` fails open)."""
        for key, cost, _ in batch:
            left = self.in_flight.get(key, 0) - cost
            if left > 0:
                self.in_flight[key] = left
            else:
                self.in_flight.pop(key, None)
        if results is None:
            return
        if len(self.known) > self.max_known:
            self.known = {k: v for k, v in self.known.items() if v[1] > now}
        for (key, _, _), charged in zip(batch, results):
            self.known[key] = (charged.used, now + (charged.ttl_seconds if charged.ttl_seconds is not None else WINDOW))


_current: tuple[runtime.Runtime, ReadPath] | None = None


def current(rt: runtime.Runtime | None = None) -> ReadPath:
    """The read path of the process's runtime (a new runtime, e.g. in tests, gets a new one)."""
    global _current
    rt = rt or runtime.current()
    if _current is None or _current[0] is not rt:
        config = rt.config
        hot = HotDocuments(max_entries=config.hot_documents, max_bytes=config.hot_documents_mb * 1024 * 1024,
                           max_age=float(min(config.hot_document_seconds, config.read_cache_seconds)))
        _current = (rt, ReadPath(rt, hot))
    return _current[1]


def _forget_in_process(order_ids: Sequence[str]) -> None:
    if _current is not None:
        _current[1].hot.drop(tuple(order_ids))


read_cache.on_invalidation(_forget_in_process)


def loop_resources() -> Any:
    """Start this loop's part of the read path (the lifespan calls it, so the invalidation
    listener is subscribed before the first read)."""
    return current().part()
