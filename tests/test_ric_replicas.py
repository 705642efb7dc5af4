"""Replicas sharing the E2 nodes, end to end: real RMR, one real Redis, unmodified xApp processes.

Three replicas (``--replica-id lt-0..2``, lock expiry :data:`EXPIRY_S`) share 12 E2 nodes
through the stand-in Subscription Manager / E2 manager and one stand-in E2 termination
endpoint per replica (:class:`ric_harness.ReplicaTestbed`); every node reports one cell of
8 UEs every 100 ms. Checked, in one run:

1. every node is owned and controlled by exactly one replica, the one rendezvous hashing
   over the three names gives;
2. ``kill -9`` of one replica: each of its nodes is controlled again by the single replica
   rendezvous hashing over the two survivors gives, within the lock expiry plus the new
   subscription's round trip (POST -> confirming notification) plus the ownership tick
   and one report period (:data:`SLACK_S` more for a loaded 2-core machine); the new owner
   starts from the dead replica's last checkpoint (the SHA-256 it logs is the stored
   record's) and that checkpoint lost at most the updates of the last checkpoint interval;
   the other nodes keep their owner and epoch;
3. a fourth replica joins: it takes exactly the nodes rendezvous hashing now gives it, each
   with a clean handover (the old owner's subscription deleted before the new one is
   posted; the new owner restores the model the old owner had at handover);
4. over the whole run, per MEID, the controls' epochs never go down and each epoch belongs
   to one replica: at no instant do two replicas control one node.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ric_harness import ControlSeen, ReplicaTestbed, skip_reason, wait_until
from lighttune_xapp.ownership import assign

_reason = skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

EXPIRY_S = 1.5
TICK_S = 0.25  # the ownership thread's period (min(expiry / 4, 0.25))
PERIOD_S = 0.1
CHECKPOINT_S = 0.5
SLACK_S = 1.5  # scheduling delays: 4 xApps, 4 E2T endpoints and Redis on a shared 2-core machine
NODES = tuple(f"gnb-{i:02d}" for i in range(12))
FIRST = ("lt-0", "lt-1", "lt-2")
VICTIM = "lt-1"
JOINER = "lt-3"


@pytest.fixture()
def bed(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplicaTestbed]:
    testbed = ReplicaTestbed(tmp_path_factory.mktemp("ric-replicas"), NODES, EXPIRY_S,
                             checkpointIntervalS=CHECKPOINT_S)
    monkeypatch.setenv("DBAAS_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("DBAAS_SERVICE_PORT", str(testbed.redis.port))
    try:
        yield testbed
    finally:
        testbed.close()


def _stored() -> dict[str, tuple[bytes, dict[str, object]]]:
    from lighttune_xapp.store import SdlStore

    store = SdlStore("lighttune")
    try:
        return {cell: loaded for cell in store.cells() if (loaded := store.load(cell)) is not None}
    finally:
        store.close()


def _single_owners(bed: ReplicaTestbed, want: dict[str, str]) -> bool:
    owners = bed.owners()
    return {m: r for m, r in ((m, rs[0]) for m, rs in owners.items() if len(rs) == 1)} == want and all(
        len(rs) == 1 for rs in owners.values()
    )


def _controlled_by(bed: ReplicaTestbed, want: dict[str, str], since: float) -> bool:
    """Whether every node in ``want`` got a control from its wanted replica after ``since``."""
    seen = {(c.meid, c.replica) for c in bed.controls_since(since)}
    return all((m, r) in seen for m, r in want.items())


def _first_control(bed: ReplicaTestbed, meid: str, replica: str, since: float) -> ControlSeen:
    return min((c for c in bed.controls_since(since) if c.meid == meid and c.replica == replica),
               key=lambda c: c.at)


def _restore_line(log: str, cell: str) -> tuple[str, int, str]:
    found = re.findall(rf"cell {re.escape(cell)} model: restore=(\w+) n_updates=(\d+) sha256=(\w+)", log)
    assert found, f"no restore line of {cell}"
    status, n, digest = found[-1]
    return status, int(n), digest


def _check_exclusive(controls: list[ControlSeen]) -> dict[str, list[tuple[int, str]]]:
    """Per MEID: epochs never decrease in arrival order and each epoch has one replica.

    Returns MEID -> the (epoch, replica) succession.
    """
    by_node: dict[str, list[ControlSeen]] = {}
    for c in sorted(controls, key=lambda c: c.at):
        by_node.setdefault(c.meid, []).append(c)
    out: dict[str, list[tuple[int, str]]] = {}
    for meid, seq in by_node.items():
        owner_of: dict[int, str] = {}
        succession: list[tuple[int, str]] = []
        for prev, cur in zip([None, *seq[:-1]], seq):
            assert cur.epoch > 0, f"{meid}: control without an epoch from {cur.replica}"
            if prev is not None:
                assert cur.epoch >= prev.epoch, (
                    f"{meid}: epoch {cur.epoch} from {cur.replica} at {cur.at:.3f} after epoch {prev.epoch} "
                    f"from {prev.replica} at {prev.at:.3f}: two replicas controlled the node at once"
                )
            assert owner_of.setdefault(cur.epoch, cur.replica) == cur.replica, (
                f"{meid}: epoch {cur.epoch} used by {owner_of[cur.epoch]} and {cur.replica}"
            )
            if not succession or succession[-1][0] != cur.epoch:
                succession.append((cur.epoch, cur.replica))
        out[meid] = succession
    return out


def test_three_replicas_fail_over_and_scale_out(bed: ReplicaTestbed, tmp_path: Path) -> None:
    # 1. three replicas, every node owned and controlled once, as rendezvous hashing says
    for replica in (*FIRST, JOINER):
        bed.add_replica(replica)
    for replica in FIRST:
        bed.replicas[replica].start()
    for replica in FIRST:
        bed.start_replica(replica, start=False)
    want3 = assign(NODES, FIRST)
    assert set(want3.values()) == set(FIRST), "the names chosen leave a replica without nodes"
    wait_until(lambda: _single_owners(bed, want3), 60, "each node owned by its rendezvous replica")
    bed.start_traffic(PERIOD_S)
    t0 = time.monotonic()
    wait_until(lambda: _controlled_by(bed, want3, t0), 60, "every node controlled by its owner")
    time.sleep(1.0)  # let fine-tuning and checkpoints happen
    steady = bed.controls_since(t0 + 0.5)
    assert {c.meid: c.replica for c in steady} == want3
    assert {(c.meid, c.replica) for c in steady} == set(want3.items())  # one replica per node
    epochs_before = bed.epochs()

    # 2. kill -9 one replica
    victim_nodes = sorted(m for m, r in want3.items() if r == VICTIM)
    assert victim_nodes
    victim_cells = [f"{m}/1" for m in victim_nodes]
    samples: list[tuple[float, dict[str, int]]] = []
    sampling_from = time.monotonic()
    while time.monotonic() - sampling_from < CHECKPOINT_S + 0.25 + SLACK_S + 1.0:
        stats = bed.stats(VICTIM)  # per-cell fine-tuning counts of the victim up to the kill
        assert stats is not None
        samples.append((time.monotonic(), {c: int(stats["cells"][c]["n_updates"]) for c in victim_cells}))
        time.sleep(0.2)
    bed.replicas[VICTIM].kill()
    killed_at = time.monotonic()
    time.sleep(0.2)  # a SET the victim had sent is applied (the kill does not abort sent bytes)
    stored = _stored()
    survivors = tuple(r for r in FIRST if r != VICTIM)
    want2 = assign(NODES, survivors)
    for meid in NODES:
        if meid not in victim_nodes:
            assert want2[meid] == want3[meid], "rendezvous hashing moved a node of a live replica"
    wait_until(lambda: _controlled_by(bed, {m: want2[m] for m in victim_nodes}, killed_at), 60,
               "the victim's nodes controlled again")
    for meid in victim_nodes:
        first = _first_control(bed, meid, want2[meid], killed_at)
        takeover = first.at - killed_at
        posts = [e for e in bed.platform.events if e[2] == meid and e[1] == "post" and e[0] > killed_at]
        assert posts, f"no new subscription for {meid}"
        # the platform records a confirmation once the xApp has answered its notification,
        # which on a loaded machine can come after the first control: wait for it
        confirmed_at = wait_until(
            lambda: next((e[0] for e in bed.platform.events if e[1] == "confirmed" and e[3] == posts[0][3]), None),
            30, f"the confirmation of {meid}'s new subscription",
        )
        rtt = confirmed_at - posts[0][0]
        bound = EXPIRY_S + rtt + TICK_S + PERIOD_S + SLACK_S
        assert takeover <= bound, f"{meid}: controlled again after {takeover:.2f} s > {bound:.2f} s"
        print(f"takeover {meid}: {takeover:.2f} s (lock expiry {EXPIRY_S} s, subscription round trip {rtt:.3f} s)")
        cell = f"{meid}/1"
        status, n_updates, digest = _restore_line(bed.replicas[want2[meid]].log_text(), cell)
        blob, meta = stored[cell]
        assert status == "ok" and digest == hashlib.sha256(blob).hexdigest() and n_updates == int(meta["n_updates"])
    # fine-tuning lost <= one checkpoint interval (+ the saver's tick and slack)
    counted = [(t, c) for t, c in samples if t <= killed_at - (CHECKPOINT_S + 0.25 + SLACK_S)]
    assert counted, "sampling ended too close to the kill to check the checkpoint bound"
    for cell in victim_cells:
        stored_updates = int(stored[cell][1]["n_updates"])
        assert stored_updates >= counted[-1][1][cell], (
            cell, stored[cell][1], [(round(t - killed_at, 2), c[cell]) for t, c in samples]
        )
    assert samples[-1][1][victim_cells[0]] > 0, "no fine-tuning happened: the checkpoint check proves nothing"
    wait_until(lambda: _single_owners(bed, want2), 30, "ownership settled on the survivors")
    epochs_after = bed.epochs()
    for meid in NODES:
        if meid not in victim_nodes:
            assert epochs_after[meid] == epochs_before[meid], f"{meid} changed hands without need"
        else:
            assert epochs_after[meid] > epochs_before[meid]

    # 3. a replica joins and takes its share with a clean handover
    want_join = assign(NODES, (*survivors, JOINER))
    moved = sorted(m for m in NODES if want_join[m] != want2[m])
    assert moved and all(want_join[m] == JOINER for m in moved)
    joined_at = time.monotonic()
    bed.start_replica(JOINER)
    wait_until(lambda: _single_owners(bed, want_join), 60, "the joiner owns its share")
    wait_until(lambda: _controlled_by(bed, {m: JOINER for m in moved}, joined_at), 60, "the joiner controls its share")
    joiner_log = bed.replicas[JOINER].log_text()
    for meid in moved:
        events = [e for e in bed.platform.events if e[2] == meid and e[0] >= joined_at]
        kinds = [e[1] for e in events]
        assert "delete" in kinds and "post" in kinds
        assert kinds.index("delete") < kinds.index("post"), f"{meid}: new subscription before the old was deleted"
        old_owner = want2[meid]
        released = re.findall(rf"node {re.escape(meid)} handover: cells {re.escape(meid)}/1=(\d+)",
                               bed.replicas[old_owner].log_text())
        assert released, f"{old_owner} logged no handover of {meid}"
        status, n_updates, _digest = _restore_line(joiner_log, f"{meid}/1")
        assert status == "ok" and n_updates == int(released[-1])
    time.sleep(1.0)

    # 4. never two controllers at once, over the whole run
    succession = _check_exclusive(bed.controls_since(0.0))
    assert set(succession) == set(NODES)
    for meid in NODES:
        replicas_in_order = [r for _e, r in succession[meid]]
        expected = [want3[meid]]
        if want2[meid] != expected[-1]:
            expected.append(want2[meid])
        if want_join[meid] != expected[-1]:
            expected.append(want_join[meid])
        assert replicas_in_order == expected, f"{meid}: owners {succession[meid]}"
    for replica in bed.running():
        bed.replicas[replica].assert_running()
