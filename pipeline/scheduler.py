"""Running the periodic sweeps: which periodic actors are due at a minute (periodiq's cron specs),
an in-process scheduler thread for the embedded mode (periodiq's own scheduler needs the main
thread's SIGALRM), and the leader lock that keeps production to one active scheduler."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Callable, Sequence

import dramatiq
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
    make a doubled sweep harmless anyway; the lock keeps it from happening in the first place."""

    def __init__(self, coordination: Coordination, *, ttl: float = 60.0, identity: str | None = None) -> None:
        self.coordination = coordination
        self.ttl = ttl
        self.identity = identity or uuid.uuid4().hex
        self._renewer: threading.Thread | None = None
        self.lost = threading.Event()

    def try_acquire(self) -> bool:
        return self.coordination.set(LEADER_KEY, self.identity, ttl_seconds=self.ttl, only_if_absent=True)

    def wait_for_leadership(self, *, poll: float = 5.0, stop: threading.Event | None = None) -> bool:
        """Block until this process holds the lock (False if `stop` was set first)."""
        announced = False
        while not (stop and stop.is_set()):
            if self.try_acquire():
                return True
            if not announced:
                logger.info("another scheduler is active; standing by")
                announced = True
            time.sleep(poll)
        return False

    def renew(self) -> bool:
        return self.coordination.expire_if_value(LEADER_KEY, self.identity, self.ttl)

    def keep_renewing(self, on_lost: Callable[[], None]) -> None:
        """Renew every third of the TTL in a daemon thread; call `on_lost` if the lock is gone."""

        def loop() -> None:
            while not self.lost.wait(self.ttl / 3):
                if not self.renew():
                    logger.error("scheduler leadership lost")
                    self.lost.set()
                    on_lost()

        self._renewer = threading.Thread(target=loop, name="trackcache-leader", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        self.lost.set()
        if self.coordination.get(LEADER_KEY) == self.identity.encode():
            self.coordination.delete(LEADER_KEY)


def next_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
