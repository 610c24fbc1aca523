"""Fixed-rate webhook generator for `bench.webhooks`: one process offers EasyParcel webhooks at a
fixed rate over keep-alive connections and measures each answer's latency from its *scheduled*
send time (so a server that falls behind is charged for the queueing it causes).

    python -m bench.webhook_load --port P --secret S --rate R --duration D --start-at EPOCH \\
        --shipments N --stride K --offset I --label L --out results.json

Request i (of this process) goes at start + i / rate; it carries a new scan for shipment
EPB<(i*stride + offset) % N> with a unique uuid, so every webhook is a new event."""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from datetime import datetime, timedelta, timezone

BASE_TIME = datetime(2026, 11, 1, tzinfo=timezone.utc)


def load_number(index: int) -> str:
    return f"EPB{index:06d}"


def webhook_body(number: str, uuid: str, sequence: int, text: str = "Arrived at sorting hub") -> bytes:
    """An EasyParcel shipment.tracking.update with one new scan (webhook_shipment_tracking_update.json)."""
    at = (BASE_TIME + timedelta(seconds=sequence)).strftime("%Y-%m-%d %H:%M:%S")
    return json.dumps({"topic": "shipment.tracking.update", "uuid": uuid, "timestamp": at, "awb_number": number,
                       "latest_shipment_status_code": 3, "latest_tracking_status": text,
                       "status_log": [{"timestamp": at, "shipment_status_code": 3, "tracking_status": text}]}).encode()


async def _read_response(reader: asyncio.StreamReader) -> int:
    """The status of one HTTP/1.1 response, its body read past (two reads: head, body)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        raise ConnectionError("closed") from error
    status = int(head[9:12])
    at = head.lower().find(b"\r\ncontent-length:")
    length = int(head[at + 17:head.index(b"\r\n", at + 2)]) if at >= 0 else 0
    if length:
        await reader.readexactly(length)
    return status


async def _connection(host: str, port: int, path: bytes, queue: asyncio.Queue, results: list) -> None:
    reader = writer = None
    while True:
        item = await queue.get()
        if item is None:
            break
        scheduled, request = item
        status = 0
        for _ in range(2):  # one reconnect if the server closed an idle connection
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                writer.write(request)
                status = await _read_response(reader)
                break
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                writer = None
                status = -1
        results.append((scheduled, time.time(), status))


def _request(path: bytes, index: int, args: argparse.Namespace) -> bytes:
    """The whole HTTP request of this process's `index`th webhook."""
    sequence = index * args.stride + args.offset
    body = webhook_body(load_number(sequence % args.shipments), f"{args.label}-{sequence}", args.sequence_base + sequence)
    return (b"POST " + path + b" HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def run(args: argparse.Namespace) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    results: list = []
    path = f"/api/webhooks/easyparcel/{args.secret}".encode()
    workers = [asyncio.create_task(_connection("127.0.0.1", args.port, path, queue, results))
               for _ in range(args.connections)]
    total = int(args.rate * args.duration)
    requests = [_request(path, i, args) for i in range(total)]  # built before the start: not timed
    sent = 0
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    start = args.start_at
    while sent < total:
        due = min(total, int((time.time() - start) * args.rate) + 1)
        while sent < due:
            queue.put_nowait((start + sent / args.rate, requests[sent]))
            sent += 1
        await asyncio.sleep(0.001)
    for _ in workers:
        queue.put_nowait(None)
    # Answers still missing `grace` seconds after the load's end are counted as unanswered.
    _, late = await asyncio.wait(workers, timeout=max(0.1, start + args.duration + args.grace - time.time()))
    for task in late:
        task.cancel()
    return {"sent": sent, "results": results, "unanswered": sent - len(results)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--shipments", type=int, required=True)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--sequence-base", type=int, default=0)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--label", default="bench")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds to wait for answers after the load")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:  # the generator's own CPU is taken from the machine it measures: the faster loop if present
        import uvloop
    except ImportError:
        outcome = asyncio.run(run(args))
    else:
        outcome = uvloop.run(run(args))
    with open(args.out, "w") as handle:
        json.dump(outcome, handle)


if __name__ == "__main__":
    main()
