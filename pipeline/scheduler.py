"""Running the periodic sweeps: which periodic actors are due at a minute (periodiq's cron specs),
an in-process scheduler thread for the embedded mode, and, for production, the leader lock and
the loop that keeps one scheduler active and survives Redis outages. periodiq's own scheduler
loop is not used: it needs the main thread's SIGALRM and ends at the first failed send."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Callable, Sequence

import dramatiq
import dramatiq.errors
import pendulum

from pipeline.coordination import Coordination

logger = logging.getLogger(__name__)

LEADER_KEY = "scheduler:leader"


def due_actors(actors: Sequence[dramatiq.Actor], moment: datetime) -> list[dramatiq.Actor]:
    """The periodic actors whose cron spec matches this minute.

    periodiq checks the day of week with ISO numbering, so Sunday matches only as 7, never 0.
    """
    return [actor for actor in actors if actor.options["periodic"].validate(moment)]


def send_due(actors: Sequence[dramatiq.Actor], moment: pendulum.DateTime) -> list[str]:
    """Send every due actor, stamped like periodiq does (its middleware skips stale sends)."""
    sent = []
    for actor in due_actors(actors, moment):
        actor.send_with_options(scheduled_at=str(moment))
        sent.append(actor.actor_name)
    return sent


class EmbeddedScheduler(threading.Thread):
    """Sends the periodic actors at each minute they are due, in a background thread."""

    def __init__(self, actors: Sequence[dramatiq.Actor], *, clock: Callable[[], pendulum.DateTime] = pendulum.now) -> None:
        super().__init__(name="trackcache-scheduler", daemon=True)
        self.actors = list(actors)
        self.clock = clock
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            now = self.clock()
            minute = now.replace(second=0, microsecond=0)
            try:
                sent = send_due(self.actors, minute)
                if sent:
                    logger.debug("scheduler sent %s at %s", ", ".join(sent), minute)
            except Exception:  # a broken sweep must not stop the schedule
                logger.exception("scheduler could not send the sweeps due at %s", minute)
            next_minute = minute.add(minutes=1)
            self.stopping.wait(max(0.0, (next_minute - self.clock()).total_seconds()))

    def stop(self) -> None:
        self.stopping.set()


class LeaderLock:
    """One active scheduler per deployment: a key with a TTL that its holder keeps renewing.

    A second scheduler waits as a standby and takes over when the holder stops renewing. Claims
    make a doubled sweep harmless anyway; the lock keeps it from happening in the first place.
    Its calls raise the coordination store's errors; `LeaderScheduler` decides what they mean."""

    def __init__(self, coordination: Coordination, *, ttl: float = 60.0, identity: str | None = None) -> None:
        self.coordination = coordination
        self.ttl = ttl
        self.identity = identity or uuid.uuid4().hex

    def try_acquire(self) -> bool:
        return self.coordination.set(LEADER_KEY, self.identity, ttl_seconds=self.ttl, only_if_absent=True)

    def renew(self) -> bool:
        """Extend the lock; False when this process no longer holds it (it lapsed, another
        scheduler took it, or Redis came back empty)."""
        return self.coordination.expire_if_value(LEADER_KEY, self.identity, self.ttl)

    def release(self) -> None:
        if self.coordination.get(LEADER_KEY) == self.identity.encode():
            self.coordination.delete(LEADER_KEY)


# Errors that mean "Redis (lock or broker) cannot be reached now": retried, never fatal.
def _unreachable_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, dramatiq.errors.BrokerConnectionError,
            OSError)


class LeaderScheduler:
    """The production scheduler (`trackcache scheduler`): takes the leader lock, keeps renewing
    it and sends the periodic actors each minute they are due, all in the calling thread.

    A Redis outage never ends it: lock, renewal and sends are retried, with one log line when
    Redis goes away and one when it is back. It schedules only while it holds the lock: it
    renews right before each send, steps down as soon as a renewal says the lock is gone (lapsed,
    taken over, or Redis restarted empty), and steps down by itself once it has been unable to
    renew for the lock's TTL, because by then a standby may hold it. A send that failed is
    retried until it is sent or too old for the workers to run (periodiq skips stale sends)."""

    def __init__(self, actors: Sequence[dramatiq.Actor], lock: LeaderLock, *,
                 clock: Callable[[], pendulum.DateTime] = pendulum.now, monotonic: Callable[[], float] = time.monotonic,
                 standby_poll: float = 5.0, retry: float = 1.0, stale_after: float = 110.0) -> None:
        from pipeline.coordination import OutageLog

        self.actors = list(actors)
        self.lock = lock
        self.clock = clock
        self.monotonic = monotonic
        self.standby_poll = standby_poll
        self.retry = retry
        self.stale_after = stale_after
        self.stopping = threading.Event()
        self.is_leader = False
        self.sent: list[tuple[str, str]] = []  # (actor, minute) of recent sends, for tests and logs
        self._held_until = 0.0
        self._renewed_at = float("-inf")
        self._last_minute: pendulum.DateTime | None = None
        self._pending: list[tuple[dramatiq.Actor, pendulum.DateTime]] = []
        self._announced_standby = False
        self._outage = OutageLog(logger, "Redis (scheduler lock and broker)",
                                 "the scheduler keeps retrying and sends nothing until it is back")

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        """Schedule until `stop()`; releases the lock on the way out."""
        while not self.stopping.is_set():
            self.stopping.wait(self.step())
        if self.is_leader:
            try:
                self.lock.release()
            except _unreachable_errors():
                pass  # the lock lapses by itself
            self.is_leader = False

    def stop(self) -> None:
        self.stopping.set()

    def step(self) -> float:
        """One round: take or keep the lock, send what is due; returns the seconds to wait."""
        if not self.is_leader and not self._take_lead():
            return self.retry if self._outage.is_down else self.standby_poll
        self._collect_due()
        renew_every = self.lock.ttl / 3
        must_renew = self.monotonic() - self._renewed_at >= (self.retry if self._pending else renew_every)
        if must_renew and not self._renew():
            return 0.0 if not self.is_leader else self.retry
        if self._pending and not self._send_pending():
            return self.retry
        next_minute_in = (self._minute().add(minutes=1) - self.clock()).total_seconds()
        until_renewal = self._renewed_at + renew_every - self.monotonic()
        return max(0.05, min(next_minute_in, until_renewal))

    # --- leadership -----------------------------------------------------------------------------

    def _take_lead(self) -> bool:
        try:
            acquired = self.lock.try_acquire()
        except _unreachable_errors() as error:
            self._outage.failed(error, "leader lock")
            return False
        self._outage.recovered()
        if not acquired:
            if not self._announced_standby:
                logger.info("another scheduler is active; standing by")
                self._announced_standby = True
            return False
        now = self.monotonic()
        self.is_leader, self._held_until, self._renewed_at = True, now + self.lock.ttl, now
        self._announced_standby = False
        if self._last_minute is None:
            # A scheduler that just started sends from the next minute on, unless this one began
            # a moment ago: the previous holder has already sent it.
            self._last_minute = self._minute()
        logger.info("this scheduler is the active one (%s)", self.lock.identity)
        return True

    def _renew(self) -> bool:
        started = self.monotonic()
        try:
            held = self.lock.renew()
        except _unreachable_errors() as error:
            self._outage.failed(error, "leader lock renewal")
            if self.monotonic() >= self._held_until:
                logger.warning("scheduler lock lapsed while Redis was unreachable; standing by until it can be "
                               "taken again")
                self.is_leader = False
            return False
        self._outage.recovered()
        if not held:
            logger.warning("scheduler lock lost (it lapsed, another scheduler holds it, or Redis restarted "
                           "empty); standing by")
            self.is_leader = False
            return False
        self._held_until, self._renewed_at = started + self.lock.ttl, started
        return True

    # --- sends ----------------------------------------------------------------------------------

    def _minute(self) -> pendulum.DateTime:
        return self.clock().replace(second=0, microsecond=0)

    def _collect_due(self) -> None:
        minute = self._minute()
        if self._last_minute is not None and minute <= self._last_minute:
            return
        self._last_minute = minute
        self._pending.extend((actor, minute) for actor in due_actors(self.actors, minute))

    def _send_pending(self) -> bool:
        """Send what is pending, oldest first; False when Redis failed (the rest stays pending)."""
        now = self.clock()
        while self._pending:
            actor, minute = self._pending[0]
            if (now - minute).total_seconds() > self.stale_after:
                logger.warning("%s due at %s was not sent: Redis was unreachable until it was too old to run",
                               actor.actor_name, minute)
                self._pending.pop(0)
                continue
            try:
                actor.send_with_options(scheduled_at=str(minute))
            except _unreachable_errors() as error:
                self._outage.failed(error, f"send {actor.actor_name}")
                return False
            except Exception:  # a broken actor must not stop the schedule
                logger.exception("scheduler could not send %s due at %s", actor.actor_name, minute)
            else:
                self._outage.recovered()
                self.sent = [*self.sent[-99:], (actor.actor_name, str(minute))]
                logger.info("sent %s due at %s", actor.actor_name, minute)
            self._pending.pop(0)
        return True


def next_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
