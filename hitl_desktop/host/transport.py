"""The relay's WebSocket transport: asyncio on websockets' Sans-I/O ``ServerProtocol``.

Why not ``websockets.asyncio.server``: the relay wants to write a frame straight to
the socket when the peer keeps up (a task wake-up per frame is a large part of a
hop's cost), and to know when the socket's buffer fills (the slow-reader limit and
the stall watchdog). The asyncio connection offers neither through its public API.
The Sans-I/O layer is websockets' documented integration point ("Integrate the
Sans-I/O layer"): it parses and serialises (handshake, frames, pings, close, size
limits, UTF-8); this module moves bytes. One :class:`WsConn` per TCP connection:

* reading: the socket is read into one buffer the server's connections share
  (``asyncio.BufferedProtocol``: asyncio's plain ``Protocol`` reads with
  ``recv(256 KiB)``, a fresh 256 KiB bytes object per read — above glibc's mmap
  threshold, so an mmap, mremap and munmap per read, a large part of a hop's cost;
  issue 18); ``data_received`` takes complete masked text frames itself
  (:meth:`WsConn._text_frames`) and feeds everything else to the protocol; whole
  text/binary messages wait in a small inbox for the connection's handler task
  (:meth:`WsConn.recv`), except a text message that arrives while that task waits with
  nothing queued: :attr:`WsConn.inline` (the owner's) takes it at once, without waking
  the task, and hands back what must still be awaited in it, if anything (issue 18:
  the wake-up was ~5 % of the relay's loop per chat line);
* writing: :meth:`WsConn.write` serialises a text frame (:func:`text_frame`: the bytes
  websockets' ``send_text`` would write, built in one step; a fan-out builds them once
  for all its recipients and hands them to :meth:`WsConn.write_wire`) and hands it to
  the asyncio transport at once, except inside a batch (:meth:`WsServer.batch`, a
  connection's ``corking``): then a connection's frames go in one write when the batch
  ends (one ``send`` instead of one per frame), or when they reach the transport's
  high-water mark; :attr:`WsConn.writable` is False while the
  transport has paused writing (its buffer is over the high-water mark), and
  :meth:`WsConn.drain` waits for it to resume — the caller queues meanwhile
  (backpressure stays the caller's);
* keepalive: a ping every ``ping_interval``; no pong within ``ping_timeout`` fails the
  connection (1011) and cuts it off after ``close_timeout``;
* closing: :meth:`WsConn.close` sends the close frame and aborts the socket if the
  peer does not answer within ``close_timeout``; the server closes TCP after the
  closing handshake, as RFC 6455 asks.

Only public websockets API is used (``ServerProtocol``, ``Request``, ``Response``,
``Frame``, ``Opcode``, ``State``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias

from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

log = logging.getLogger(__name__)
_ws_log = logging.getLogger("websockets.server")

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_OPEN = State.OPEN
KEEPALIVE_FAILED = 1011  # RFC 6455 internal error: what websockets sends on a ping timeout
#: handshake bytes followed to find where the first frame starts (websockets refuses a
#: request this long anyway; past it the text-frame fast path stays off)
HANDSHAKE_TRACK_BYTES = 65_536
#: the most one socket read takes (below glibc's 128 KiB mmap threshold; see WsConn)
READ_BUFFER_BYTES = 65_536


#: what the owner's inline handler hands back: the rest of a message's handling, to be
#: awaited in the connection's handler task before the next message (None: done)
Rest: TypeAlias = Coroutine[Any, Any, None]
#: an inbox item: a whole message, or the rest of one taken inline
Item: TypeAlias = str | bytes | Rest

_SHORT_HEADERS = tuple(bytes((0x81, n)) for n in range(126))


def text_frame(data: bytes) -> bytes:
    """One server-to-client text frame carrying ``data`` (UTF-8): FIN, no mask, no
    extension — byte for byte what websockets' ``ServerProtocol.send_text`` writes on a
    connection without extensions (tests/unit/test_transport_frames.py), without its
    frame object, checks and per-call bookkeeping (a large part of a hop's cost)."""
    n = len(data)
    if n < 126:
        return _SHORT_HEADERS[n] + data
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


def _unmask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte ``key`` (RFC 6455 5.3), in a few C calls."""
    n = len(payload)
    if not n:
        return b""
    keys = key * ((n + 3) // 4)
    return (int.from_bytes(payload, "big")
            ^ int.from_bytes(keys[:n], "big")).to_bytes(n, "big")


def frame_tail(left: int, head: bytes, data: bytes) -> tuple[int, bytes]:
    """Where a WebSocket frame parser stands after ``data``, given where it stood before:
    (bytes still owed to the frame it is in, the bytes of a header it has begun). (0,
    b"") is a frame boundary with nothing buffered. Frame headers give each frame's
    length (RFC 6455 5.2); a parser that fails on a frame stops mattering (the
    connection is no longer open)."""
    n = len(data)
    if left >= n:
        return left - n, head
    pos = left
    if head:  # a header that began in an earlier read (left is 0 then)
        data = head + data
        n = len(data)
    while n - pos >= 2:
        b1 = data[pos + 1]
        length = b1 & 0x7F
        size = 2 + (4 if b1 & 0x80 else 0)
        if length == 126:
            size += 2
            if n - pos < size:
                break
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
        elif length == 127:
            size += 8
            if n - pos < size:
                break
            length = int.from_bytes(data[pos + 2:pos + 10], "big")
        elif n - pos < size:
            break
        end = pos + size + length
        if end > n:
            return end - n, b""
        pos = end
    return 0, data[pos:]


class Closed(Exception):
    """The connection is closed (or closing): nothing more can be read."""


class WsConn(asyncio.BufferedProtocol):
    """One TCP connection: the Sans-I/O protocol plus the asyncio transport."""

    def __init__(self, server: WsServer) -> None:
        self.server = server
        self.protocol = ServerProtocol(max_size=server.max_size, logger=_ws_log)
        self.transport: asyncio.Transport | None = None
        self.addr: str | None = None  # counted client IP; None: refused at accept
        self.remote_address: tuple[Any, ...] = ("?", 0)
        self.request: Request | None = None
        self.paused = False  # the transport's buffer is over its high-water mark
        self.handler: asyncio.Task[Any] | None = None
        self._inbox: collections.deque[Item] = collections.deque()
        # the owner's inline handler (see _deliver); set once the connection is the
        # owner's (after its hello), never while messages wait in the inbox
        self.inline: Callable[[str], Rest | None] | None = None
        self._reading_paused = False  # inbox over max_queue: the socket is not read
        self._reader: asyncio.Future[None] | None = None
        self.woken = False  # counted in server.busy: woken with data, not yet through it
        self._drain: asyncio.Future[None] | None = None
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._lost: asyncio.Future[None] = server.loop.create_future()
        self._open_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping: bytes | None = None  # payload of the ping awaiting its pong
        # where websockets' frame parser stands in the byte stream (see _track): bytes
        # still owed to the frame it is in (-1: not known, the fast path stays off), the
        # start of a header it holds; the handshake's bytes until it is open
        self._ws_left = 0
        self._ws_head = b""
        self._handshake: bytes | None = b""
        # frames written inside a batch, sent together when it ends (see write_wire)
        self._cork: list[bytes] = []
        self._cork_bytes = 0
        self._corked = False  # in server.corked (uncorked when the server's batch ends)
        self.corking = False  # this connection's own batch (its owner uncorks after it)

    # ------------------------------------------------------------------ for the relay

    @property
    def open(self) -> bool:
        return self.protocol.state is _OPEN

    @property
    def writable(self) -> bool:
        """Open, and the socket keeps up: a write now goes straight out."""
        t = self.transport
        return (not self.paused and self.protocol.state is _OPEN and t is not None
                and not t.is_closing())

    def write(self, text: str) -> bool:
        """Send one text frame now (or when the batch it is written in ends; nothing
        awaits). False when the connection is no longer open (the frame is dropped)."""
        return self.write_wire(text_frame(text.encode()))

    def write_wire(self, wire: bytes) -> bool:
        """:meth:`write` with the frame already built by :func:`text_frame`. The protocol's
        own output (pongs, close) is flushed as soon as it is made, after what was
        written before it; no extension is ever negotiated (the protocol is built without
        any), and the relay never fragments, so the frame is exactly what ``send_text``
        would have queued.

        Corked (issue 18): inside a batch (:meth:`WsServer.batch`, e.g. a group commit's
        fan-out, or :attr:`corking`, this connection's writer working through its queue)
        the frames collect and leave in one ``send`` when the batch ends, or as soon as
        they reach the transport's high-water mark (so the buffer limits work as before):
        the same bytes, in the same order. Outside one, a frame goes out at once (a
        frame held to the end of the loop's pass waits behind everything else that is
        ready: measured, that cost the hop more than the syscalls it saved)."""
        t = self.transport
        if self.protocol.state is not _OPEN or t is None:
            return False
        if not (self.corking or self.server.corking):
            t.write(wire)
            return True
        self._cork.append(wire)
        self._cork_bytes += len(wire)
        if not self._corked and self.server.corking:
            self._corked = True
            self.server.corked.append(self)
        if self._cork_bytes >= self.server.write_limit:
            self.uncork()
        return True

    def write_now(self, wire: bytes) -> bool:
        """:meth:`write_wire` if the connection is :attr:`writable`, else nothing: False
        (the caller queues the frame). Without the property's call (the relay's hot
        path: every recipient of every line)."""
        t = self.transport
        if self.paused or t is None or t.is_closing():
            return False
        return self.write_wire(wire)  # (which checks that the protocol is open)

    def uncork(self) -> None:
        """Hand the frames collected so far to the transport, in one write."""
        cork = self._cork
        if not cork:
            return
        data = cork[0] if len(cork) == 1 else b"".join(cork)
        cork.clear()
        self._cork_bytes = 0
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    async def drain(self) -> None:
        """Wait until the transport takes data again; raises :class:`Closed` if the
        connection is lost meanwhile."""
        while self.paused:
            if self._lost.done():
                raise Closed
            if self._drain is None:
                self._drain = self.server.loop.create_future()
            await self._drain
        if self._lost.done() or self.protocol.state is not _OPEN:
            raise Closed

    async def recv(self) -> str | bytes:
        """The next whole message (text as str, binary as bytes); :class:`Closed` once
        the connection closes and everything received before has been read. Only while
        :attr:`inline` is unset (else :meth:`next_item`)."""
        item = await self.next_item()
        if not isinstance(item, (str, bytes)):
            item.close()
            raise TypeError("recv() with an inline handler set: use next_item()")
        return item

    async def next_item(self) -> Item:
        """The next inbox item: a whole message, or the rest of one :attr:`inline` took
        (a coroutine the caller awaits before the next item); :class:`Closed` as
        :meth:`recv`."""
        while not self._inbox:
            if self.woken:  # through everything it was woken for
                self.settle()
            if self.protocol.state is not _OPEN or self._lost.done():
                raise Closed
            self._reader = self.server.loop.create_future()
            try:
                await self._reader
            except asyncio.CancelledError:
                if self.woken:  # woken, then cancelled before it could read
                    self.settle()
                raise
            finally:
                self._reader = None
        message = self._inbox.popleft()
        if self._reading_paused and len(self._inbox) <= self.server.max_queue // 4:
            self._reading_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return message

    def __aiter__(self) -> WsConn:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except Closed:
            raise StopAsyncIteration from None

    def discard_pending(self) -> None:
        """Drop what waits in the inbox (the handler is gone): a rest taken inline is
        closed, not left unawaited."""
        while self._inbox:
            item = self._inbox.popleft()
            if not isinstance(item, (str, bytes)):
                item.close()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (no-op unless open); the socket is aborted if the
        peer has not answered within ``close_timeout``."""
        if self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        self._arm_close_timer()

    @property
    def lost(self) -> asyncio.Future[None]:
        """Done once the TCP connection is gone."""
        return self._lost

    def abort(self) -> None:
        """Cut the TCP connection off now (no close frame: the peer sees 1006)."""
        if self.transport is not None:
            self.transport.abort()

    def queued(self) -> int:
        """Messages received and not yet read by the handler."""
        return len(self._inbox)

    def buffered(self) -> int:
        """Bytes written but not yet taken by the socket."""
        t = self.transport
        return self._cork_bytes + (0 if t is None else t.get_write_buffer_size())

    @property
    def close_code(self) -> int | None:
        return self.protocol.close_code

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = transport
        assert isinstance(t, asyncio.Transport)
        self.addr = self.server.on_accept(t)
        if self.addr is None:  # refused at the cap: already aborted, nothing started
            return
        self.transport = t
        t.set_write_buffer_limits(high=self.server.write_limit)  # as websockets does
        peer = t.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_address = peer
        self.server.conns.add(self)
        self._open_timer = self.server.loop.call_later(self.server.open_timeout,
                                                       self._open_timed_out)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the transport reads to: the server's one read buffer (shared: each read
        is taken out of it by :meth:`buffer_updated` before the loop does anything
        else)."""
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.server.read_buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        if self._handshake is not None:
            if protocol.state is State.CONNECTING:
                self._handshake += data
                if len(self._handshake) > HANDSHAKE_TRACK_BYTES:  # websockets refuses it
                    self._handshake, self._ws_left = None, -1
            else:  # answered: the request ended at its first blank line, and what came
                # after it in the same reads went to the frame parser
                hs, self._handshake = self._handshake, None
                end = hs.find(b"\r\n\r\n")
                if end < 0:
                    self._ws_left = -1
                else:
                    self._track(hs[end + 4:])
        if protocol.state is _OPEN:
            if not self._ws_left and not self._ws_head and not self._fragments:
                data = self._text_frames(data)
                if not data:
                    if protocol.state is not _OPEN:  # a text frame that was not UTF-8
                        self._wake_reader()
                    return
            self._track(data)
        protocol.receive_data(data)
        events = protocol.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        if protocol.close_expected():
            self._arm_close_timer()
        if protocol.state is not _OPEN:
            self._wake_reader()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        self._wake_reader()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()  # idempotent: the protocol is CLOSED from now on
        for timer in (self._open_timer, self._close_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self._open_timer = self._close_timer = self._ping_timer = None
        if not self._lost.done():
            self._lost.set_result(None)
        self._cork.clear()
        self._cork_bytes = 0
        self.paused = False
        self._wake_drain()
        self._wake_reader()
        if self.woken and (self.handler is None or self.handler.done()):
            self.settle()  # nobody will read on: do not hold the others' batch
        if self.addr is not None:
            self.server.conns.discard(self)
            self.server.on_release(self.addr)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_drain()

    # ------------------------------------------------------------------ internals

    def _flush(self) -> None:
        t = self.transport
        if t is None:
            return
        out = self.protocol.data_to_send()
        if not out:
            return
        self.uncork()  # the frames written before it go first
        for data in out:
            if data:
                t.write(data)
            else:  # the protocol's end of stream: the server closes TCP first
                t.close()

    def _wake_reader(self) -> None:
        r = self._reader
        if r is not None and not r.done():
            r.set_result(None)
            if not self.woken:
                self.woken = True
                self.server.busy += 1

    def settle(self) -> None:
        self.woken = False
        server = self.server
        server.busy -= 1
        if server.busy == 0 and server.on_settled is not None:
            server.on_settled()

    def _wake_drain(self) -> None:
        d, self._drain = self._drain, None
        if d is not None and not d.done():
            d.set_result(None)

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self._lost.done():
            self._close_timer = self.server.loop.call_later(self.server.close_timeout,
                                                            self.abort)

    def _open_timed_out(self) -> None:
        self._open_timer = None
        if self.protocol.state is State.CONNECTING:
            self.abort()

    def _on_request(self, request: Request) -> None:
        server = self.server
        self.request = request
        try:
            response = server.process_request(self, request)
        except Exception:
            log.exception("process_request failed")
            response = self.protocol.reject(500, "Failed to open a WebSocket connection.\n")
        if response is None:
            response = self.protocol.accept(request)
        if server.server_header:
            response.headers["Server"] = server.server_header
        self.protocol.send_response(response)
        self._flush()
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        if self.protocol.state is not _OPEN:  # answered over plain HTTP: done
            if self.transport is not None:
                self.transport.close()
            return
        self._schedule_ping()
        self.handler = server.start_handler(self)

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if frame.fin:
                self._deliver(bytes(frame.data), opcode is _TEXT)
            else:
                self._fragments = [bytes(frame.data)]
                self._fragment_text = opcode is _TEXT
        elif opcode is _CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                self._deliver(data, self._fragment_text)
        elif opcode is _PONG and self._ping is not None and frame.data == self._ping:
            self._ping = None
        # ping: the protocol has answered it; close: handled by the state checks

    def _text_frames(self, data: bytes) -> bytes:
        """Deliver the complete, unfragmented, masked text frames at the start of
        ``data`` (nearly all a client sends) without websockets' parser; the rest, from
        the first other frame on (control, binary, fragmented, 64-bit length, over
        max_size, incomplete), is websockets' to parse. Called only while websockets'
        parser stands at a frame boundary with nothing buffered (see :meth:`_track`),
        so the two never disagree about where a frame starts (issue 18: the parser was
        ~9 % of the loop's samples at S = 1,000).

        Such a frame is exactly what websockets would deliver as a TEXT ``Frame`` with
        ``fin``: first byte 0x81 (FIN, no RSV bit, opcode text), the mask bit set (a
        client must mask), a 7- or 16-bit length (16-bit only when >= 126, as websockets
        would not refuse a longer encoding either but it is rare: left to it), at most
        ``max_size`` bytes (websockets fails larger ones with 1009), unmasked with its
        key. UTF-8 is checked by :meth:`_deliver`, as for websockets' frames."""
        n = len(data)
        pos = 0
        max_size = self.server.max_size
        while n - pos >= 6 and data[pos] == 0x81:
            b1 = data[pos + 1]
            if not b1 & 0x80:
                break
            length = b1 & 0x7F
            if length < 126:
                start = pos + 6
            elif length == 126 and n - pos >= 8:
                length = int.from_bytes(data[pos + 2:pos + 4], "big")
                if length < 126:
                    break
                start = pos + 8
            else:
                break
            end = start + length
            if end > n or length > max_size:
                break
            self._deliver(_unmask(data[start:end], data[start - 4:start]), True)
            pos = end
            if self.protocol.state is not _OPEN:  # not UTF-8: failed with 1007
                return data[pos:]
        return data[pos:] if pos else data

    def _track(self, data: bytes) -> None:
        """Follow websockets' parser through ``data`` it is about to be fed (see
        :func:`frame_tail`): only at a frame boundary with nothing buffered may
        :meth:`_text_frames` take frames past it."""
        if self._ws_left >= 0:
            self._ws_left, self._ws_head = frame_tail(self._ws_left, self._ws_head, data)

    def _deliver(self, data: bytes, text: bool) -> None:
        if text:
            try:
                message = data.decode()
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8")
                self._flush()
                self._arm_close_timer()
                return
            inline, r = self.inline, self._reader
            if inline is not None and r is not None and not r.done() and not self._inbox:
                # the handler waits for this very message with nothing before it: take
                # it here (same order, no task wake-up); only what must be awaited
                # waits for the handler, in the inbox, before any later message
                try:
                    rest = inline(message)
                except Exception:  # the owner answers its own failures; never the protocol's
                    log.exception("inline message handler failed")
                    return
                if rest is None:
                    return
                self._inbox.append(rest)
            else:
                self._inbox.append(message)
        else:
            self._inbox.append(data)
        if (not self._reading_paused and len(self._inbox) >= self.server.max_queue
                and self.transport is not None):
            # the handler is behind (a slow operation): stop reading the socket, so a
            # flood costs its sender TCP backpressure, not host memory (as websockets'
            # own max_queue does)
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def _schedule_ping(self) -> None:
        interval = self.server.ping_interval
        if interval is not None:
            self._ping_timer = self.server.loop.call_later(interval, self._keepalive)

    def _keepalive(self) -> None:
        """Every ``ping_interval``: ping, or fail the connection when the last ping has
        gone unanswered for ``ping_timeout``."""
        self._ping_timer = None
        if self.protocol.state is not _OPEN:
            return
        if self._ping is not None:  # unanswered since the last tick
            return
        self._ping = payload = os.urandom(4)
        self.protocol.send_ping(payload)
        self._flush()
        loop = self.server.loop
        self._ping_timer = loop.call_later(self.server.ping_timeout,
                                           self._ping_deadline, payload)

    def _ping_deadline(self, payload: bytes) -> None:
        self._ping_timer = None
        if self._ping != payload:  # answered in time
            self._schedule_ping_after(payload)
            return
        if self.protocol.state is _OPEN:
            _ws_log.info("keepalive ping timeout: failing the connection")
            self.protocol.fail(KEEPALIVE_FAILED, "keepalive ping timeout")
            self._flush()
        self._arm_close_timer()
        self._wake_reader()

    def _schedule_ping_after(self, payload: bytes) -> None:
        """The pong came: next ping ``ping_interval`` after the last one was sent."""
        interval = self.server.ping_interval
        if interval is None:
            return
        wait = max(0.0, interval - (self.server.ping_timeout or 0.0))
        self._ping_timer = self.server.loop.call_later(wait, self._keepalive)


ProcessRequest = Callable[[WsConn, Request], "Response | None"]


class _Batch:
    __slots__ = ("server",)

    def __init__(self, server: WsServer) -> None:
        self.server = server

    def __enter__(self) -> None:
        self.server.corking += 1

    def __exit__(self, *exc: object) -> None:
        server = self.server
        server.corking -= 1
        if not server.corking:
            server.uncork()


class WsServer:
    """A listening socket serving :class:`WsConn`; ``handler(conn)`` runs as a task per
    open WebSocket (started by ``spawn``, which the owner supervises)."""

    def __init__(
        self,
        handler: Callable[[WsConn], Awaitable[None]],
        *,
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[Any]],
        on_accept: Callable[[asyncio.Transport], str | None],
        on_release: Callable[[str], None],
        process_request: ProcessRequest,
        max_size: int,
        ping_interval: float | None,
        ping_timeout: float,
        open_timeout: float,
        close_timeout: float,
        server_header: str | None,
        write_limit: int = 2**15,
        max_queue: int = 64,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.handler = handler
        self.spawn = spawn
        self.on_accept = on_accept
        self.on_release = on_release
        self.process_request = process_request
        self.max_size = max_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.server_header = server_header
        self.write_limit = write_limit  # the transport pauses writing above this
        self.max_queue = max_queue  # messages read ahead of the handler before pausing
        self.conns: set[WsConn] = set()
        self.server: asyncio.Server | None = None
        # handlers woken with data that have not yet worked through it; when the last one
        # has (all woken in one loop tick), ``on_settled`` runs: the relay's group commit
        # then commits in the same tick instead of the next
        self.busy = 0
        self.on_settled: Callable[[], object] | None = None
        # every connection's socket reads land here first (see WsConn.get_buffer)
        self.read_buffer = memoryview(bytearray(READ_BUFFER_BYTES))
        self.corked: list[WsConn] = []  # connections with frames collected in a batch
        self.corking = 0  # batches open (see batch())

    def batch(self) -> _Batch:
        """``with server.batch():`` — the frames written to each connection inside the
        block leave in one write per connection when it ends (issue 18: a group
        commit's fan-out gives an agent the chat line and the co-pilot's frames of the
        tick at once; each was a ``send`` of its own)."""
        return _Batch(self)

    def uncork(self) -> None:
        """Each connection's collected frames leave in one write."""
        corked, self.corked = self.corked, []
        for conn in corked:
            conn._corked = False
            conn.uncork()

    async def listen(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None,
                     backlog: int) -> None:
        self.server = await self.loop.create_server(
            lambda: WsConn(self), host, port, ssl=ssl_context, backlog=backlog)

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self.server.sockets) if self.server is not None else ()

    def start_handler(self, conn: WsConn) -> asyncio.Task[Any]:
        return self.spawn(self._run(conn), "connection")

    async def _run(self, conn: WsConn) -> None:
        try:
            await self.handler(conn)
        finally:
            if conn.woken:  # it stopped reading (e.g. a refused hello): not busy any more
                conn.settle()
            conn.close(1000, "")  # the handler is done with it: close normally

    async def aclose(self, code: int, reason: str) -> None:
        """Stop listening, close every connection with ``code`` and wait (each at most
        ``close_timeout``) until they are gone."""
        if self.server is not None:
            self.server.close()
        conns = list(self.conns)
        for conn in conns:
            if conn.protocol.state is State.CONNECTING:
                conn.abort()
            else:
                conn.close(code, reason)
        if conns:
            await asyncio.wait({c.lost for c in conns}, timeout=self.close_timeout + 1.0)
        for conn in conns:
            conn.abort()
        if self.server is not None:
            await self.server.wait_closed()
