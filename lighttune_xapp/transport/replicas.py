"""RIC mode with several replicas: ties node ownership to subscriptions, models and control.

:mod:`lighttune_xapp.ownership` decides which replica owns which E2 node (SDL locks,
membership, rendezvous hashing, epochs); this module applies its decisions to the running
xApp (:class:`~lighttune_xapp.transport.ric.RicMessageHandler`, the policy's models and the
:class:`~lighttune_xapp.transport.submgr.SubscriptionKeeper`):

- the keeper subscribes only to the nodes this replica owns (``keeper.owns``); every
  candidate node (configured or connected) is still learnt (``keeper.candidates``) and is
  what the replicas share;
- the handler controls a node only with a live lease, and puts the lease's epoch in every
  control (``handler.owner_epoch``); an indication of a node it does not own is dropped
  before the policy (no decision, no fine-tuning: ``lighttune_ownership_dropped_indications_total``);
- model checkpoints go through :class:`~lighttune_xapp.ownership.FencedStore`;
- on acquisition: the node's cached models are dropped (the next indication loads the
  latest checkpoint from SDL), a previous owner's subscription recorded in SDL is deleted,
  and the node is subscribed;
- on handover: checkpoint the node's cells, drop them, delete the subscription; the
  ownership manager releases the lock once the subscription's record is gone
  (``ready_to_release``);
- on loss: drop the node's cells *without* saving them, delete the subscription.

The REST calls to submgr (deletes, posts) run in a *subscription worker* thread, woken by
the ownership callbacks, never in the ownership thread: a slow submgr must not delay the
lock renewals.

Subscription ids are recorded per replica in SDL (``subscription/<replica id>/<key>``, the
key being the MEID or ``<MEID>#<RAN function id>``,
:class:`ReplicaSubscriptionLog`), so a replica only ever deletes its own subscriptions on
its own paths, and the next owner of a node deletes whatever record of that node it finds
(of a dead or fenced-off owner: every one of them is stale once it holds the lock).

No ``ricsdl``/``ricxappframe`` import here: the RIC adapter (:mod:`.ric`) passes the SDL
storage and its exception types.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from lighttune_xapp.ownership import OwnershipManager, node_of_cell
from lighttune_xapp.transport.submgr import SdlSubscriptionLog, SubmgrError, SubscriptionKeeper, node_of_key

__all__ = [
    "DEFAULT_LOCK_EXPIRY_S",
    "ReplicaGlue",
    "ReplicaSubscriptionLog",
    "default_replica_id",
    "glob_escape",
]

_log = logging.getLogger(__name__)

DEFAULT_LOCK_EXPIRY_S = 5.0
"""Default expiry of the ownership locks: a dead replica's nodes are taken over after this
plus one subscription round trip."""


def default_replica_id(environ: dict[str, str] | None = None) -> str:
    """``$REPLICA_ID``, else ``$POD_NAME`` (the chart sets both from the pod name), else
    ``<host name>-<pid>`` (unique on one machine)."""
    env = os.environ if environ is None else environ
    return env.get("REPLICA_ID") or env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def glob_escape(text: str) -> str:
    """``text`` with Redis glob metacharacters (``* ? [ ] \\``) escaped, for a literal match."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class ReplicaSubscriptionLog(SdlSubscriptionLog):
    """:class:`SdlSubscriptionLog` with keys ``subscription/<replica id>/<subscription key>``.

    Args:
        storage, namespace, on_error: as for :class:`SdlSubscriptionLog`.
        replica_id: this replica's id.
    """

    ROOT = "subscription/"

    def __init__(
        self, storage: Any, namespace: str, replica_id: str, on_error: tuple[type[BaseException], ...] = ()
    ) -> None:
        super().__init__(storage, namespace, on_error)
        self.replica_id = replica_id
        self.KEY_PREFIX = f"{self.ROOT}{replica_id}/"

    def records_of_node(self, meid: str) -> dict[str, str]:
        """Every replica's records of the subscriptions of ``meid`` (any RAN function):
        SDL key -> subscription id (empty on SDL failure)."""
        try:
            found = self._storage.find_and_get(self.namespace, f"{self.ROOT}*/{glob_escape(meid)}*")
        except self._errors as exc:
            _log.error("cannot read the subscription records of %s from SDL: %s", meid, exc)
            return {}
        out: dict[str, str] = {}
        for key, value in found.items():
            _replica, _sep, sub_key = key[len(self.ROOT) :].partition("/")
            if node_of_key(sub_key) != meid:
                continue
            try:
                out[key] = bytes(value).decode("utf-8")
            except (UnicodeDecodeError, TypeError):
                _log.warning("ignoring unreadable subscription record %s", key)
        return out

    def drop_record(self, key: str) -> None:
        """Remove one record by its full SDL key."""
        try:
            self._storage.remove(self.namespace, {key})
        except self._errors as exc:
            _log.error("cannot remove subscription record %s from SDL: %s", key, exc)


class ReplicaGlue:
    """Connects an :class:`OwnershipManager` to the handler, the policy and the keeper.

    Construction wires everything: the manager's callbacks, ``handler.owner_epoch``,
    ``keeper.owns`` and the manager's ``candidates``.

    Args:
        manager: this replica's ownership manager.
        handler: the RIC message handler (its ``lock`` guards the policy).
        keeper: the subscription keeper (with a :class:`ReplicaSubscriptionLog`).
        registry: Prometheus registry for the ownership metrics (None: no metrics).
    """

    def __init__(self, manager: OwnershipManager, handler: Any, keeper: SubscriptionKeeper,
                 registry: Any | None = None) -> None:
        self.manager = manager
        self.handler = handler
        self.keeper = keeper
        self.stale_deleted: list[str] = []
        manager.on_acquired = self.on_acquired
        manager.on_release = self.on_release
        manager.on_lost = self.on_lost
        manager.ready_to_release = self.ready_to_release
        manager.candidates = lambda: list(keeper.candidates)
        handler.owner_epoch = manager.epoch_for
        if getattr(handler, "kpm", None) is not None:  # controls decided on KPM reports
            handler.kpm.owner_epoch = manager.epoch_for
        keeper.owns = self.owns
        self._thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._worker_stop = threading.Event()
        self._wake = threading.Event()
        self._to_clean: set[str] = set()
        self._clean_lock = threading.Lock()
        self.dropped = None
        if registry is not None:
            self._bind_metrics(registry)

    def owns(self, meid: str) -> bool:
        """Whether the keeper may subscribe to the node: owned, and the earlier owners'
        subscriptions already deleted (else that cleanup could take ours for theirs)."""
        with self._clean_lock:
            if meid in self._to_clean:
                return False
        return self.manager.epoch_for(meid) is not None

    def _bind_metrics(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        m = self.manager
        Gauge("lighttune_ownership_nodes", "E2 nodes this replica owns", registry=registry).set_function(
            lambda: float(len(m.held()))
        )
        Gauge("lighttune_ownership_members", "Live replicas seen in SDL", registry=registry).set_function(
            lambda: float(len(m.members))
        )
        for name, attr, doc in (
            ("acquisitions", "acquisitions", "Node locks acquired"),
            ("handovers", "handovers", "Nodes handed over cleanly (checkpoint, unsubscribe, release)"),
            ("losses", "losses", "Node locks lost (renewal failed or lease ran out)"),
        ):
            Gauge(f"lighttune_ownership_{name}", doc, registry=registry).set_function(
                lambda a=attr: float(getattr(m, a))
            )
        Gauge("lighttune_ownership_sdl_ops", "SDL calls made by the ownership protocol", registry=registry
              ).set_function(lambda: float(m.coordination.ops))
        self.dropped = Counter(
            "lighttune_ownership_dropped_indications", "Indications of nodes this replica does not own",
            registry=registry,
        )

    # ------------------------------------------------------------------ callbacks (ownership thread)
    def _node_cells(self, meid: str) -> list[str]:
        return [c for c in self.handler.runtime.policy.cells if node_of_cell(c) == meid]

    def _drop_cells(self, cells: list[str]) -> None:
        policy = self.handler.runtime.policy
        for cell in cells:
            policy.cells.pop(cell, None)
            policy.restore_status.pop(cell, None)
        policy.checkpointer.discard(cells)

    def on_acquired(self, meid: str, epoch: int) -> None:
        """Drop stale cached models of the node; have earlier owners' subscriptions deleted and
        the node subscribed (worker thread)."""
        with self.handler.lock:
            self._drop_cells(self._node_cells(meid))
            self.handler.cell_cap.forget_node(meid)
        with self._clean_lock:
            self._to_clean.add(meid)
        self._wake.set()

    def on_release(self, meid: str) -> None:
        """Handover: checkpoint the node's cells, forget them, have the subscription deleted."""
        with self.handler.lock:
            policy = self.handler.runtime.policy
            cells = self._node_cells(meid)
            saved = policy.checkpointer.flush(only=cells)
            updates = {cell: policy.cells[cell].model.n_updates for cell in cells}
            unsaved = sorted(policy.checkpointer.dirty.intersection(cells))
            self._drop_cells(cells)
            self.handler.cell_cap.forget_node(meid)
        _log.info(
            "node %s handover: cells %s (n_updates), saved now %s, unsaved %s", meid,
            " ".join(f"{c}={n}" for c, n in sorted(updates.items())) or "-", ",".join(saved) or "-",
            ",".join(unsaved) or "-",
        )
        self._wake.set()

    def ready_to_release(self, meid: str) -> bool:
        """Whether the node's subscriptions are deleted (their records gone) and nothing is pending."""
        if self._wake.is_set() or any(node_of_key(k) == meid for k in self.keeper.book.wanted()):
            return False
        return not any(node_of_key(k) == meid for k in self.keeper.log.load())

    def on_lost(self, meid: str) -> None:
        """Lock lost: forget the node's cells unsaved (the next owner's state wins), unsubscribe."""
        with self.handler.lock:
            self._drop_cells(self._node_cells(meid))
            self.handler.cell_cap.forget_node(meid)
        self._wake.set()

    # ------------------------------------------------------------------ subscription worker
    def _delete_earlier_subscriptions(self, meid: str) -> None:
        log = self.keeper.log
        if not isinstance(log, ReplicaSubscriptionLog):
            return
        ours = {log.KEY_PREFIX + k: v for k, v in self.keeper.book.subscription_ids().items()}
        for key, sub_id in sorted(log.records_of_node(meid).items()):
            if ours.get(key) == sub_id:
                continue  # ours, made since the acquisition
            try:
                gone = self.keeper.submgr.unsubscribe(sub_id)
            except SubmgrError as exc:
                _log.warning("cannot delete the earlier subscription %s of %s: %s", sub_id, meid, exc)
                continue
            log.drop_record(key)
            self.stale_deleted.append(sub_id)
            _log.info("earlier subscription %s of %s (%s) %s", sub_id, meid, key, "deleted" if gone else "already gone")

    def work_once(self) -> None:
        """One round of the subscription worker: delete earlier owners' subscriptions of the
        nodes just acquired, then bring the subscriptions in line with ownership
        (``keeper.poll``: posts for owned nodes, deletes for the others)."""
        self._wake.clear()
        with self._clean_lock:
            nodes = sorted(self._to_clean)
        for meid in nodes:
            if self.manager.epoch_for(meid) is not None:
                self._delete_earlier_subscriptions(meid)
            with self._clean_lock:
                self._to_clean.discard(meid)
        self.keeper.poll()

    def _work(self) -> None:
        while not self._worker_stop.is_set():
            if self._wake.wait(0.5):
                try:
                    self.work_once()
                except Exception:  # the worker must survive (the next wake-up retries)
                    _log.exception("subscription worker failed")

    def count_dropped(self) -> None:
        """Count one indication dropped because this replica does not own its node."""
        if self.dropped is not None:
            self.dropped.inc()

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        """Run the ownership protocol (all SDL lock calls happen in its thread) and the
        subscription worker."""
        self._worker = threading.Thread(target=self._work, name="subscriptions", daemon=True)
        self._worker.start()
        self._thread = threading.Thread(target=self.manager.run, args=(self._stop,), name="ownership", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Leave: every node is handed over (the worker deletes the subscriptions meanwhile)
        and the locks released; waits for both threads."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._worker_stop.set()
        if self._worker is not None:
            self._worker.join(timeout_s)

    def state(self) -> dict[str, Any]:
        """For ``/ric/v1/stats``: replica id, members, owned nodes with their epochs."""
        m = self.manager
        return {
            "replica_id": m.replica_id,
            "members": list(m.members),
            "nodes": m.epochs(),
            "acquisitions": m.acquisitions,
            "handovers": m.handovers,
            "losses": m.losses,
            "lock_expiry_s": m.lock_expiry_s,
        }
