"""Group commit for the webhook receiver: requests that arrive within a few milliseconds share one
database transaction. Each request waits (without a threadpool hop of its own) for the commit that
holds its row and is answered from its result; when that commit fails, every request of the group
gets the error. The database work runs on one thread per web process (peewee is synchronous), one
hop per group; while a group commits there, the next one gathers."""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Batch `submit`ted items into calls of `commit(items) -> results` (same length and order),
    run one at a time on a dedicated thread. `after_commit()` (e.g. nudging the pipeline) runs on
    that thread after a group's answers are out, at most once per `after_interval` seconds, and
    always once after the last group of a burst."""

    def __init__(self, commit: Callable[[list[Item]], Sequence[Result]], *, window: float, max_size: int,
                 after_commit: Callable[[], None] | None = None, after_interval: float = 0.05,
                 name: str = "group-commit") -> None:
        self._commit = commit
        self._window = window
        self._max_size = max_size
        self._after_commit = after_commit
        self._after_interval = after_interval
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._runner: asyncio.Task[None] | None = None
        self._last_after = 0.0
        self._after_timer: asyncio.TimerHandle | None = None
        self.groups = 0  # groups committed (for tests and figures)

    async def submit(self, item: Item) -> Result:
        """Wait for the commit that holds `item`; its result, or the exception that commit raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._window > 0 and len(self._waiting) < self._max_size:
            await asyncio.sleep(self._window)  # the first request of a quiet spell waits for company
        while self._waiting:
            group = self._waiting[:self._max_size]
            del self._waiting[:self._max_size]
            try:
                results = await loop.run_in_executor(self._executor, self._commit, [item for item, _ in group])
            except Exception as error:  # the whole group failed: every request gets the error
                logger.warning("group commit of %d webhooks failed: %s", len(group), error)
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.groups += 1
            for (_, future), result in zip(group, results):
                if not future.done():
                    future.set_result(result)
            self._schedule_after(loop)
            # The requests that arrived during that commit have waited long enough: commit them now.

    def _schedule_after(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._after_commit is None or self._after_timer is not None:
            return
        wait = self._last_after + self._after_interval - time.monotonic()
        if wait <= 0:
            self._fire_after(loop)
        else:
            self._after_timer = loop.call_later(wait, self._fire_after, loop)

    def _fire_after(self, loop: asyncio.AbstractEventLoop) -> None:
        self._after_timer = None
        self._last_after = time.monotonic()
        assert self._after_commit is not None
        future = loop.run_in_executor(self._executor, self._after_commit)
        future.add_done_callback(_log_failure)

    def close(self) -> None:
        if self._after_timer is not None:
            self._after_timer.cancel()
        self._executor.shutdown(wait=False)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("after-commit step failed: %s", future.exception())


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, GroupCommit]] = weakref.WeakKeyDictionary()


def for_this_loop(name: str, build: Callable[[], GroupCommit]) -> GroupCommit:
    """The committer called `name` of the running event loop (each loop, i.e. each web process or
    test client, has its own), built on first use."""
    loop = asyncio.get_running_loop()
    committers = _per_loop.setdefault(loop, {})
    if name not in committers:
        committers[name] = build()
    return committers[name]
