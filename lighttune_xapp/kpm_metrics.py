"""Prometheus series of the E2SM-KPM report path (registered beside :class:`XappMetrics`').

Kept apart from :mod:`lighttune_xapp.metrics` (as the advisory series are) and registered once
per registry by :func:`kpm_series`. All prefixed ``lighttune_``:

==============================================  =======  ==================  ===========================================
name                                            type     labels              meaning
==============================================  =======  ==================  ===========================================
kpm_indications_with_trailing_octets_total      counter  -                   KPM indications accepted with octets after
                                                                             a complete PDU (ignored, as other decoders do)
kpm_trailing_octets_total                       counter  -                   those octets, summed
kpm_advising_possible                           gauge    node                1 when one of the node's KPM functions yields
                                                                             per-UE reports (advice/decisions), else 0
kpm_learning_possible                           gauge    node                1 when such a function also carries HARQ
                                                                             counts (fine-tuning), else 0
kpm_missing_measurement                         gauge    node, measurement   KPM functions of the node lacking the
                                                                             measurement (series only for missing ones)
kpm_costly_feature                              gauge    node, feature       KPM functions of the node whose missing
                                                                             measurements cost the feature (imputed, or
                                                                             lost when advising is not possible)
==============================================  =======  ==================  ===========================================

Cardinality: the node gauges hold at most 16 measurement and 12 feature series per node.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections import Counter as Tally
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from lighttune_e2.kpm.subscription import KpmFunctionAssessment
from lighttune_xapp.metrics import XappMetrics

NAMESPACE: str = "lighttune"


@dataclasses.dataclass(frozen=True)
class KpmSeries:
    """The KPM report path's series of one registry (see the module docstring)."""

    trailing_indications: Counter
    trailing_octets: Counter
    advising_possible: Gauge
    learning_possible: Gauge
    missing_measurement: Gauge
    costly_feature: Gauge
    #: node -> the (gauge, label values) children set for it, so a new assessment replaces them.
    published: dict[str, list[tuple[Gauge, tuple[str, str]]]] = dataclasses.field(default_factory=dict)

    def count_trailing(self, octets: int) -> None:
        """One indication accepted with ``octets`` (> 0) octets after its PDU(s)."""
        if octets > 0:
            self.trailing_indications.inc()
            self.trailing_octets.inc(octets)

    def publish_node(self, node: str, assessments: Iterable[KpmFunctionAssessment]) -> None:
        """Set the node's gauges from the assessments of its KPM functions (replacing earlier ones)."""
        items = list(assessments)
        for gauge, labels in self.published.pop(node, []):
            gauge.remove(*labels)
        children: list[tuple[Gauge, tuple[str, str]]] = []
        self.advising_possible.labels(node=node).set(int(any(a.advising_possible for a in items)))
        self.learning_possible.labels(node=node).set(int(any(a.learning_possible for a in items)))
        for name, count in Tally(n for a in items for n in a.missing_names).items():
            self.missing_measurement.labels(node, name).set(count)
            children.append((self.missing_measurement, (node, name)))
        for feature, count in Tally(f for a in items for f in a.costly_features).items():
            self.costly_feature.labels(node, feature).set(count)
            children.append((self.costly_feature, (node, feature)))
        self.published[node] = children


_SERIES: weakref.WeakKeyDictionary[CollectorRegistry, KpmSeries] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def kpm_series(metrics: XappMetrics) -> KpmSeries:
    """The KPM series of ``metrics.registry``, registered on the first call for that registry."""
    with _LOCK:
        series = _SERIES.get(metrics.registry)
        if series is None:
            series = _SERIES[metrics.registry] = _register(metrics.registry)
        return series


def _register(r: CollectorRegistry) -> KpmSeries:
    return KpmSeries(
        trailing_indications=Counter(
            "kpm_indications_with_trailing_octets",
            "KPM indications accepted with octets after a complete PDU (the octets are ignored)",
            namespace=NAMESPACE, registry=r,
        ),
        trailing_octets=Counter(
            "kpm_trailing_octets", "Octets ignored after complete KPM PDUs", namespace=NAMESPACE, registry=r,
        ),
        advising_possible=Gauge(
            "kpm_advising_possible", "1 when a KPM function of the node yields per-UE reports, else 0",
            ["node"], namespace=NAMESPACE, registry=r,
        ),
        learning_possible=Gauge(
            "kpm_learning_possible", "1 when a usable KPM function of the node carries HARQ counts, else 0",
            ["node"], namespace=NAMESPACE, registry=r,
        ),
        missing_measurement=Gauge(
            "kpm_missing_measurement", "KPM functions of the node lacking the measurement",
            ["node", "measurement"], namespace=NAMESPACE, registry=r,
        ),
        costly_feature=Gauge(
            "kpm_costly_feature", "KPM functions of the node whose missing measurements cost the feature",
            ["node", "feature"], namespace=NAMESPACE, registry=r,
        ),
    )
