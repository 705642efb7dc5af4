"""Protocol fuzz: 10,000+ mutated and random PDUs into RicEndpoint.receive_bytes.

Each input must give only typed errors (returned as ProtocolErrorEvent, never raised), be
counted, and leave the endpoint serving a good node afterwards. Seeded: same inputs every run.
"""

from __future__ import annotations

import random

from lighttune_e2 import e2ap as E
from lighttune_e2 import endpoints as ep
from lighttune_e2.errors import E2Error

FUNC = E.RanFunction(200, b"def", 1, "1.3.6.1.4.1.65535.200.1.1")
NODE_ID = E.GlobalE2NodeId(b"\x00\xf1\x10", 7, 22)
N_INPUTS = 10_000


def mutate(rng: random.Random, pdu: bytes) -> bytes:
    b = bytearray(pdu)
    op = rng.randrange(5)
    if op == 0:  # bit flips
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1:  # truncation
        del b[rng.randrange(len(b)):]
    elif op == 2:  # length octet changes (APER lengths are single octets for short values)
        i = rng.randrange(len(b))
        b[i] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, (b[i] + rng.randint(-3, 3)) % 256])
    elif op == 3:  # insert / delete a run of octets
        i = rng.randrange(len(b) + 1)
        if rng.random() < 0.5:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            del b[i:i + rng.randint(1, 16)]
    else:  # random octets
        b = bytearray(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    return bytes(b)


def test_ric_endpoint_survives_mutated_and_random_pdus() -> None:
    rng = random.Random(20240605)
    node = ep.E2NodeEndpoint(NODE_ID, (FUNC,))
    ric = ep.RicEndpoint()
    setup = node.start_setup(0.0)[0][0]
    for pdu in ric.receive_bytes(setup, 0.0)[0]:
        node.receive_bytes(pdu, 0.0)
    rid, out = ric.subscribe(200, b"t", (E.RicAction(0),), 0.0)
    for pdu in out[0]:
        for ans in node.receive_bytes(pdu, 0.0)[0]:
            ric.receive_bytes(ans, 0.0)
    assert rid in ric.subscriptions
    req = E.RicRequestId(ep.DEFAULT_RIC_REQUESTOR_ID, 0)
    seeds = [
        setup,
        node.send_indication(rid, 0, b"hdr", bytes(range(200)))[0][0],
        E.encode(E.RicSubscriptionResponse(req, 200, (0,))),
        E.encode(E.RicSubscriptionDeleteResponse(req, 200)),
        E.encode(E.RicControlAcknowledge(req, 200, None, b"o")),
        E.encode(E.RicControlFailure(req, 200, E.Cause("misc", "unspecified"))),
        E.encode(E.ErrorIndication(3, req, 200, E.Cause("protocol", "semantic-error"))),
        E.encode(E.ResetRequest(1, E.Cause("misc", "unspecified"))),
        E.encode(E.ResetResponse(1)),
    ]
    before = ric.stats.pdus_received
    errors = 0
    for k in range(N_INPUTS):
        data = mutate(rng, rng.choice(seeds))
        out_pdus, events = ric.receive_bytes(data, 1.0 + k * 1e-4)
        for ev in events:
            if isinstance(ev, ep.ProtocolErrorEvent):
                assert isinstance(ev.error, E2Error)
                errors += 1
        for pdu in out_pdus:
            assert isinstance(E.decode(pdu), E.E2apMessage)
    stats = ric.stats
    assert stats.pdus_received - before == N_INPUTS
    assert stats.decode_errors + stats.protocol_errors == errors
    assert errors > N_INPUTS // 2
    # the same endpoint still serves the good node: reset the link, subscribe, get an indication
    assert ric.state is ep.LinkState.READY
    for pdu in ric.reset(2.0)[0]:
        for ans in node.receive_bytes(pdu, 2.0)[0]:
            ric.receive_bytes(ans, 2.0)
    assert ric.subscriptions == {} and node.subscriptions == {}
    rid2, out = ric.subscribe(200, b"t", (E.RicAction(0),), 3.0)
    for pdu in out[0]:
        for ans in node.receive_bytes(pdu, 3.0)[0]:
            ric.receive_bytes(ans, 3.0)
    ind = node.send_indication(rid2, 0, b"h", b"after fuzz")[0][0]
    _, events = ric.receive_bytes(ind, 3.1)
    assert isinstance(events[0], ep.IndicationReceived) and events[0].indication.message == b"after fuzz"
