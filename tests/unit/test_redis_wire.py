"""The read path's Redis connection against tiny in-process servers: replies in order, and a
Redis that holds the connection open without answering fails the waiting commands instead of
leaving reads waiting forever; the next command reconnects."""
import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from web.redis_wire import RedisWire, RedisWireError


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """`asyncio.run(scenario())` on a thread of its own: a test run in one process may have left an
    event loop running on this thread, where asyncio.run refuses to start."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(scenario())
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


async def serve(handler) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def answering_pong(counter: list[int]):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counter.append(1)
        try:
            while data := await reader.read(4096):
                writer.write(b"+PONG\r\n" * data.count(b"PING"))
                await writer.drain()
        finally:
            writer.close()
    return handler


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.read(4096):
            pass  # reads every command, answers none
    finally:
        writer.close()


async def stop(wire: RedisWire, server: asyncio.AbstractServer) -> None:
    """Close the client, then let the server's handlers see the end and close their side."""
    wire.close()
    server.close()
    await asyncio.sleep(0.1)


def test_replies_come_back_in_order():
    async def scenario():
        server, port = await serve(answering_pong([]))
        wire = RedisWire(f"redis://127.0.0.1:{port}/0", reply_timeout=1.0)
        replies = await asyncio.gather(*(wire.call("PING") for _ in range(20)))
        await stop(wire, server)
        return replies
    assert run(scenario) == [b"PONG"] * 20


def test_a_redis_that_stops_answering_fails_the_waiting_commands():
    async def scenario():
        server, port = await serve(silent)
        wire = RedisWire(f"redis://127.0.0.1:{port}/0", reply_timeout=0.4)
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisWireError, match="no reply from Redis within 0.4 s"):
            await asyncio.wait_for(asyncio.gather(wire.call("PING"), wire.call("PING")), 5)
        waited = asyncio.get_running_loop().time() - started
        await stop(wire, server)
        return waited
    waited = run(scenario)
    assert 0.4 <= waited < 5  # failed by the watchdog, not by the test's own timeout


def test_the_next_command_reconnects_after_the_watchdog_aborted():
    async def scenario():
        answering = {"now": False}
        connections: list[int] = []

        async def handler(reader, writer):
            if answering["now"]:
                await answering_pong(connections)(reader, writer)
            else:
                await silent(reader, writer)
        server, port = await serve(handler)
        wire = RedisWire(f"redis://127.0.0.1:{port}/0", reply_timeout=0.3)
        with pytest.raises(RedisWireError):
            await asyncio.wait_for(wire.call("PING"), 5)
        answering["now"] = True
        reply = await asyncio.wait_for(wire.call("PING"), 5)
        await stop(wire, server)
        return reply, connections
    reply, connections = run(scenario)
    assert reply == b"PONG" and connections == [1]


# --- stopping the read path's tasks ----------------------------------------------------------------

def test_a_task_that_swallows_its_first_cancellation_is_still_stopped():
    from web.read_store import stop_task

    async def scenario() -> int:
        cancellations = 0

        async def stubborn() -> None:  # as a listener whose wait_for swallowed the cancellation
            nonlocal cancellations
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    cancellations += 1
                    if cancellations > 1:
                        raise

        task = asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(stop_task(task, every=0.05), 5)
        assert task.cancelled()
        return cancellations

    assert run(scenario) == 2
