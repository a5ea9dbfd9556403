"""A small asyncio SSE client on a raw socket, for many connections from one thread.

It speaks just enough HTTP/1.1 (a GET, the status and headers, a chunked body) to read
``/stream`` as a browser would, and can leave in every way a client leaves: a clean close,
an abort (RST) or mid-event. Every received byte goes through the secret watch.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode


@dataclass
class SseEvent:
    event: str
    data: str
    id: int | None
    at: float  # time.time() when its last byte was parsed


class SseError(Exception):
    pass


class SseConnection:
    """One ``GET /stream``; iterate :meth:`events` until it ends or you stop."""

    def __init__(self, host: str, port: int, *, query: dict[str, Any] | None = None,
                 last_id: int | None = None, rcvbuf: int | None = None,
                 watch: Any = None):
        self.host, self.port = host, port
        self.query = query or {}
        self.last_id = last_id
        self.rcvbuf = rcvbuf
        self.watch = watch
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""
        self.pings = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._buf = b""

    async def open(self, timeout: float = 10.0) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if self.rcvbuf is not None:  # before connect, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
                sock, (self.host, self.port)), timeout)
            self.reader, self.writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        path = "/stream" + (f"?{urlencode(self.query)}" if self.query else "")
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 "Accept: text/event-stream", "Cache-Control: no-cache"]
        if self.last_id is not None:
            lines.append(f"Last-Event-ID: {self.last_id}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        self._see(head)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                self.headers[name.strip().lower()] = value.strip()
        if self.status != 200:
            length = int(self.headers.get("content-length", "0"))
            self.body = await asyncio.wait_for(self.reader.readexactly(length), timeout)
            self._see(self.body)
        return self.status

    def _see(self, data: bytes) -> None:
        if self.watch is not None:
            self.watch.response(id(self), data, "/stream")

    async def _chunk(self) -> bytes:
        """The next piece of the chunked body (b"" at its end)."""
        assert self.reader is not None
        size_line = await self.reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b""
        data = await self.reader.readexactly(size + 2)
        self._see(data[:-2])
        return data[:-2]

    async def events(self):
        """Parsed events (comments are counted as pings); ends when the server ends."""
        fields: dict[str, str] = {}
        while True:
            while b"\n" not in self._buf:
                chunk = await self._chunk()
                if not chunk:
                    return
                self._buf += chunk
            line, self._buf = self._buf.split(b"\n", 1)
            text = line.rstrip(b"\r").decode("utf-8")
            if not text:
                if "data" in fields or "event" in fields:
                    raw = fields.get("id")
                    yield SseEvent(fields.get("event", "message"), fields.get("data", ""),
                                   int(raw) if raw else None, time.time())
                fields = {}
                continue
            if text.startswith(":"):
                self.pings += 1
                continue
            name, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data" and "data" in fields:
                fields["data"] += "\n" + value
            else:
                fields[name] = value

    async def read_raw(self, n: int = 65536) -> bytes:
        assert self.reader is not None
        return await self.reader.read(n)

    def close(self, how: str = "close") -> None:
        """``close`` (FIN), ``abort`` (RST: SO_LINGER 0)."""
        if self.writer is None:
            return
        if how == "abort":
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            self.writer.transport.abort()
        else:
            self.writer.close()
        self.writer = None

    async def wait_closed(self) -> None:
        await asyncio.sleep(0)
