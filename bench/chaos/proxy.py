"""A TCP fault proxy (asyncio, in a thread of its own): what Toxiproxy would do, in-tree.

Between the app and PostgreSQL, Redis or S3. Normally it passes bytes both ways. The chaos
driver sets, from its own thread:

- `latency_s`: every chunk the client sends waits this long before it goes upstream (so
  every query or command answers that much later);
- `resetting`: open connections are reset (RST, not FIN) and new ones are reset on
  arrival, as when a database host or a NAT on the way drops its state;
- `refuse_writes`: (HTTP upstreams, S3) a request starting `PUT` or `POST` is answered
  `503 SlowDown`, as S3 does when it throttles, and never reaches the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading

_SLOW_DOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
    + f"Content-Length: {len(_SLOW_DOWN_BODY)}\r\n\r\n".encode()
    + _SLOW_DOWN_BODY
)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, *, listen_port: int, upstream_host: str, upstream_port: int) -> None:
        self.listen_port = listen_port
        self.upstream = (upstream_host, upstream_port)
        self.latency_s = 0.0
        self.resetting = False
        self.refuse_writes = False
        self.resets = 0
        self.refused = 0
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fault-proxy")

    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError(f"the fault proxy on :{self.listen_port} did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def heal(self) -> None:
        self.latency_s, self.resetting, self.refuse_writes = 0.0, False, False

    def reset_all(self) -> None:
        """Start resetting: every open connection now, every new one on arrival."""
        self.resetting = True
        self._loop.call_soon_threadsafe(self._reset_open)

    def _reset_open(self) -> None:
        for writer in list(self._open):
            self.resets += 1
            _reset(writer)
        self._open.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.listen_port, backlog=1024)
        )
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.resetting:
            self.resets += 1
            _reset(client_w)
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(client_w)
            return
        self._open.update((client_w, up_w))
        await asyncio.gather(
            self._pump(client_r, up_w, client_w, upstream=True),
            self._pump(up_r, client_w, up_w, upstream=False),
        )
        self._open.difference_update((client_w, up_w))

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if upstream and self.refuse_writes and chunk.startswith((b"PUT ", b"POST ")):
                    self.refused += 1
                    other.write(SLOW_DOWN)
                    await other.drain()
                    break
                if upstream and self.latency_s:
                    await asyncio.sleep(self.latency_s)
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, other):
                if not w.is_closing():
                    w.close()
