"""How many cells one E2 node may bring: ``controls.maxCellsPerNode``.

Every cell costs a LightTune model in memory and in the model store, so a node (broken or
hostile) that reports ever new cell ids must not make the xApp grow without bound. The
transports (local E2 termination, RIC mode) ask :meth:`CellCap.admit` before a report of
a cell reaches the policy: a cell the node brought before is always admitted; a new one
only while the node has fewer than the configured number of cells. A refused report is
counted (``lighttune_cell_refusals_total{reason="cells_per_node"}`` and
:attr:`CellCap.refused` per node) and dropped; it creates no model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lighttune_xapp.metrics import XappMetrics

__all__ = ["CellCap"]

_log = logging.getLogger(__name__)


class CellCap:
    """Admits at most ``limit()`` distinct cells per E2 node.

    Args:
        limit: returns the current cap (the running configuration's ``max_cells_per_node``;
            read on every call, so a configuration change applies at once).
        metrics: where refusals are counted (optional).
    """

    def __init__(self, limit: Callable[[], int], metrics: XappMetrics | None = None) -> None:
        self.limit = limit
        self.metrics = metrics
        self.cells: dict[str, set[str]] = {}
        """Node -> the cells admitted for it."""
        self.refused: dict[str, int] = {}
        """Node -> reports refused because the node had its cap of cells."""

    def admit(self, node: str, cell: str) -> bool:
        """Whether a report of ``cell`` from ``node`` may reach the policy (records the cell)."""
        known = self.cells.setdefault(node, set())
        if cell in known:
            return True
        cap = int(self.limit())
        if len(known) < cap:
            known.add(cell)
            return True
        first = node not in self.refused
        self.refused[node] = self.refused.get(node, 0) + 1
        if self.metrics is not None:
            self.metrics.cell_refusals.labels(reason="cells_per_node").inc()
        (_log.warning if first else _log.debug)(
            "node %s: report of cell %s refused: the node already has %d cells (controls.maxCellsPerNode)",
            node, cell, cap,
        )
        return False

    def forget_node(self, node: str) -> set[str]:
        """Drop a node's cells (its E2 link went away); returns them."""
        return self.cells.pop(node, set())
