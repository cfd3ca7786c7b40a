"""A real local Jetstream server for the live-feed tests: `JetstreamServer`, a WebSocket server on
127.0.0.1 (a free port, its own thread, stopped by its context manager) replaying Jetstream frames;
it honours `cursor=` (frames with `time_us >= cursor`) and can drop connections abruptly after N
frames. Plus `jetstream_commit`, which builds the frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve


def frame_time(frame: str | bytes, previous: int) -> int:
    """The replay position of a frame: its time_us, or the previous one for unreadable frames."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return previous
    value = obj.get("time_us") if isinstance(obj, dict) else None
    return value if type(value) is int else previous


@dataclass
class JetstreamServer:
    """Replays `frames` to every connection, starting at `cursor=` when the client sends one.

    `drops[i]`, when given, makes connection number i (0-based) abort without a close frame
    after sending that many frames, as a network failure would. `drop_after_index[i]` does the
    same right after sending `frames[k]` (k an index into `frames`): a drop at a fixed point of
    the stream, wherever the client's cursor made that connection start.
    """

    frames: Sequence[str | bytes]
    drops: dict[int, int] = field(default_factory=dict)
    drop_after_index: dict[int, int] = field(default_factory=dict)
    frame_delay: float = 0.0
    reject_status: int | None = None
    ping_only: dict[int, int] = field(default_factory=dict)
    """Connection i sends that many frames, then nothing but pings (every 50 ms) forever."""
    connections: list[dict[str, Any]] = field(default_factory=list)
    sent: list[list[str | bytes]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        times, prev = [], 0
        for frame in self.frames:
            prev = frame_time(frame, prev)
            times.append(prev)
        self._times = times
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="jetstream-server", daemon=True)

    @property
    def url(self) -> str:
        """The subscribe URL."""
        return f"ws://127.0.0.1:{self.port}/subscribe"

    def __enter__(self) -> JetstreamServer:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("jetstream test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            server.close(close_connections=True)

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        if self.reject_status is not None:
            return connection.respond(self.reject_status, "rejected by test server\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        index = len(self.connections)
        self.connections.append({"path": ws.request.path, "cursor": cursor, "query": query})
        sent: list[str | bytes] = []
        self.sent.append(sent)
        drop_after = self.drops.get(index)
        drop_index = self.drop_after_index.get(index)
        ping_after = self.ping_only.get(index)
        for k, (frame, at) in enumerate(zip(self.frames, self._times, strict=True)):
            if cursor is not None and at < cursor:
                continue
            if ping_after is not None and len(sent) >= ping_after:
                with contextlib.suppress(Exception):
                    while True:  # alive, answering pongs, delivering nothing
                        await ws.ping()
                        await asyncio.sleep(0.05)
                return
            if drop_after is not None and len(sent) >= drop_after:
                ws.transport.abort()  # no close frame: like a network failure
                return
            await ws.send(frame)
            sent.append(frame)
            if drop_index is not None and k >= drop_index:
                # Let the kernel have every frame sent so far, so the client sees exactly
                # frames[..k] before the connection breaks.
                while ws.transport.get_write_buffer_size():
                    await asyncio.sleep(0.001)
                ws.transport.abort()
                return
            if self.frame_delay:
                await asyncio.sleep(self.frame_delay)
        # A live stream goes quiet, it does not end: wait for the client to leave.
        await ws.wait_closed()


def jetstream_commit(
    did: str,
    time_us: int,
    collection: str,
    rkey: str,
    record: dict[str, Any] | None = None,
    operation: str = "create",
) -> bytes:
    """One Jetstream v1 commit frame, in the shape the public service sends."""
    commit: dict[str, Any] = {
        "rev": f"3l{rkey}",
        "operation": operation,
        "collection": collection,
        "rkey": rkey,
    }
    if record is not None:
        commit["record"] = {"$type": collection, **record}
        commit["cid"] = f"bafyrei{rkey}"
    return orjson.dumps({"did": did, "time_us": time_us, "kind": "commit", "commit": commit})
