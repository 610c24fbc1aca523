"""Shared state between processes: counters with expiry, keys with TTL, publish/subscribe.
Redis in production; an in-process implementation with the same behaviour in the embedded mode.
Budget, cooldowns, read cache, rate limits, the scheduler's leader lock and status
notifications are all built on this one small interface."""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterator, Protocol, Sequence


class Coordination(Protocol):
    def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int: ...
    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes | str, *, ttl_seconds: float | None = None, only_if_absent: bool = False) -> bool: ...
    def delete(self, *keys: str) -> None: ...
    def ttl(self, key: str) -> float | None: ...
    def expire_if_value(self, key: str, value: bytes | str, ttl_seconds: float) -> bool: ...
    def publish(self, channel: str, message: str) -> None: ...
    def delete_and_publish(self, keys: Sequence[str], messages: Sequence[tuple[str, str]]) -> None: ...
    def subscribe(self, channel: str, stop: threading.Event) -> Iterator[str]: ...
    def ping(self) -> bool: ...
    def rate_limiter_backend(self) -> Any: ...
    def close(self) -> None: ...


class LocalCoordination:
    """In-process coordination for the embedded mode (one process, many threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[bytes, float | None]] = {}
        self._subscribers: dict[str, list[queue.Queue[str]]] = {}
        self._limiter_backend: Any = None

    def _alive(self, key: str) -> tuple[bytes, float | None] | None:
        item = self._values.get(key)
        if item is not None and item[1] is not None and item[1] <= self._clock():
            del self._values[key]
            return None
        return item

    def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int:
        with self._lock:
            item = self._alive(key)
            value = int(item[0]) + amount if item else amount
            expires = item[1] if item else (self._clock() + ttl_seconds if ttl_seconds else None)
            self._values[key] = (str(value).encode(), expires)
            return value

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._alive(key)
            return item[0] if item else None

    def set(self, key: str, value: bytes | str, *, ttl_seconds: float | None = None,
            only_if_absent: bool = False) -> bool:
        data = value.encode() if isinstance(value, str) else value
        with self._lock:
            if only_if_absent and self._alive(key) is not None:
                return False
            self._values[key] = (data, self._clock() + ttl_seconds if ttl_seconds else None)
            return True

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._values.pop(key, None)

    def ttl(self, key: str) -> float | None:
        with self._lock:
            item = self._alive(key)
            if item is None or item[1] is None:
                return None
            return max(0.0, item[1] - self._clock())

    def expire_if_value(self, key: str, value: bytes | str, ttl_seconds: float) -> bool:
        data = value.encode() if isinstance(value, str) else value
        with self._lock:
            item = self._alive(key)
            if item is None or item[0] != data:
                return False
            self._values[key] = (data, self._clock() + ttl_seconds)
            return True

    def publish(self, channel: str, message: str) -> None:
        with self._lock:
            targets = list(self._subscribers.get(channel, ()))
        for target in targets:
            target.put(message)

    def delete_and_publish(self, keys: Sequence[str], messages: Sequence[tuple[str, str]]) -> None:
        self.delete(*keys)
        for channel, message in messages:
            self.publish(channel, message)

    def subscribe(self, channel: str, stop: threading.Event) -> Iterator[str]:
        inbox: queue.Queue[str] = queue.Queue()
        with self._lock:
            self._subscribers.setdefault(channel, []).append(inbox)
        try:
            while not stop.is_set():
                try:
                    yield inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
        finally:
            with self._lock:
                self._subscribers[channel].remove(inbox)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release in process."""

    def rate_limiter_backend(self) -> Any:
        from dramatiq.rate_limits.backends import StubBackend

        with self._lock:
            if self._limiter_backend is None:
                self._limiter_backend = StubBackend()
            return self._limiter_backend


class RedisCoordination:
    """Coordination through Redis, shared by every process of a deployment."""

    def __init__(self, url: str, *, prefix: str = "trackcache:") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30)
        self.prefix = prefix

    def _k(self, key: str) -> str:
        return self.prefix + key

    def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int:
        pipe = self.client.pipeline()
        pipe.incrby(self._k(key), amount)
        if ttl_seconds:
            pipe.expire(self._k(key), int(ttl_seconds) + 1, nx=True)
        return int(pipe.execute()[0])

    def get(self, key: str) -> bytes | None:
        value = self.client.get(self._k(key))
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    def set(self, key: str, value: bytes | str, *, ttl_seconds: float | None = None,
            only_if_absent: bool = False) -> bool:
        px = int(ttl_seconds * 1000) if ttl_seconds else None
        return bool(self.client.set(self._k(key), value, px=px, nx=only_if_absent))

    def delete(self, *keys: str) -> None:
        if keys:
            self.client.delete(*(self._k(k) for k in keys))

    def ttl(self, key: str) -> float | None:
        ms = self.client.pttl(self._k(key))
        return None if ms is None or ms < 0 else ms / 1000.0

    _EXPIRE_IF_VALUE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
    )

    def expire_if_value(self, key: str, value: bytes | str, ttl_seconds: float) -> bool:
        return bool(self.client.eval(self._EXPIRE_IF_VALUE, 1, self._k(key), value, int(ttl_seconds * 1000)))

    def publish(self, channel: str, message: str) -> None:
        self.client.publish(self._k(channel), message)

    def delete_and_publish(self, keys: Sequence[str], messages: Sequence[tuple[str, str]]) -> None:
        """Delete keys and publish (channel, message) pairs in one round trip (a pipeline, no
        transaction)."""
        if not keys and not messages:
            return
        pipe = self.client.pipeline(transaction=False)
        if keys:
            pipe.delete(*(self._k(k) for k in keys))
        for channel, message in messages:
            pipe.publish(self._k(channel), message)
        pipe.execute()

    def subscribe(self, channel: str, stop: threading.Event) -> Iterator[str]:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self._k(channel))
        try:
            while not stop.is_set():
                item = pubsub.get_message(timeout=0.5)
                if item and item.get("type") == "message":
                    data = item["data"]
                    yield data.decode() if isinstance(data, bytes) else str(data)
        finally:
            pubsub.close()

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:
            return False

    def close(self) -> None:
        self.client.close()

    def delete_namespace(self) -> int:
        """Delete every key under this store's prefix (tests and benchmarks start clean this way)."""
        deleted = 0
        for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            deleted += int(self.client.delete(key))
        return deleted

    def rate_limiter_backend(self) -> Any:
        from dramatiq.rate_limits.backends import RedisBackend

        return RedisBackend(client=self.client)


class OutageLog:
    """One log line when a dependency becomes unreachable and one when it answers again, however
    many operations fail in between (those go to debug): an outage is not a traceback per request."""

    def __init__(self, log: Any, what: str, consequence: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._what = what
        self._consequence = consequence
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0

    @property
    def is_down(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException, subject: str = "") -> None:
        """Record one failed operation (`subject` names it in the debug line, e.g. an inbox id)."""
        with self._lock:
            is_first = self._since is None
            if is_first:
                self._since = self._clock()
            self._failures += 1
        if is_first:
            self._log.warning("%s unreachable (%s); %s", self._what, brief_error(error), self._consequence)
        else:
            self._log.debug("%s still unreachable%s: %s", self._what, f" ({subject})" if subject else "",
                            brief_error(error))

    def recovered(self) -> None:
        """Record a successful operation; logs the end of an outage once."""
        if self._since is None:  # the common case: no lock taken
            return
        with self._lock:
            if self._since is None:
                return
            lasted, failures = self._clock() - self._since, self._failures
            self._since, self._failures = None, 0
        self._log.warning("%s reachable again after %.0f s (%d operation(s) failed meanwhile)", self._what, lasted,
                          failures)


def brief_error(error: BaseException) -> str:
    """The first line of an error's message (its type when it has none), for one-line logs."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
