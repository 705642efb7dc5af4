"""Node ownership among replicas: rendezvous hashing, SDL locks, epochs, leases, fencing.

The hashing tests are pure. The lock and epoch tests run on a real redis-server through
ricsdl (the lock API of the RIC's SDL); they skip where redis-server or ricsdl is missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lighttune_xapp.ownership import (
    FencedStore,
    OwnershipManager,
    SdlCoordination,
    assign,
    node_of_cell,
    rendezvous_owner,
    rendezvous_weight,
)
from lighttune_xapp.store import MemoryStore, StoreError

NODES = [f"gnb-{i:04d}" for i in range(1000)]


# --------------------------------------------------------------------------- hashing


def test_weight_is_sha256_of_replica_and_node() -> None:
    import hashlib

    digest = hashlib.sha256(b"lt-0\x00gnb-1").digest()
    assert rendezvous_weight("lt-0", "gnb-1") == int.from_bytes(digest[:8], "big")
    assert rendezvous_weight("lt-0", "gnb-1") != rendezvous_weight("gnb-1", "lt-0")


def test_owner_is_the_highest_weight_and_independent_of_order() -> None:
    replicas = ["lt-0", "lt-1", "lt-2"]
    for node in NODES[:50]:
        best = max(replicas, key=lambda r: rendezvous_weight(r, node))
        assert rendezvous_owner(node, replicas) == best == rendezvous_owner(node, reversed(replicas))
    assert rendezvous_owner("gnb-1", []) is None
    assert assign(NODES, []) == {}


def test_balance() -> None:
    counts = np.bincount([int(r[3:]) for r in assign(NODES, [f"lt-{i}" for i in range(4)]).values()], minlength=4)
    # binomial(1000, 1/4): 250 +- 13.7; these names happen to give 225..300 (3.6 sigma)
    assert counts.sum() == 1000 and counts.min() > 190 and counts.max() < 310


@pytest.mark.parametrize("n_replicas", [1, 2, 3, 5])
def test_join_moves_only_the_nodes_the_newcomer_wins(n_replicas: int) -> None:
    before = [f"lt-{i}" for i in range(n_replicas)]
    old = assign(NODES, before)
    new = assign(NODES, [*before, "lt-new"])
    moved = [n for n in NODES if old[n] != new[n]]
    assert all(new[n] == "lt-new" for n in moved)
    # the newcomer's share is about 1/(k+1) of the nodes, nothing more moves
    share = 1000 / (n_replicas + 1)
    assert 0.75 * share < len(moved) < 1.25 * share


@pytest.mark.parametrize("leaver", ["lt-0", "lt-2", "lt-4"])
def test_leave_moves_only_the_leavers_nodes(leaver: str) -> None:
    replicas = [f"lt-{i}" for i in range(5)]
    old = assign(NODES, replicas)
    new = assign(NODES, [r for r in replicas if r != leaver])
    for node in NODES:
        if old[node] != leaver:
            assert new[node] == old[node]
        else:
            assert new[node] != leaver
    # the leaver's nodes spread over the others, not onto one
    assert len({new[n] for n in NODES if old[n] == leaver}) == 4


def test_node_of_cell() -> None:
    assert node_of_cell("gnb-a/4097") == "gnb-a"
    assert node_of_cell("odd/name/7") == "odd/name"
    assert node_of_cell("plain") == "plain"


# --------------------------------------------------------------------------- SDL (real Redis)


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    pytest.importorskip("ricsdl")
    from ric_harness import REDIS_BINARY, RedisServer

    if REDIS_BINARY is None:
        pytest.skip("redis-server not found (scripts/install-test-deps installs it)")
    server = RedisServer(tmp_path_factory.mktemp("ownership-redis"))
    try:
        yield server.port
    finally:
        server.stop()


_namespace_counter = iter(range(10**6))


@pytest.fixture()
def sdl(redis_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str, tuple[type[BaseException], ...]]]:
    monkeypatch.setenv("DBAAS_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("DBAAS_SERVICE_PORT", str(redis_port))
    from ricsdl.exceptions import SdlException
    from ricsdl.syncstorage import SyncStorage

    storage = SyncStorage()
    try:
        yield storage, f"own-test-{next(_namespace_counter)}", (SdlException,)
    finally:
        storage.close()


def _coordination(sdl: tuple[Any, str, tuple[type[BaseException], ...]]) -> SdlCoordination:
    storage, ns, errors = sdl
    return SdlCoordination(storage, ns, errors)


def test_epochs_grow_by_one_and_are_never_shared(sdl: tuple[Any, str, tuple[type[BaseException], ...]]) -> None:
    c = _coordination(sdl)
    assert c.current_epoch("gnb-a") == 0
    assert [c.next_epoch("gnb-a") for _ in range(3)] == [1, 2, 3]
    assert c.current_epoch("gnb-a") == 3 and c.next_epoch("gnb-b") == 1
    # claims below the recorded epoch are removed; only the last one stays
    storage, ns, _ = sdl
    assert sorted(storage.find_keys(ns, "epoch/gnb-a/*")) == ["epoch/gnb-a/3"]

    # replicas racing for the node: each takes the lock (blocking), an epoch, renews the
    # lock and releases it; in the order of acquisition the epochs grow by one
    taken: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        mine = _coordination(sdl)
        for _ in range(10):
            node_lock = mine.node_lock("gnb-a", 5.0)
            assert node_lock.acquire(retry_interval=0.001, retry_timeout=30)
            n = mine.next_epoch("gnb-a")
            node_lock.refresh()
            with lock:
                taken.append(n)
            node_lock.release()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert taken == list(range(4, 44))


def test_a_crash_between_claim_and_record_cannot_reissue_an_epoch(
    sdl: tuple[Any, str, tuple[type[BaseException], ...]],
) -> None:
    c = _coordination(sdl)
    storage, ns, _ = sdl
    assert c.next_epoch("gnb-c") == 1
    # a replica claimed 2 and 3 and died before recording them
    storage.set_if_not_exists(ns, "epoch/gnb-c/2", b"dead")
    storage.set_if_not_exists(ns, "epoch/gnb-c/3", b"dead")
    assert c.current_epoch("gnb-c") == 1
    assert c.next_epoch("gnb-c") == 4


def test_membership_is_the_live_member_locks(sdl: tuple[Any, str, tuple[type[BaseException], ...]]) -> None:
    c = _coordination(sdl)
    a = c.member_lock("lt-a", 0.5)
    b = c.member_lock("lt-b", 5.0)
    assert a.acquire(retry_interval=0.01, retry_timeout=0) and b.acquire(retry_interval=0.01, retry_timeout=0)
    assert c.live_members() == ["lt-a", "lt-b"]
    # a second holder of the same id is refused while the first holds it
    assert not c.member_lock("lt-b", 5.0).acquire(retry_interval=0.01, retry_timeout=0)
    b.release()
    assert c.live_members() == ["lt-a"]
    time.sleep(0.7)  # lt-a "died": Redis expires its lock
    assert c.live_members() == []


class _Recorder:
    """Callbacks of one manager, in order: (kind, meid, epoch or None, time)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int | None, float]] = []

    def acquired(self, meid: str, epoch: int) -> None:
        self.events.append(("acquired", meid, epoch, time.monotonic()))

    def released(self, meid: str) -> None:
        self.events.append(("release", meid, None, time.monotonic()))

    def lost(self, meid: str) -> None:
        self.events.append(("lost", meid, None, time.monotonic()))


def _manager(sdl: tuple[Any, str, tuple[type[BaseException], ...]], replica: str, nodes: list[str],
             expiry_s: float = 1.0) -> tuple[OwnershipManager, _Recorder]:
    rec = _Recorder()
    manager = OwnershipManager(
        _coordination(sdl), replica, expiry_s, lambda: nodes, rec.acquired, rec.released, rec.lost
    )
    return manager, rec


def _ticks(*managers: OwnershipManager, n: int = 3) -> None:
    for _ in range(n):
        for m in managers:
            m.tick()


def test_two_replicas_split_the_nodes_with_handover_and_new_epochs(
    sdl: tuple[Any, str, tuple[type[BaseException], ...]],
) -> None:
    nodes = [f"gnb-{i}" for i in range(12)]
    a, rec_a = _manager(sdl, "lt-a", nodes)
    nodes = sorted(nodes)
    _ticks(a)
    assert a.held() == nodes and set(a.epochs().values()) == {1}
    assert all(a.epoch_for(n) == 1 for n in nodes)

    b, rec_b = _manager(sdl, "lt-b", nodes)
    _ticks(b, a, n=1)  # b joins; a sees b and hands b's share over
    _ticks(b, a)
    want = assign(nodes, ["lt-a", "lt-b"])
    assert a.held() == sorted(n for n in nodes if want[n] == "lt-a")
    assert b.held() == sorted(n for n in nodes if want[n] == "lt-b")
    moved = b.held()
    assert moved and [e[1] for e in rec_a.events if e[0] == "release"] == moved
    for meid in moved:
        assert a.epoch_for(meid) is None and not a.may_write(meid)
        assert b.epoch_for(meid) == 2  # a new epoch, above a's
        released_at = next(e[3] for e in rec_a.events if e[0] == "release" and e[1] == meid)
        acquired_at = next(e[3] for e in rec_b.events if e[0] == "acquired" and e[1] == meid)
        assert released_at < acquired_at
    # more ticks change nothing
    _ticks(a, b)
    assert a.acquisitions + b.acquisitions == 12 + len(moved) and a.losses == b.losses == 0

    # b leaves cleanly: a takes everything back at once, with new epochs
    b.shutdown()
    assert b.held() == []
    _ticks(a, n=1)
    assert a.held() == nodes and all(a.epoch_for(m) == 3 for m in moved)


def test_a_dead_replicas_lease_ends_before_another_can_take_its_nodes(
    sdl: tuple[Any, str, tuple[type[BaseException], ...]],
) -> None:
    nodes = ["gnb-x", "gnb-y"]
    a, _rec_a = _manager(sdl, "lt-a", nodes, expiry_s=1.0)
    _ticks(a, n=1)
    assert a.held() == nodes
    acquired_at = time.monotonic()
    b, rec_b = _manager(sdl, "lt-zz", nodes, expiry_s=1.0)
    # a stops ticking (kill -9: no release). Its lease ends locally after expiry - guard ...
    lease_end = None
    while time.monotonic() - acquired_at < 3.0:
        b.tick()
        if lease_end is None and a.epoch_for("gnb-x") is None:
            lease_end = time.monotonic()
        if b.held() == nodes:
            break
        time.sleep(0.02)
    assert lease_end is not None and b.held() == nodes
    taken_at = min(e[3] for e in rec_b.events if e[0] == "acquired")
    # ... before b could acquire (the lock expires in Redis only after the full expiry)
    assert lease_end < taken_at
    assert taken_at - acquired_at >= 1.0 - 0.05
    assert all(b.epoch_for(n) == 2 for n in nodes)
    # a wakes up: its renewal fails, it reports the loss and controls nothing
    report = a.tick()
    assert sorted(report.lost) == nodes and a.held() == [] and a.epoch_for("gnb-x") is None


def test_a_lock_lost_in_redis_stops_control_at_the_next_renewal(
    sdl: tuple[Any, str, tuple[type[BaseException], ...]],
) -> None:
    a, rec = _manager(sdl, "lt-a", ["gnb-q"], expiry_s=0.8)
    _ticks(a, n=1)
    storage, ns, _ = sdl
    storage.remove(ns, {"node/gnb-q"})  # e.g. an operator or a Redis fail-over dropped it
    time.sleep(a.renew_interval_s + 0.01)
    report = a.tick()
    # lost, then (the lock being free) taken back in the same tick, under a new epoch
    assert report.lost == ["gnb-q"] and report.acquired == ["gnb-q"]
    assert [(e[0], e[2]) for e in rec.events] == [("acquired", 1), ("lost", None), ("acquired", 2)]
    assert a.epoch_for("gnb-q") == 2


def test_leases_are_checked_against_the_local_clock() -> None:
    now = [100.0]

    class _NoSdl(SdlCoordination):
        pass

    manager = OwnershipManager(_NoSdl(object(), "ns"), "lt-a", 2.0, list, clock=lambda: now[0])
    assert (manager.renew_interval_s, manager.guard_s) == (0.5, 0.4)
    from lighttune_xapp.ownership import Lease

    manager._leases["gnb-a"] = Lease("gnb-a", object(), 7, valid_until=101.6, renewed_at=100.0)
    assert manager.epoch_for("gnb-a") == 7 and manager.may_write("gnb-a")
    now[0] = 101.6
    assert manager.epoch_for("gnb-a") is None and not manager.may_write("gnb-a")
    now[0] = 101.0
    manager._leases["gnb-a"].releasing = True  # handing over: no control, checkpoints still allowed
    assert manager.epoch_for("gnb-a") is None and manager.may_write("gnb-a")
    with pytest.raises(ValueError):
        OwnershipManager(_NoSdl(object(), "ns"), "lt/a", 2.0, list)
    with pytest.raises(ValueError):
        OwnershipManager(_NoSdl(object(), "ns"), "lt-a", 1.0, list, renew_interval_s=0.9)


def test_fenced_store_writes_only_with_the_lease(tmp_path: Path) -> None:
    inner = MemoryStore()
    owned = {"gnb-a"}
    store = FencedStore(inner, lambda node: node in owned)
    store.save("gnb-a/1", b"model", {"n_updates": 1})
    with pytest.raises(StoreError, match="fenced"):
        store.save("gnb-b/1", b"model", {"n_updates": 1})
    inner.save("gnb-b/1", b"theirs", {"n_updates": 5})
    assert store.load("gnb-b/1") == (b"theirs", {"n_updates": 5})  # reading is always allowed
    with pytest.raises(StoreError, match="fenced"):
        store.delete("gnb-b/1")
    assert store.cells() == ["gnb-a/1", "gnb-b/1"] and store.refused == 2
    owned.clear()
    with pytest.raises(StoreError):
        store.save("gnb-a/1", b"late", {"n_updates": 2})
    assert inner.load("gnb-a/1") == (b"model", {"n_updates": 1})


def test_handover_keeps_the_lock_renewed_until_the_subscription_is_gone(
    sdl: tuple[Any, str, tuple[type[BaseException], ...]],
) -> None:
    nodes = [f"gnb-{i}" for i in range(8)]
    a, rec_a = _manager(sdl, "lt-a", nodes, expiry_s=0.8)
    _ticks(a, n=1)
    unsubscribed: set[str] = set()
    a.ready_to_release = lambda meid: meid in unsubscribed
    b, _rec_b = _manager(sdl, "lt-b", nodes, expiry_s=0.8)
    b.tick()
    a.tick()  # a sees b: handover starts, control stops, the locks stay
    moving = a.releasing()
    assert moving and [e[1] for e in rec_a.events if e[0] == "release"] == moving
    assert all(a.epoch_for(m) is None and a.may_write(m) for m in moving)
    deadline = time.monotonic() + 2.0  # > the lock expiry: only renewals keep the locks
    while time.monotonic() < deadline:
        a.tick()
        b.tick()
        time.sleep(0.05)
    assert a.releasing() == moving and not set(moving) & set(b.held())
    unsubscribed.update(moving[:1])  # one subscription deleted: that lock goes, the others stay
    a.tick()
    b.tick()
    assert a.releasing() == moving[1:] and moving[0] in b.held()
    unsubscribed.update(moving)
    _ticks(a, b, n=2)
    assert a.releasing() == [] and set(moving) <= set(b.held()) and a.handovers == len(moving)


def test_a_handover_that_is_never_confirmed_ends_after_its_timeout(
    sdl: tuple[Any, str, tuple[type[BaseException], ...]],
) -> None:
    a, _rec = _manager(sdl, "lt-a", ["gnb-t"], expiry_s=0.8)
    a.handover_timeout_s = 0.3
    a.ready_to_release = lambda _meid: False
    _ticks(a, n=1)
    assert a.begin_handover("gnb-t") and not a.begin_handover("gnb-t")
    assert a.finish_handovers() == []
    time.sleep(0.35)
    assert a.finish_handovers() == ["gnb-t"] and a.held() == []
