"""A TCP proxy in front of a real server that can refuse, blackhole or delay.

Used to inject the faults a health probe exists for, without touching the real server,
and to count what a check costs on the wire: `from_server` (bytes the server sent) and
`round_trips` (each time the client speaks after the server did, however the bytes are
split into segments).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum


class Mode(enum.Enum):
    FORWARD = "forward"
    REFUSE = "refuse"  # close every new connection at once (like a dead port behind a LB)
    BLACKHOLE = "blackhole"  # accept and never answer
    DELAY = "delay"  # forward, but hold each chunk from the server for `delay` seconds


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = Mode.FORWARD
        self.delay = 0.0
        self.port = 0
        self.from_server = 0
        self.round_trips = 0
        self._client_spoke_last = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def set(self, mode: Mode, delay: float = 0.0) -> None:
        """Switch mode; existing connections are cut so clients see the new behaviour."""
        self.mode, self.delay = mode, delay
        self.drop_connections()

    def reset_counts(self) -> None:
        self.from_server = self.round_trips = 0
        self._client_spoke_last = False

    def drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self.drop_connections()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
            self._server = None
            # Closed transports finish on the next loop iterations; let them before the
            # test's loop is closed.
            for _ in range(3):
                await asyncio.sleep(0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self.mode is Mode.REFUSE:
                return
            if self.mode is Mode.BLACKHOLE:
                await reader.read()  # hold the connection open until the client gives up
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            await asyncio.gather(
                self._pipe(reader, up_writer, 0.0, from_client=True),
                self._pipe(
                    up_reader,
                    writer,
                    self.delay if self.mode is Mode.DELAY else 0.0,
                    from_client=False,
                ),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # Both ends, always: a pipe task cancelled before it started never closes its
            # writer, and the upstream socket would leak (a ResourceWarning at exit).
            for end in (writer, up_writer):
                if end is not None:
                    end.close()
                    self._writers.discard(end)
            self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delay: float,
        from_client: bool,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if from_client and not self._client_spoke_last:
                    self.round_trips += 1
                if not from_client:
                    self.from_server += len(data)
                self._client_spoke_last = from_client
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
