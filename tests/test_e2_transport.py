"""E2 transport: TCP framing, transport choice, and a node and a RIC over loopback TCP."""

from __future__ import annotations

import asyncio

import pytest

from lighttune_e2 import e2ap as E
from lighttune_e2 import endpoints as ep
from lighttune_e2 import transport as D

FUNC = E.RanFunction(200, b"def", 1, "1.3.6.1.4.1.65535.200.1.1")
NODE_ID = E.GlobalE2NodeId(b"\x00\xf1\x10", 7, 22)


def test_frames_split_and_joined_arbitrarily_are_reassembled() -> None:
    pdus = [b"a", b"bc" * 100, bytes(range(256))]
    stream = b"".join(D.encode_frame(p) for p in pdus)
    dec = D.FrameDecoder()
    got: list[bytes] = []
    for i in range(0, len(stream), 7):
        got += dec.feed(stream[i:i + 7])
    assert got == pdus


def test_oversize_or_empty_frame_is_rejected_before_allocation() -> None:
    dec = D.FrameDecoder(max_frame=1000)
    with pytest.raises(D.FramingError, match="4294967295"):
        dec.feed(b"\xff\xff\xff\xff")
    with pytest.raises(D.FramingError):
        D.FrameDecoder().feed(b"\x00\x00\x00\x00")
    with pytest.raises(ValueError):
        D.encode_frame(b"x" * 1001, max_frame=1000)


def test_transport_choice() -> None:
    assert D.choose_transport("tcp") == "tcp"
    assert D.choose_transport("auto") == ("sctp" if D.sctp_available() else "tcp")
    with pytest.raises(ValueError, match="transport"):
        D.choose_transport("udp")
    if not D.sctp_available():
        with pytest.raises(ValueError, match="SCTP"):
            D.choose_transport("sctp")


async def _wait_for(pred, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def test_node_and_ric_over_loopback_tcp_with_reconnect() -> None:
    async def scenario() -> None:
        ric_events: list[ep.Event] = []
        node_events: list[ep.Event] = []

        async def on_ric(conn: D.E2Connection, ev: ep.Event) -> None:
            ric_events.append(ev)
            if isinstance(ev, ep.E2SetupReceived):
                _, out = conn.endpoint.subscribe(200, b"t", (E.RicAction(0),), conn.now())
                await conn.apply(out)

        async def on_node(conn: D.E2Connection, ev: ep.Event) -> None:
            node_events.append(ev)
            if isinstance(ev, ep.SubscriptionStarted):
                for k in range(5):
                    await conn.apply(conn.endpoint.send_indication(ev.request.request_id, 0, b"h", b"m%d" % k))

        server = D.E2Server(lambda: ep.RicEndpoint(), on_ric, port=0, transport="tcp")
        await server.start()
        client = D.E2Client(lambda: ep.E2NodeEndpoint(NODE_ID, (FUNC,)), on_node, port=server.port,
                            transport="tcp", reconnect_delay_s=0.05, max_connects=2)
        task = asyncio.create_task(client.run())

        def indications() -> list[ep.IndicationReceived]:
            return [e for e in ric_events if isinstance(e, ep.IndicationReceived)]

        await _wait_for(lambda: len(indications()) == 5)
        assert [e.indication.message for e in indications()] == [b"m%d" % k for k in range(5)]
        # drop the association from the RIC side: the node reconnects and sets up again
        for conn in list(server.connections):
            conn.close()
        await _wait_for(lambda: len(indications()) == 10)
        assert client.connects == 2
        assert sum(isinstance(e, ep.SetupCompleted) for e in node_events) == 2
        assert [e.indication.sn for e in indications()[5:]] == [0, 1, 2, 3, 4]
        client.stop()
        await asyncio.wait_for(task, 20)
        await server.close()

    asyncio.run(scenario())


def test_garbage_from_a_peer_is_counted_and_the_server_keeps_serving() -> None:
    async def scenario() -> None:
        ric_events: list[ep.Event] = []
        server = D.E2Server(lambda: ep.RicEndpoint(), lambda c, e: ric_events.append(e), port=0, transport="tcp")
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(D.encode_frame(b"\xde\xad\xbe\xef"))
        await writer.drain()
        await _wait_for(lambda: any(isinstance(e, ep.ProtocolErrorEvent) for e in ric_events))
        node = ep.E2NodeEndpoint(NODE_ID, (FUNC,))
        writer.write(D.encode_frame(node.start_setup(0.0)[0][0]))
        await writer.drain()
        await _wait_for(lambda: any(isinstance(e, ep.E2SetupReceived) for e in ric_events))
        writer.write(b"\xff\xff\xff\xff")  # oversize frame header: the server drops the link
        await writer.drain()
        await asyncio.wait_for(reader.read(), 20)  # returns only at EOF: the server closed the link
        await _wait_for(lambda: not server.connections)
        writer.close()
        await server.close()

    asyncio.run(scenario())
