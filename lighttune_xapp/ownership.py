"""E2 node ownership among xApp replicas: SDL locks, membership, rendezvous hashing, epochs.

In RIC mode several replicas of the xApp (a StatefulSet) share the E2 nodes; each node has
exactly one *owner*, the only replica that subscribes to it, fine-tunes its cells' models
and sends it control. Everything the replicas agree on lives in the RIC's shared data layer
(SDL, Redis through ``ricsdl``); no replica talks to another and there is no consensus
protocol of our own. All SDL keys are in one namespace (the model store's, ``lighttune``
by default):

``member/<replica id>``  (SDL lock resource, expiry ``lock_expiry_s``)
    Held by each live replica and renewed while it lives. *Membership* is the list of these
    keys (``find_keys(ns, "member/*")``): a replica that dies (``kill -9``, node loss) drops
    out when Redis expires its lock; one that shuts down releases it at once.
``node/<MEID>``  (SDL lock resource, expiry ``lock_expiry_s``)
    Ownership of one E2 node: only the holder may subscribe to the node and control it.
    Renewed every ``renew_interval_s`` (``lock_expiry_s / 4``); it expires when its holder
    dies, so a surviving replica can take the node.
``epoch/<MEID>`` and ``epoch/<MEID>/<n>``  (SDL values)
    The node's *fencing token*: every replica, right after it acquires the node's lock,
    claims the next number ``n`` with SDL's ``set_if_not_exists`` on ``epoch/<MEID>/<n>`` and
    records it in ``epoch/<MEID>`` (decimal ASCII) (:meth:`SdlCoordination.next_epoch`). The replica's controls carry it (LT-LINKADAPT ``ControlHeader.owner_epoch``), so a
    node (or a log of what it received) can tell owners apart and refuse a stale one:
    epochs only grow, and each acquisition has its own.

Assignment: rendezvous (highest-random-weight) hashing of each node over the live members:
``owner(node) = argmax_r H(r, node)`` with ``H`` the first 8 bytes of
``SHA-256(replica id || 0x00 || MEID)`` read big-endian (ties, practically impossible, go to
the larger replica id). A replica joining takes exactly the nodes whose weight it wins;
a replica leaving gives away only its own nodes, spread over the rest: no other node moves.
Every replica computes the same assignment from the same membership; while the views
differ (a few ticks around a change) the locks keep ownership exclusive: a replica only
ever *tries* to acquire a node, and gives one up only by releasing its lock.

Leases and fencing. A replica treats a node as its own only until a *local* deadline,
``t0 + lock_expiry_s - guard_s``, where ``t0`` is its monotonic clock read *before* the
renewal it last completed (Redis starts the expiry after receiving the command, so the
local deadline comes first) and ``guard_s`` (``lock_expiry_s / 5``) covers the time to
send a control once the lease was checked. :meth:`OwnershipManager.epoch_for` (control
path) and :meth:`OwnershipManager.may_write` (checkpoint path) check that deadline on
every call, so a replica whose ownership thread is stalled, or whose renewal failed,
sends no control and writes no model as soon as its lease runs out, before another replica
can acquire the lock. A failed renewal drops the node at once (``on_lost``: no
checkpoint, which could overwrite the next owner's model).

Handover (a node moves because a replica joined, or on shutdown): the owner first stops
controlling the node (the lease becomes *releasing*), then ``on_release`` checkpoints its
cells and has its subscription deleted; the lock, still renewed, is released on a later
tick once ``ready_to_release`` confirms the subscription is gone (or after
``handover_timeout_s``). The next owner, which can only acquire the lock afterwards,
subscribes after the old subscription is gone and loads the checkpoint just written. After a crash the next owner acquires the lock when
it expires, deletes the dead owner's subscription (its id is in SDL) and loads the last
periodic checkpoint.

Threading: ``ricsdl``'s Redis locks keep their token thread-locally (redis-py ``Lock``), so
every lock operation happens in the thread that calls :meth:`OwnershipManager.tick` and
:meth:`OwnershipManager.shutdown` (:meth:`OwnershipManager.run` does both). The lease
queries are thread-safe and cheap (a dict look-up and a clock read).

This module does not import ``ricsdl``: the storage is any object with ``ricsdl``'s
``SyncStorage`` methods used here (``get_lock_resource``, ``find_keys``, ``get``, ``set``,
``set_if_not_exists``, ``remove``), and the exception types to treat as SDL failures are
passed in by the RIC adapter that created it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lighttune_xapp.store import ModelStore, StoreError

__all__ = [
    "EPOCH_PREFIX",
    "MEMBER_PREFIX",
    "NODE_PREFIX",
    "FencedStore",
    "Lease",
    "OwnershipManager",
    "SdlCoordination",
    "TickReport",
    "assign",
    "node_of_cell",
    "rendezvous_owner",
    "rendezvous_weight",
]

_log = logging.getLogger(__name__)

MEMBER_PREFIX = "member/"
NODE_PREFIX = "node/"
EPOCH_PREFIX = "epoch/"


# --------------------------------------------------------------------------- hashing


def rendezvous_weight(replica: str, node: str) -> int:
    """Weight of ``replica`` for ``node``: the first 8 bytes of SHA-256(replica || 0x00 || node), big-endian."""
    digest = hashlib.sha256(replica.encode("utf-8") + b"\x00" + node.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def rendezvous_owner(node: str, replicas: Iterable[str]) -> str | None:
    """The replica with the highest weight for ``node`` (ties: the larger id); None without replicas."""
    best: tuple[int, str] | None = None
    for replica in replicas:
        key = (rendezvous_weight(replica, node), replica)
        if best is None or key > best:
            best = key
    return None if best is None else best[1]


def assign(nodes: Iterable[str], replicas: Iterable[str]) -> dict[str, str]:
    """Node -> owner replica for every node (empty when there is no replica)."""
    members = sorted(set(replicas))
    if not members:
        return {}
    out: dict[str, str] = {}
    for node in nodes:
        owner = rendezvous_owner(node, members)
        assert owner is not None
        out[node] = owner
    return out


def node_of_cell(cell_id: str) -> str:
    """The E2 node (MEID) of a RIC-mode cell name ``<MEID>/<NR cell identity>``."""
    node, sep, _nci = cell_id.rpartition("/")
    return node if sep else cell_id


# --------------------------------------------------------------------------- SDL


class SdlCoordination:
    """The SDL operations of ownership: lock resources, membership listing, epoch counters.

    Args:
        storage: a ``ricsdl.syncstorage.SyncStorage`` (or an object with its
            ``get_lock_resource``, ``find_keys``, ``get``, ``set``, ``set_if_not_exists``
            and ``remove`` methods).
        namespace: SDL namespace of the keys (module doc).
        errors: exception types of the backend (``ricsdl.exceptions.SdlException``):
            they are what a failed SDL call raises.

    ``ops`` counts the SDL calls made (each one Redis round trip).
    """

    def __init__(self, storage: Any, namespace: str, errors: tuple[type[BaseException], ...] = ()) -> None:
        if not namespace:
            raise ValueError("namespace must be a non-empty string")
        self.storage = storage
        self.namespace = namespace
        self.errors = errors
        self.ops = 0
        self._ops_lock = threading.Lock()

    def count(self, n: int = 1) -> None:
        """Count ``n`` SDL calls."""
        with self._ops_lock:
            self.ops += n

    def member_lock(self, replica_id: str, expiry_s: float) -> Any:
        """The (not yet acquired) lock resource ``member/<replica_id>``."""
        return self.storage.get_lock_resource(self.namespace, MEMBER_PREFIX + replica_id, expiry_s)

    def node_lock(self, meid: str, expiry_s: float) -> Any:
        """The (not yet acquired) lock resource ``node/<meid>``."""
        return self.storage.get_lock_resource(self.namespace, NODE_PREFIX + meid, expiry_s)

    def live_members(self) -> list[str]:
        """Replica ids whose membership lock exists (held and not expired), sorted.

        Raises:
            the backend's errors.
        """
        self.count()
        keys = self.storage.find_keys(self.namespace, MEMBER_PREFIX + "*")
        return sorted(k[len(MEMBER_PREFIX) :] for k in keys if k.startswith(MEMBER_PREFIX))

    def current_epoch(self, meid: str) -> int:
        """The node's latest epoch as recorded in ``epoch/<meid>`` (0 when never acquired).

        Raises:
            the backend's errors; ValueError for a record that is not a decimal number.
        """
        key = EPOCH_PREFIX + meid
        self.count()
        value = self.storage.get(self.namespace, {key}).get(key)
        return 0 if value is None else int(bytes(value).decode("ascii"))

    def next_epoch(self, meid: str, owner: str = "", max_tries: int = 1024) -> int:
        """Take the node's next epoch; returns it. Call it holding ``node/<meid>`` and use the
        number only if the lock is still held afterwards (:class:`OwnershipManager` renews it).

        Claims the smallest free number above the recorded one with ``set_if_not_exists``
        (Redis SETNX, atomic: one caller per number) on ``epoch/<meid>/<n>``, records it in
        ``epoch/<meid>``, then removes the claims below it. Under the lock the callers are
        serialised: each reads the record its predecessor wrote and claims above it, so the
        epochs grow by one per acquisition; a predecessor that died between its claim and its
        record leaves the claim, which the next caller goes past. Without the lock (a holder
        stalled past the expiry, reading an old record) a caller could claim a number whose
        claim was already removed, i.e. one already issued: that is why the number counts
        only if the lock was held throughout, which the holder checks by renewing it after
        this call. (ricsdl's ``set_if`` would be a plain compare-and-set, but it needs the OSC
        DBaaS Redis module command SETIE that a stock Redis lacks; SETNX, GET, SET and DEL are
        standard.)

        Args:
            meid: the node.
            owner: written as the claim's value (diagnostics: who claimed the number).
            max_tries: claims attempted before giving up.

        Raises:
            RuntimeError: ``max_tries`` numbers were all taken; the backend's errors.
        """
        base = self.current_epoch(meid)
        for n in range(base + 1, base + 1 + max_tries):
            self.count()
            if self.storage.set_if_not_exists(self.namespace, f"{EPOCH_PREFIX}{meid}/{n}", owner.encode("utf-8")):
                self.count(2)
                self.storage.set(self.namespace, {EPOCH_PREFIX + meid: str(n).encode("ascii")})
                stale = {f"{EPOCH_PREFIX}{meid}/{k}" for k in range(max(base, 1), n)}
                if stale:
                    self.storage.remove(self.namespace, stale)
                return n
        raise RuntimeError(f"epoch of {meid}: numbers {base + 1}..{base + max_tries} are all claimed")


# --------------------------------------------------------------------------- leases


@dataclass
class Lease:
    """A node lock this replica holds.

    Attributes:
        meid: the node.
        lock: the SDL lock object (acquired).
        epoch: the fencing token taken at acquisition.
        valid_until: local monotonic deadline of the lease (module doc).
        renewed_at: local monotonic time of the last successful acquisition/renewal start.
        releasing: set when a handover started: no more control, checkpoints still allowed.
        release_started: local monotonic time the handover started.
    """

    meid: str
    lock: Any
    epoch: int
    valid_until: float
    renewed_at: float
    releasing: bool = False
    release_started: float = 0.0


@dataclass
class TickReport:
    """What one :meth:`OwnershipManager.tick` did (node names, sorted)."""

    members: list[str] = field(default_factory=list)
    acquired: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


class OwnershipManager:
    """This replica's side of node ownership (module doc for the protocol).

    Args:
        coordination: the SDL operations.
        replica_id: this replica's id (the StatefulSet pod name), unique among live replicas.
        lock_expiry_s: expiry of the member and node locks, seconds (> 0).
        candidates: returns the E2 nodes to share (configured + connected ones).
        on_acquired: ``on_acquired(meid, epoch)`` after the node's lock and epoch are taken
            (drop cached models of the node, delete a dead owner's subscription, subscribe).
        on_release: ``on_release(meid)`` when a handover starts, while the lock is held and
            control already stopped (checkpoint the node's cells, have its subscription deleted).
        ready_to_release: ``ready_to_release(meid)``: whether the handover may end (the node's
            subscription is gone); asked every tick, the lock is renewed meanwhile.
        on_lost: ``on_lost(meid)`` after the lock was lost (renewal failed or lease ran out):
            forget the node's cells without saving them, drop its subscription.
        renew_interval_s: how often held locks are renewed (default ``lock_expiry_s / 4``).
        guard_s: the lease ends this long before the lock's expiry (default ``lock_expiry_s / 5``).
        tick_s: period of :meth:`run` (default ``min(renew_interval_s, 0.25)``).
        handover_timeout_s: a handover ends after this long even if ``ready_to_release``
            never says so (submgr unreachable: the next owner deletes the subscription it
            finds recorded for the node); default ``max(2 * lock_expiry_s, 10)``.
        clock: monotonic clock, seconds.

    The callbacks run in the protocol thread and must be quick (no REST call: renewals wait
    for them); slow work (submgr) goes to another thread, and ``ready_to_release`` says when
    it is done.
    """

    def __init__(
        self,
        coordination: SdlCoordination,
        replica_id: str,
        lock_expiry_s: float,
        candidates: Callable[[], Iterable[str]],
        on_acquired: Callable[[str, int], None] = lambda _meid, _epoch: None,
        on_release: Callable[[str], None] = lambda _meid: None,
        on_lost: Callable[[str], None] = lambda _meid: None,
        renew_interval_s: float | None = None,
        guard_s: float | None = None,
        tick_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        ready_to_release: Callable[[str], bool] = lambda _meid: True,
        handover_timeout_s: float | None = None,
    ) -> None:
        if not replica_id or "/" in replica_id or "*" in replica_id:
            raise ValueError(f"replica_id must be a non-empty name without '/' or '*', got {replica_id!r}")
        if not lock_expiry_s > 0:
            raise ValueError(f"lock_expiry_s must be > 0, got {lock_expiry_s!r}")
        self.coordination = coordination
        self.replica_id = replica_id
        self.lock_expiry_s = float(lock_expiry_s)
        self.renew_interval_s = float(renew_interval_s) if renew_interval_s is not None else self.lock_expiry_s / 4
        self.guard_s = float(guard_s) if guard_s is not None else self.lock_expiry_s / 5
        if not 0 < self.renew_interval_s < self.lock_expiry_s - self.guard_s:
            raise ValueError("renew_interval_s must be > 0 and below lock_expiry_s - guard_s")
        self.tick_s = float(tick_s) if tick_s is not None else min(self.renew_interval_s, 0.25)
        self.candidates = candidates
        self.on_acquired = on_acquired
        self.on_release = on_release
        self.on_lost = on_lost
        self.ready_to_release = ready_to_release
        self.handover_timeout_s = (
            float(handover_timeout_s) if handover_timeout_s is not None else max(2 * self.lock_expiry_s, 10.0)
        )
        self.clock = clock
        self._leases: dict[str, Lease] = {}
        self._lease_lock = threading.Lock()
        self._member_lock: Any = None
        self._member_renewed_at = 0.0
        self.members: list[str] = []
        self.is_member = False
        self.acquisitions = 0
        self.handovers = 0
        self.losses = 0

    # ------------------------------------------------------------------ queries (any thread)
    def epoch_for(self, meid: str, now: float | None = None) -> int | None:
        """The epoch to put in a control to ``meid``, or None: this replica must not control it.

        Not None only while the node's lease is held, not being handed over, and before its
        local deadline.
        """
        t = self.clock() if now is None else now
        with self._lease_lock:
            lease = self._leases.get(meid)
            if lease is None or lease.releasing or t >= lease.valid_until:
                return None
            return lease.epoch

    def may_write(self, meid: str, now: float | None = None) -> bool:
        """Whether this replica may write the node's state (checkpoints): lease held and valid,
        also during a handover."""
        t = self.clock() if now is None else now
        with self._lease_lock:
            lease = self._leases.get(meid)
            return lease is not None and t < lease.valid_until

    def held(self) -> list[str]:
        """Nodes whose lock this replica holds, sorted."""
        with self._lease_lock:
            return sorted(self._leases)

    def epochs(self) -> dict[str, int]:
        """Node -> epoch of every held node."""
        with self._lease_lock:
            return {m: lease.epoch for m, lease in sorted(self._leases.items())}

    # ------------------------------------------------------------------ the protocol (one thread)
    def _sdl(self, what: str, call: Callable[[], Any]) -> tuple[bool, Any]:
        """Run one SDL call; (False, None) with a log line when the backend fails."""
        try:
            return True, call()
        except self.coordination.errors as exc:
            _log.warning("SDL %s failed: %s", what, exc)
            return False, None

    def _keep_membership(self, now: float) -> None:
        c = self.coordination
        if self._member_lock is not None and self.is_member:
            if now - self._member_renewed_at < self.renew_interval_s:
                return
            c.count()
            ok, _ = self._sdl("renewal of the membership lock", self._member_lock.refresh)
            if ok:
                self._member_renewed_at = now
                return
            _log.warning("replica %s lost its membership lock; joining again", self.replica_id)
            self.is_member = False
        lock = c.member_lock(self.replica_id, self.lock_expiry_s)
        c.count()
        ok, got = self._sdl("membership lock", lambda: lock.acquire(retry_interval=0.01, retry_timeout=0))
        if ok and got:
            self._member_lock, self.is_member, self._member_renewed_at = lock, True, now
            _log.info("replica %s joined (lock expiry %.2f s)", self.replica_id, self.lock_expiry_s)

    def _renew(self, now: float, report: TickReport) -> None:
        with self._lease_lock:
            due = [lease for lease in self._leases.values() if now - lease.renewed_at >= self.renew_interval_s]
        for lease in due:
            t0 = self.clock()
            self.coordination.count()
            ok, _ = self._sdl(f"renewal of node/{lease.meid}", lease.lock.refresh)
            if ok and t0 < lease.valid_until:
                with self._lease_lock:
                    lease.renewed_at = t0
                    lease.valid_until = t0 + self.lock_expiry_s - self.guard_s
            else:
                self._drop_lost(lease.meid, report)
        # leases that ran out without a failed renewal (the thread was stalled)
        with self._lease_lock:
            expired = [m for m, lease in self._leases.items() if self.clock() >= lease.valid_until]
        for meid in expired:
            self._drop_lost(meid, report)

    def _drop_lost(self, meid: str, report: TickReport) -> None:
        with self._lease_lock:
            lease = self._leases.pop(meid, None)
        if lease is None:
            return
        self.losses += 1
        report.lost.append(meid)
        _log.error("replica %s lost node %s (epoch %d): no more control", self.replica_id, meid, lease.epoch)
        try:
            self.on_lost(meid)
        except Exception:  # the protocol thread must survive a callback bug
            _log.exception("on_lost(%s) failed", meid)
        # if Redis still has our lock (the lease ran out locally first), free it now; a lock
        # taken by someone else is not ours to release and the call fails harmlessly
        self.coordination.count()
        try:
            lease.lock.release()
        except self.coordination.errors:
            pass

    def targets(self, members: Sequence[str], candidates: Iterable[str]) -> set[str]:
        """The nodes rendezvous hashing gives this replica among ``members`` (none if not a member)."""
        if self.replica_id not in members:
            return set()
        return {node for node in candidates if rendezvous_owner(node, members) == self.replica_id}

    def _acquire(self, meid: str, report: TickReport) -> None:
        c = self.coordination
        lock = c.node_lock(meid, self.lock_expiry_s)
        t0 = self.clock()
        c.count()
        ok, got = self._sdl(f"lock node/{meid}", lambda: lock.acquire(retry_interval=0.01, retry_timeout=0))
        if not (ok and got):
            return
        try:
            epoch = c.next_epoch(meid, self.replica_id)
        except (RuntimeError, ValueError, *c.errors) as exc:
            _log.error("node %s: cannot take an epoch (%s); releasing its lock", meid, exc)
            self._release_lock(lock, meid)
            return
        # The epoch is used only if the lock was held all along: a taker that stalled past
        # the expiry may have claimed a number another owner got too (next_epoch's doc).
        c.count()
        ok, _ = self._sdl(f"renewal of node/{meid} after its epoch", lock.refresh)
        if not ok:
            _log.error("node %s: lock expired while taking epoch %d; not used", meid, epoch)
            return
        lease = Lease(meid, lock, epoch, t0 + self.lock_expiry_s - self.guard_s, t0)
        with self._lease_lock:
            self._leases[meid] = lease
        self.acquisitions += 1
        report.acquired.append(meid)
        _log.info("replica %s owns node %s, epoch %d", self.replica_id, meid, epoch)
        try:
            self.on_acquired(meid, epoch)
        except Exception:
            _log.exception("on_acquired(%s) failed", meid)

    def _release_lock(self, lock: Any, meid: str) -> None:
        self.coordination.count()
        self._sdl(f"release of node/{meid}", lock.release)

    def begin_handover(self, meid: str) -> bool:
        """Start giving one node up: stop control, then ``on_release`` (checkpoint, have the
        subscription deleted). The lock is released by :meth:`finish_handovers` once
        ``ready_to_release(meid)``. False if the node is not held or already releasing."""
        with self._lease_lock:
            lease = self._leases.get(meid)
            if lease is None or lease.releasing:
                return False
            lease.releasing = True
            lease.release_started = self.clock()
        try:
            self.on_release(meid)
        except Exception:
            _log.exception("on_release(%s) failed", meid)
        return True

    def finish_handovers(self, report: TickReport | None = None) -> list[str]:
        """Release the locks of the releasing nodes that are ready (or waited too long)."""
        with self._lease_lock:
            releasing = [lease for lease in self._leases.values() if lease.releasing]
        done = []
        for lease in releasing:
            waited = self.clock() - lease.release_started
            try:
                ready = bool(self.ready_to_release(lease.meid))
            except Exception:
                _log.exception("ready_to_release(%s) failed", lease.meid)
                ready = False
            if not ready and waited < self.handover_timeout_s:
                continue
            if not ready:
                _log.warning("node %s: handover not confirmed after %.1f s; releasing anyway", lease.meid, waited)
            with self._lease_lock:
                self._leases.pop(lease.meid, None)
            self._release_lock(lease.lock, lease.meid)
            self.handovers += 1
            done.append(lease.meid)
            if report is not None:
                report.released.append(lease.meid)
            _log.info("replica %s handed node %s over (epoch %d) after %.3f s", self.replica_id, lease.meid,
                      lease.epoch, waited)
        return done

    def releasing(self) -> list[str]:
        """Nodes being handed over, sorted."""
        with self._lease_lock:
            return sorted(m for m, lease in self._leases.items() if lease.releasing)

    def tick(self) -> TickReport:
        """One round: renew membership and held locks, recompute the assignment, hand over
        the nodes that are no longer ours, try to acquire the ones that are."""
        report = TickReport()
        now = self.clock()
        self._keep_membership(now)
        self._renew(now, report)
        ok, members = self._sdl("membership listing", self.coordination.live_members)
        if ok:
            self.members = members
        candidates = sorted(set(self.candidates()))
        targets = self.targets(self.members, candidates) if ok else set(self.held())
        for meid in sorted(set(self.held()) - targets):
            self.begin_handover(meid)
        self.finish_handovers(report)
        for meid in sorted(targets - set(self.held())):
            self._acquire(meid, report)
        report.members = list(self.members)
        report.held = self.held()
        return report

    def shutdown(self) -> list[str]:
        """Leave: release the membership lock (the others recompute at once), then hand every
        held node over, renewing the locks until each handover is done (at most
        ``handover_timeout_s``); returns the nodes handed over."""
        if self._member_lock is not None and self.is_member:
            self.coordination.count()
            self._sdl("release of the membership lock", self._member_lock.release)
            self.is_member = False
        for meid in self.held():
            self.begin_handover(meid)
        out: list[str] = []
        report = TickReport()
        while True:
            self._renew(self.clock(), report)
            out += self.finish_handovers(report)
            if not self.held():
                break
            time.sleep(min(self.tick_s, 0.05))
        _log.info("replica %s left; handed over %s", self.replica_id, ", ".join(sorted(out)) or "-")
        return sorted(out)

    def run(self, stop: threading.Event) -> None:
        """Tick every ``tick_s`` until ``stop`` is set, then :meth:`shutdown` (same thread)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # never let the protocol thread die silently
                _log.exception("ownership tick failed")
            stop.wait(self.tick_s)
        self.shutdown()


# --------------------------------------------------------------------------- fenced store


class FencedStore(ModelStore):
    """A model store whose writes need the node's lease (no checkpoint from a former owner).

    Reads go straight through; a save or delete raises ``StoreError("backend", "fenced
    ...")`` unless ``may_write(node_of_cell(cell_id))``. The records are the inner store's.

    Args:
        inner: the real store (``SdlStore`` in RIC mode).
        may_write: ``OwnershipManager.may_write``.
    """

    def __init__(self, inner: ModelStore, may_write: Callable[[str], bool]) -> None:
        self.inner = inner
        self.may_write = may_write
        self.refused = 0

    def _check(self, cell_id: str) -> None:
        node = node_of_cell(cell_id)
        if not self.may_write(node):
            self.refused += 1
            raise StoreError("backend", f"fenced: this replica does not own node {node!r}", cell_id)

    def cells(self) -> list[str]:
        """The cells with a stored model."""
        return self.inner.cells()

    def _put(self, cell_id: str, record: bytes) -> None:
        self._check(cell_id)
        self.inner._put(cell_id, record)

    def _get(self, cell_id: str) -> bytes | None:
        return self.inner._get(cell_id)

    def _remove(self, cell_id: str) -> bool:
        self._check(cell_id)
        return self.inner._remove(cell_id)

    def __getattr__(self, name: str) -> Any:
        """Anything else (``healthy``, ``close``, ``namespace``) is the inner store's."""
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
