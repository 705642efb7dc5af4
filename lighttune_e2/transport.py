"""E2 without a RIC platform: E2AP over SCTP, or over TCP with our own framing.

Local mode lets the xApp terminate E2 itself (no E2 Termination, no RMR). The transport is
chosen by :func:`choose_transport` (``--transport sctp|tcp|auto``):

- **SCTP** (the O-RAN E2 transport): port :data:`E2_SCTP_PORT` (36421), one E2AP PDU per SCTP
  message, payload protocol id :data:`E2AP_PPID` (70) on send. The PPID of received messages
  is not checked, so peers that send 0 are accepted. Used by ``auto`` when the kernel has
  SCTP: ``socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)`` fails with ``EPROTONOSUPPORT`` where
  it has not (no ``sctp`` module).
- **TCP** (fallback): a stream of frames, each a 4-byte big-endian unsigned length ``L``
  followed by ``L`` octets holding exactly one E2AP PDU, ``1 <= L <= max_frame``
  (:data:`DEFAULT_MAX_FRAME` = 1 MiB). The length is checked before any payload buffer is
  allocated; a bad length closes the connection (the stream cannot be resynchronised).

The asyncio adapters :class:`E2Server` (RIC side, one :class:`RicEndpoint` per connected
node) and :class:`E2Client` (node side, reconnects and redoes E2 Setup after a loss) only
move bytes and time into the sans-I/O endpoints of :mod:`lighttune_e2.endpoints` and
hand their events to a callback.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import os
import socket
import struct
from typing import Any, Callable, Literal

from lighttune_e2.endpoints import E2NodeEndpoint, Event, Output, RicEndpoint, _Endpoint
from lighttune_e2.errors import E2DecodeError

log = logging.getLogger(__name__)

E2_SCTP_PORT = 36421
"""O-RAN E2 SCTP port (OSC's E2 Termination listens on 36422)."""
E2AP_PPID = 70
"""SCTP payload protocol identifier of E2AP."""
DEFAULT_MAX_FRAME = 1 << 20
"""Largest accepted E2AP PDU, octets."""
IPPROTO_SCTP = getattr(socket, "IPPROTO_SCTP", 132)
_SCTP_SNDRCV = 1  # cmsg type of struct sctp_sndrcvinfo at level IPPROTO_SCTP (Linux)
_FRAME_HEADER = struct.Struct(">I")

TransportName = Literal["sctp", "tcp"]


class FramingError(E2DecodeError):
    """A TCP frame header announced an impossible length; the connection must close."""


def sctp_available() -> bool:
    """Whether this kernel can open SCTP sockets."""
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP)
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EAFNOSUPPORT, errno.EPERM, errno.EACCES):
            return False
        raise
    s.close()
    return True


def choose_transport(mode: str = "auto") -> TransportName:
    """Resolve ``--transport``: ``auto`` gives SCTP where the kernel has it, else TCP.

    Raises:
        ValueError: unknown mode, or ``sctp`` requested on a kernel without SCTP.
    """
    if mode not in ("auto", "sctp", "tcp"):
        raise ValueError(f"transport must be sctp, tcp or auto, got {mode!r}")
    if mode == "tcp":
        return "tcp"
    have = sctp_available()
    if mode == "sctp" and not have:
        raise ValueError("transport 'sctp' requested but this kernel has no SCTP (EPROTONOSUPPORT); use tcp or auto")
    return "sctp" if have else "tcp"


def encode_frame(pdu: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """One TCP frame: 4-byte big-endian length, then the PDU (1 .. max_frame octets)."""
    if not 1 <= len(pdu) <= max_frame:
        raise ValueError(f"E2AP PDU of {len(pdu)} octets does not fit a frame (1 .. {max_frame})")
    return _FRAME_HEADER.pack(len(pdu)) + pdu


class FrameDecoder:
    """Sans-I/O splitter of a TCP byte stream into E2AP PDUs.

    ``feed(data)`` returns the complete PDUs found so far; a partial frame is kept. A header
    with length 0 or above ``max_frame`` raises :class:`FramingError` before allocating.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError(f"max_frame must be >= 1, got {max_frame}")
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= _FRAME_HEADER.size:
            (length,) = _FRAME_HEADER.unpack_from(self._buf)
            if not 1 <= length <= self.max_frame:
                raise FramingError(f"TCP frame length {length} outside 1 .. {self.max_frame}")
            end = _FRAME_HEADER.size + length
            if len(self._buf) < end:
                break
            out.append(bytes(self._buf[_FRAME_HEADER.size:end]))
            del self._buf[:end]
        return out


# --------------------------------------------------------------------------- links


class _Link:
    """One connected E2 transport association carrying whole PDUs."""

    async def recv(self) -> list[bytes]:
        """Next PDUs; an empty list means the peer closed."""
        raise ConnectionError("link has no transport")

    async def send(self, pdus: list[bytes]) -> None:
        raise ConnectionError("link has no transport")

    def close(self) -> None:
        return None


class _TcpLink(_Link):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_frame: int) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder(max_frame)
        self.max_frame = max_frame

    async def recv(self) -> list[bytes]:
        while True:
            data = await self.reader.read(65536)
            if not data:
                return []
            pdus = self.decoder.feed(data)
            if pdus:
                return pdus

    async def send(self, pdus: list[bytes]) -> None:
        if pdus:
            self.writer.write(b"".join(encode_frame(p, self.max_frame) for p in pdus))
            await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


class _SctpLink(_Link):
    """SCTP one-to-one socket: each recv returns one message (PDUs up to ``max_frame``)."""

    def __init__(self, sock: socket.socket, max_frame: int) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.max_frame = max_frame
        # struct sctp_sndrcvinfo: stream, ssn, flags, (pad), ppid (network order), context,
        # timetolive, tsn, cumtsn, assoc_id
        self._sndrcv = struct.pack("=HHHxxIIIIIi", 0, 0, 0, socket.htonl(E2AP_PPID), 0, 0, 0, 0, 0)

    async def recv(self) -> list[bytes]:
        data = await asyncio.get_running_loop().sock_recv(self.sock, self.max_frame)
        return [data] if data else []

    async def send(self, pdus: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        for pdu in pdus:
            try:
                self.sock.sendmsg([pdu], [(IPPROTO_SCTP, _SCTP_SNDRCV, self._sndrcv)])
            except BlockingIOError:
                await loop.sock_sendall(self.sock, pdu)

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- connection


EventCallback = Callable[["E2Connection", Event], Any]


class E2Connection:
    """One live E2 link: a sans-I/O endpoint, its transport and the event callback.

    Use :meth:`apply` to send the output of an endpoint API call, e.g.
    ``rid, out = conn.endpoint.subscribe(...); await conn.apply(out)``.
    """

    def __init__(self, endpoint: _Endpoint, link: _Link, on_event: EventCallback, tick_s: float) -> None:
        self.endpoint = endpoint
        self.link = link
        self.on_event = on_event
        self.tick_s = tick_s
        self.closed = asyncio.Event()

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    async def apply(self, output: Output) -> None:
        """Send the PDUs of an endpoint output and deliver its events."""
        pdus, events = output
        await self.link.send(pdus)
        for ev in events:
            result = self.on_event(self, ev)
            if inspect.isawaitable(result):
                await result

    async def serve(self, first: Output | None = None) -> None:
        """Run the receive loop and the timer until the peer or :meth:`close` ends the link."""
        timer = asyncio.create_task(self._timer_loop())
        try:
            if first is not None:
                await self.apply(first)
            while True:
                pdus = await self.link.recv()
                if not pdus:
                    break
                for pdu in pdus:
                    await self.apply(self.endpoint.receive_bytes(pdu, self.now()))
        except FramingError as exc:
            log.warning("closing E2 link: %s", exc)
            self.endpoint.stats.decode_errors += 1
        except (ConnectionError, OSError) as exc:
            log.info("E2 link lost: %s", exc)
        finally:
            timer.cancel()
            self.link.close()
            self.closed.set()

    async def _timer_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            await self.apply(self.endpoint.timer(self.now()))

    def close(self) -> None:
        self.link.close()


async def _call(cb: Callable[..., Any] | None, *args: Any) -> None:
    if cb is None:
        return
    result = cb(*args)
    if inspect.isawaitable(result):
        await result


class E2Server:
    """RIC side: accepts E2 nodes, one :class:`RicEndpoint` (from ``endpoint_factory``) each.

    Args:
        endpoint_factory: makes the endpoint of a new connection.
        on_event: ``on_event(connection, event)``, sync or async.
        host, port: where to listen (port 0 picks a free one; see :attr:`port`).
        transport: ``sctp``, ``tcp`` or ``auto``.
        on_connect / on_disconnect: optional ``cb(connection)`` hooks.
    """

    def __init__(
        self,
        endpoint_factory: Callable[[], RicEndpoint],
        on_event: EventCallback,
        host: str = "127.0.0.1",
        port: int = E2_SCTP_PORT,
        transport: str = "auto",
        max_frame: int = DEFAULT_MAX_FRAME,
        tick_s: float = 0.1,
        on_connect: Callable[[E2Connection], Any] | None = None,
        on_disconnect: Callable[[E2Connection], Any] | None = None,
    ) -> None:
        self.endpoint_factory = endpoint_factory
        self.on_event = on_event
        self.host, self.port = host, port
        self.transport: TransportName = choose_transport(transport)
        self.max_frame, self.tick_s = max_frame, tick_s
        self.on_connect, self.on_disconnect = on_connect, on_disconnect
        self.connections: set[E2Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sctp_sock: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening; :attr:`port` then holds the bound port."""
        if self.transport == "tcp":
            self._server = await asyncio.start_server(self._on_tcp, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(16)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self._sctp_sock = sock
            self._accept_task = asyncio.create_task(self._accept_sctp(sock))

    async def _accept_sctp(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn_sock, _ = await loop.sock_accept(sock)
            asyncio.create_task(self._run(_SctpLink(conn_sock, self.max_frame)))

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._run(_TcpLink(reader, writer, self.max_frame))

    async def _run(self, link: _Link) -> None:
        conn = E2Connection(self.endpoint_factory(), link, self.on_event, self.tick_s)
        self.connections.add(conn)
        try:
            await _call(self.on_connect, conn)
            await conn.serve()
        finally:
            self.connections.discard(conn)
            await _call(self.on_disconnect, conn)

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._accept_task is not None:
            self._accept_task.cancel()
        if self._sctp_sock is not None:
            self._sctp_sock.close()
        for conn in list(self.connections):
            conn.close()


class E2Client:
    """Node side: connects to the RIC, runs E2 Setup, serves, reconnects after a loss.

    Every (re)connection gets a fresh endpoint from ``endpoint_factory`` and starts with
    E2 Setup (subscriptions do not survive a lost association, as in E2AP).

    Args:
        reconnect_delay_s: wait before reconnecting, s (doubles per failure up to 8x).
        max_connects: stop after this many connections (None: until :meth:`stop`).
    """

    def __init__(
        self,
        endpoint_factory: Callable[[], E2NodeEndpoint],
        on_event: EventCallback,
        host: str = "127.0.0.1",
        port: int = E2_SCTP_PORT,
        transport: str = "auto",
        max_frame: int = DEFAULT_MAX_FRAME,
        tick_s: float = 0.1,
        reconnect_delay_s: float = 1.0,
        max_connects: int | None = None,
        on_connect: Callable[[E2Connection], Any] | None = None,
    ) -> None:
        if reconnect_delay_s <= 0:
            raise ValueError(f"reconnect_delay_s must be > 0, got {reconnect_delay_s}")
        self.endpoint_factory = endpoint_factory
        self.on_event = on_event
        self.host, self.port = host, port
        self.transport: TransportName = choose_transport(transport)
        self.max_frame, self.tick_s = max_frame, tick_s
        self.reconnect_delay_s = reconnect_delay_s
        self.max_connects = max_connects
        self.on_connect = on_connect
        self.connection: E2Connection | None = None
        self.connects = 0
        self._stopping = False

    async def _open(self) -> _Link:
        if self.transport == "tcp":
            reader, writer = await asyncio.open_connection(self.host, self.port)
            return _TcpLink(reader, writer, self.max_frame)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        return _SctpLink(sock, self.max_frame)

    async def run(self) -> None:
        """Connect / serve / reconnect until :meth:`stop` or ``max_connects`` is reached."""
        failures = 0
        while not self._stopping and (self.max_connects is None or self.connects < self.max_connects):
            try:
                link = await self._open()
            except OSError as exc:
                failures += 1
                delay = self.reconnect_delay_s * min(2 ** (failures - 1), 8)
                reason = os.strerror(exc.errno).lower() if exc.errno else str(exc) or type(exc).__name__
                # the first failure of a series, and every 10th, at WARNING: visible at the
                # default log level at once (e.g. "connection refused": nothing listens there)
                level = logging.WARNING if failures % 10 == 1 else logging.INFO
                log.log(level, "E2 connect to %s:%d failed: %s; retrying in %.1f s", self.host, self.port, reason,
                        delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.connects += 1
            endpoint = self.endpoint_factory()
            conn = E2Connection(endpoint, link, self.on_event, self.tick_s)
            self.connection = conn
            await _call(self.on_connect, conn)
            await conn.serve(first=endpoint.start_setup(conn.now()))
            self.connection = None
            if not self._stopping:
                await asyncio.sleep(self.reconnect_delay_s)

    def stop(self) -> None:
        """End :meth:`run` after closing the current connection."""
        self._stopping = True
        if self.connection is not None:
            self.connection.close()
