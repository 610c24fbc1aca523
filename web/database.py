"""Running blocking work (database, Redis) from async endpoints: in Starlette's threadpool, with
the thread's peewee connection handed back (to the pool on PostgreSQL) when the work is done."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

import models

logger = logging.getLogger(__name__)
T = TypeVar("T")


def release_connection() -> None:
    """Close this thread's connection (returning it to the pool); roll back a forgotten transaction."""
    database = models.database
    if database.obj is None or database.is_closed():
        return
    try:
        if database.in_transaction():
            database.rollback()
        database.close()
    except Exception as error:  # a broken connection must not hide the answer being sent
        logger.warning("database connection not released cleanly: %s", error)


def _with_connection(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    try:
        return fn(*args, **kwargs)
    finally:
        release_connection()


async def call(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` in the threadpool and release its database connection after."""
    return await run_in_threadpool(_with_connection, fn, args, kwargs)
