"""Prometheus series of the E2SM-KPM report path (registered beside :class:`XappMetrics`').

Kept apart from :mod:`lighttune_xapp.metrics` (as the advisory series are) and registered once
per registry by :func:`kpm_series`. All prefixed ``lighttune_``:

==============================================  =======  ==================  ===========================================
name                                            type     labels              meaning
==============================================  =======  ==================  ===========================================
kpm_indications_with_trailing_octets_total      counter  -                   KPM indications accepted with octets after
                                                                             a complete PDU (ignored, as other decoders do)
kpm_trailing_octets_total                       counter  -                   those octets, summed
==============================================  =======  ==================  ===========================================
"""

from __future__ import annotations

import dataclasses
import threading
import weakref

from prometheus_client import CollectorRegistry, Counter

from lighttune_xapp.metrics import XappMetrics

NAMESPACE: str = "lighttune"


@dataclasses.dataclass(frozen=True)
class KpmSeries:
    """The KPM report path's series of one registry (see the module docstring)."""

    trailing_indications: Counter
    trailing_octets: Counter

    def count_trailing(self, octets: int) -> None:
        """One indication accepted with ``octets`` (> 0) octets after its PDU(s)."""
        if octets > 0:
            self.trailing_indications.inc()
            self.trailing_octets.inc(octets)


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
    )
