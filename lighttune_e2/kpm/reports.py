"""E2SM-KPM per-UE measurements <-> :class:`~lighttune_core.report.LinkReports`.

The standard report path: a KPM node (ours, srsRAN, OAI, ...) subscribed with report
style 4 or 5 sends indication message format 3, one format-1 report per UE. This module
names the measurements that carry a :class:`LinkReports` and decodes a format-3
indication into the same record our own service model yields. A style-3 node's format 2
(Viavi RIC Test, with empty measurement names) is read into the same per-UE form first
(:func:`_format2_ue_list`: its two record layouts, and what an empty ``measName`` means).
The ASN.1 library
(asn1tools, pycrate as fallback, through :class:`~lighttune_e2.kpm.codec.KpmCodec`)
does the aligned-PER decoding; its value dicts go straight into flat lists and numpy
arrays (no per-record dataclasses on this path).

Measurements (per UE, one granularity period = one CSI-RS period)
-----------------------------------------------------------------

==========================  ========  ===========  ===============================================
name                        type      unit         LinkReports field(s)
==========================  ========  ===========  ===============================================
``CARR.WBCQIDist``          integer   reports      bin (X = CQI + 1, Y = RI, Z = CQI table), count
                                                   of CSI reports -> ``cqi``, ``ri``, ``cqi_table``
``CARR.PDSCHMCSDist``       integer   TBs          bin (X = rank, Y = MCS table, Z = MCS + 1), count
                                                   of PDSCH TBs -> ``rank``, ``mcs`` (largest bin)
``TB.TotNbrDl``             integer   TBs          all DL TBs incl. retransmissions
``TB.ErrTotNbrDl``          integer   TBs          NACKed DL TBs incl. retransmissions
``TB.TotNbrDlInitial``      integer   TBs          first transmissions -> ``n_ack + n_nack``
``TB.ErrTotNbrDlInitial``   integer   TBs          NACKed first transmissions -> ``n_nack``
``DRB.UEThpDl``             real      kbit/s       served bits / granularity period ->
                                                   ``served_bits`` = round(thp x period ms)
``RRU.PrbUsedDl``           integer   PRBs         mean PDSCH PRBs per slot of the period
``LT.SINRLayer1`` .. ``4``  real      dB           ``sinr_layers_db[:, l]``; noValue beyond RI
``LT.CSIRSSNR``             real      dB           ``csirs_snr_db``
``LT.OLLAOffset``           real      dB           ``olla_offset_db`` at the end of the period
``LT.CSIAge``               real      ms           ``csi_age_ms``
==========================  ========  ===========  ===============================================

The first eight are TS 28.552 names (as srsRAN's metric table spells them, except that the
initial-error counter is written ``TB.ErrTotNbrDlInitial``; the 28.552 spelling
``TB.IntialErrNbrDl`` and ns-O-RAN's ``TB.ErrTotalNbrDl`` are accepted as aliases). The
``LT.`` names are ours: no standard measurement carries per-layer post-equaliser SINR,
the CSI-RS SNR, the OLLA offset or the CSI age. A UE without a transmission in the period
sends noValue for its TB counters, throughput and PRBs, and one ``CARR.PDSCHMCSDist``
record labelled with the rank in use and MCS 0 whose value is noValue.

Several granularity periods in one report: counters (integers) are summed over the
periods; reals take the last period that has a value; distributions add their counts.

Missing measurements (imputation rule)
--------------------------------------
A node without the ``LT.`` names (srsRAN, OAI) still yields a full record; what is missing
is imputed per UE, and :func:`decode_kpm_indication` reports which features were imputed:

* per-layer SINR (l < RI) and CSI-RS SNR: the SINR the reported CQI stands for,
  ``default_cqi_sinr_db(cqi_table)[cqi]`` (gap-to-capacity CQI -> SINR thresholds of
  :mod:`lighttune_core.linkadapt`); CQI 0 takes the CQI-1 threshold minus
  :data:`CQI0_MARGIN_DB`; clipped to the record's SINR range;
* OLLA offset: 0 dB; CSI age: 0 ms;
* HARQ: without ``TB.*Initial`` the all-transmission counters stand in (retransmissions
  then count as first transmissions); without either, no TB is counted and the previous
  BLER feature takes its "unknown" value;
* rank and MCS without ``CARR.PDSCHMCSDist``: rank = RI, MCS = ``cqi_to_mcs(cqi)`` (0 for
  CQI 0); served bits without ``DRB.UEThpDl``: 0 (ACKed transport blocks with 0 bits: the
  cell's rank-change check reads that as "bits not reported" and stands aside,
  :class:`lighttune_core.cell.CellTuner`).

A UE without ``CARR.WBCQIDist`` (no RI/CQI) cannot be described and is dropped (counted),
as is a UE whose fields fail :meth:`LinkReports.validate` or whose report is malformed
(records not matching its measurement list, an unknown UE id form).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Iterable

import numpy as np

from lighttune_core.features import FEATURE_NAMES
from lighttune_core.linkadapt import cqi_to_mcs, default_cqi_sinr_db
from lighttune_core.report import MAX_RANK, SINR_RANGE_DB, LinkReports
from lighttune_e2.errors import E2DecodeError
from lighttune_e2.kpm.codec import DEFAULT_CODEC, KpmCodec, real_to_float
from lighttune_e2.kpm.model import IndicationHeader

_log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- names

WB_CQI_DIST = "CARR.WBCQIDist"
PDSCH_MCS_DIST = "CARR.PDSCHMCSDist"
TB_TOTAL = "TB.TotNbrDl"
TB_ERRORS = "TB.ErrTotNbrDl"
TB_TOTAL_INITIAL = "TB.TotNbrDlInitial"
TB_ERRORS_INITIAL = "TB.ErrTotNbrDlInitial"
UE_THROUGHPUT_DL = "DRB.UEThpDl"
PRB_USED_DL = "RRU.PrbUsedDl"
LT_SINR_LAYERS: tuple[str, ...] = tuple(f"LT.SINRLayer{layer}" for layer in range(1, MAX_RANK + 1))
LT_CSIRS_SNR = "LT.CSIRSSNR"
LT_OLLA_OFFSET = "LT.OLLAOffset"
LT_CSI_AGE = "LT.CSIAge"

#: Other spellings seen in the field -> our name.
MEASUREMENT_ALIASES: dict[str, str] = {
    "TB.IntialErrNbrDl": TB_ERRORS_INITIAL,
    "TB.ErrTotalNbrDl": TB_ERRORS,
    "TB.TotNbrDlInit": TB_TOTAL_INITIAL,
}


@dataclasses.dataclass(frozen=True)
class MeasurementSpec:
    """One per-UE KPM measurement: name, record type (``integer``/``real``), unit, meaning."""

    name: str
    record_type: str
    unit: str
    meaning: str


#: Every measurement of the report path, in the order a node lists them.
UE_MEASUREMENTS: tuple[MeasurementSpec, ...] = (
    MeasurementSpec(WB_CQI_DIST, "integer", "CSI reports", "wideband CQI x rank x CQI table distribution"),
    MeasurementSpec(PDSCH_MCS_DIST, "integer", "TBs", "PDSCH rank x MCS table x MCS distribution"),
    MeasurementSpec(TB_TOTAL, "integer", "TBs", "DL transport blocks, all transmissions"),
    MeasurementSpec(TB_ERRORS, "integer", "TBs", "NACKed DL transport blocks, all transmissions"),
    MeasurementSpec(TB_TOTAL_INITIAL, "integer", "TBs", "DL transport blocks, first transmissions"),
    MeasurementSpec(TB_ERRORS_INITIAL, "integer", "TBs", "NACKed DL first transmissions"),
    MeasurementSpec(UE_THROUGHPUT_DL, "real", "kbit/s", "DL UE throughput (ACKed TB bits / period)"),
    MeasurementSpec(PRB_USED_DL, "integer", "PRBs", "mean PDSCH PRBs per slot"),
    *(
        MeasurementSpec(name, "real", "dB", f"post-equaliser SINR of layer {i + 1} of the reported rank")
        for i, name in enumerate(LT_SINR_LAYERS)
    ),
    MeasurementSpec(LT_CSIRS_SNR, "real", "dB", "wideband CSI-RS SNR"),
    MeasurementSpec(LT_OLLA_OFFSET, "real", "dB", "OLLA offset at the end of the period"),
    MeasurementSpec(LT_CSI_AGE, "real", "ms", "age of the CSI report at the start of the period"),
)
UE_MEASUREMENT_NAMES: tuple[str, ...] = tuple(m.name for m in UE_MEASUREMENTS)

@dataclasses.dataclass(frozen=True)
class MissingMeasurementCost:
    """What a node's lack of one measurement of :data:`UE_MEASUREMENTS` costs the xApp.

    Attributes:
        name: the measurement.
        features: entries of :data:`~lighttune_core.features.FEATURE_NAMES` it would cost
            (imputed by the rule of the module docstring, or lost with every UE for
            ``CARR.WBCQIDist``); empty when no model input depends on it.
        effect: one line saying what happens without it.
        required: without it no :class:`LinkReports` can be built (no advice at all).
    """

    name: str
    features: tuple[str, ...]
    effect: str
    required: bool = False

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form (``/ric/v1/stats``)."""
        return {"name": self.name, "features": list(self.features), "effect": self.effect,
                "required": self.required}


def missing_measurement_costs(offered: Iterable[str]) -> tuple[MissingMeasurementCost, ...]:
    """The cost of every measurement of :data:`UE_MEASUREMENT_NAMES` not in ``offered``.

    ``offered``: the measurement names a node's report style lists (aliases are read as our
    names). The costs follow the imputation rule of this module: the HARQ counters cost
    ``prev_bler`` and the fine-tuning label only when neither the first-transmission pair nor
    the all-transmission pair is offered (either stands in for the other).

    Returns:
        One entry per missing measurement, in the order of :data:`UE_MEASUREMENTS`.
    """
    have = {MEASUREMENT_ALIASES.get(name, name) for name in offered}
    harq = {TB_TOTAL_INITIAL, TB_ERRORS_INITIAL} <= have or {TB_TOTAL, TB_ERRORS} <= have
    costs: list[MissingMeasurementCost] = []
    for name in UE_MEASUREMENT_NAMES:
        if name in have:
            continue
        if name == WB_CQI_DIST:
            cost = MissingMeasurementCost(
                name, FEATURE_NAMES,
                "no RI/CQI report: no UE can be described (every feature derives from RI/CQI), nothing to advise",
                required=True)
        elif name == PDSCH_MCS_DIST:
            cost = MissingMeasurementCost(name, (), "the DU's rank and MCS are imputed (rank = RI, MCS = the "
                                                    "CQI's table MCS); no model input depends on them")
        elif name in (TB_TOTAL, TB_ERRORS, TB_TOTAL_INITIAL, TB_ERRORS_INITIAL):
            if harq:
                pair = "all-transmission" if name in (TB_TOTAL_INITIAL, TB_ERRORS_INITIAL) else "first-transmission"
                cost = MissingMeasurementCost(name, (), f"the {pair} counters stand in")
            else:
                cost = MissingMeasurementCost(
                    name, ("prev_bler",),
                    "no HARQ counts: the previous BLER is unknown (imputed 0.1) and no fine-tuning label exists "
                    "(advice from the offline model only)")
        elif name in LT_SINR_LAYERS:
            layer = LT_SINR_LAYERS.index(name) + 1
            cost = MissingMeasurementCost(name, (f"sinr_layer{layer}",),
                                          "imputed: the SINR the reported CQI stands for")
        elif name == LT_CSIRS_SNR:
            cost = MissingMeasurementCost(name, ("csirs_snr",), "imputed: the SINR the reported CQI stands for")
        elif name == LT_OLLA_OFFSET:
            cost = MissingMeasurementCost(name, ("olla_offset",), "imputed: 0 dB")
        elif name == LT_CSI_AGE:
            cost = MissingMeasurementCost(name, ("csi_age",), "imputed: 0 ms")
        elif name == UE_THROUGHPUT_DL:
            cost = MissingMeasurementCost(name, (), "served bits 0 (no decision or update reads them)")
        else:  # PRB_USED_DL
            cost = MissingMeasurementCost(name, (), "informative only: nothing lost")
        costs.append(cost)
    return tuple(costs)


#: CQI 0 ("out of range") imputes the CQI-1 SINR threshold minus this margin, dB.
CQI0_MARGIN_DB: float = 3.0

# Scalar columns of the flat decode (distributions are kept apart).
_SCALAR_NAMES: tuple[str, ...] = (
    TB_TOTAL, TB_ERRORS, TB_TOTAL_INITIAL, TB_ERRORS_INITIAL, UE_THROUGHPUT_DL, PRB_USED_DL,
    *LT_SINR_LAYERS, LT_CSIRS_SNR, LT_OLLA_OFFSET, LT_CSI_AGE,
)
_COL: dict[str, int] = {name: i for i, name in enumerate(_SCALAR_NAMES)}
for _alias, _name in MEASUREMENT_ALIASES.items():
    _COL[_alias] = _COL[_name]
_C_TOT, _C_ERR, _C_TOT_I, _C_ERR_I, _C_THP, _C_PRB = range(6)
_C_SINR = 6
_C_SNR, _C_OLLA, _C_AGE = 10, 11, 12
_N_SCALAR = len(_SCALAR_NAMES)
_COUNTER_COLUMNS = np.array([_C_TOT, _C_ERR, _C_TOT_I, _C_ERR_I, _C_PRB])
# Column codes for distributions (negative so they never clash with scalar columns).
_CQI_DIST = -2
_MCS_DIST = -3
_IGNORED = -1


@dataclasses.dataclass(frozen=True)
class DropCounts:
    """UEs dropped from one indication, by reason (each a count >= 0)."""

    malformed: int = 0
    no_cqi: int = 0
    out_of_range: int = 0

    @property
    def total(self) -> int:
        """All dropped UEs."""
        return self.malformed + self.no_cqi + self.out_of_range


@dataclasses.dataclass(frozen=True)
class KpmDecodeResult:
    """What :func:`decode_kpm_indication_detailed` returns."""

    header: IndicationHeader
    reports: LinkReports
    drops: DropCounts
    imputed_features: tuple[str, ...]
    granularity_period_ms: float
    #: Octets that followed the complete header and message PDUs and were ignored (see
    #: :data:`~lighttune_e2.kpm.codec.MAX_TRAILING_OCTETS`).
    trailing_octets: int = 0
    #: Format 2 only: measurements sent with an empty name that no subscribed name resolves,
    #: and records of conditions matched by several UEs (group values, not per-UE); both ignored.
    unnamed_measurements: int = 0
    group_records: int = 0


class _Flat:
    """Flat per-record columns gathered from the library's value dicts (one pass).

    ``keys``/``gran``: per kept UE. ``s_*``: scalar records (UE index, column, value);
    ``d_*``: distribution records (UE index, kind, bin X/Y/Z, count). Lists while gathered
    record by record, int64/float64 arrays [R] from the batched :func:`_gather`.
    """

    __slots__ = ("keys", "s_ue", "s_col", "s_val", "d_ue", "d_kind", "d_x", "d_y", "d_z", "d_val",
                 "gran", "malformed", "unnamed", "group_records")

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.s_ue: list[int] | np.ndarray = []
        self.s_col: list[int] | np.ndarray = []
        self.s_val: list[float] | np.ndarray = []
        self.d_ue: list[int] | np.ndarray = []
        self.d_kind: list[int] | np.ndarray = []
        self.d_x: list[int] | np.ndarray = []
        self.d_y: list[int] | np.ndarray = []
        self.d_z: list[int] | np.ndarray = []
        self.d_val: list[float] | np.ndarray = []
        self.gran: list[float] = []
        self.malformed = 0
        self.unnamed = 0
        self.group_records = 0


def _ue_key(raw: Any) -> int:
    """Integer UE id from an asn1tools/pycrate UEID choice (see ``GnbDuUeId.key`` etc.)."""
    kind, value = raw
    if kind == "gNB-DU-UEID":
        return int(value["gNB-CU-UE-F1AP-ID"])
    if kind == "gNB-UEID":
        ran = value.get("ran-UEID")
        return int.from_bytes(ran, "big") if ran is not None else int(value["amf-UE-NGAP-ID"])
    if kind == "gNB-CU-UP-UEID":
        return int(value["gNB-CU-CP-UE-E1AP-ID"])
    raise ValueError(f"unsupported UEID alternative {kind!r}")


def _columns(
    infos: list[Any], by_id: dict[int, str], per_item: dict[int, list[tuple[int, int, int, int]]] | None = None
) -> list[tuple[int, int, int, int]]:
    """(column code, bin X, Y, Z) per record of one measurement list.

    ``per_item`` caches the columns of each item object by ``id`` (valid while the decoded
    message is alive): the library hands out one value object per distinct item encoding.
    """
    if per_item is not None:
        cols = []
        for info in infos:
            item_cols = per_item.get(id(info))
            if item_cols is None:
                item_cols = per_item[id(info)] = _columns([info], by_id)
            cols.extend(item_cols)
        return cols
    cols = []
    append = cols.append
    for info in infos:
        kind, ident = info["measType"]
        name = ident if kind == "measName" else by_id.get(ident, "")
        labels = info["labelInfoList"]
        if name == WB_CQI_DIST or name == PDSCH_MCS_DIST:
            code = _CQI_DIST if name == WB_CQI_DIST else _MCS_DIST
            for item in labels:
                label = item["measLabel"]
                append((code, label.get("distBinX", 0), label.get("distBinY", 0), label.get("distBinZ", 0)))
        else:
            col = _COL.get(name, _IGNORED)
            for item in labels:
                # only the plain counter of a scalar measurement is ours; other subcounters are ignored
                append((col if "noLabel" in item["measLabel"] else _IGNORED, 0, 0, 0))
    return cols


def _record_value(kind: str, value: Any) -> float:
    """One MeasurementRecordItem as a float: integer, real (asn1tools or pycrate), noValue NaN."""
    if kind == "integer":
        return float(value)
    if kind == "real":
        return value if value.__class__ is float else real_to_float(value)
    return math.nan


def _format3_ue_list(raw: Any, default_infos: list[Any] | None = None, flat: _Flat | None = None) -> list[Any]:
    """The per-UE report list of a decoded indication message.

    Format 3: its ``ueMeasReportList``. Format 2: the same form built by
    :func:`_format2_ue_list` (its notes go to ``flat``). ValueError for any other format.
    """
    kind, value = raw["indicationMessage-formats"]
    if kind == "indicationMessage-Format2":
        ue_list, unnamed, group = _format2_ue_list(value, default_infos)
        if flat is not None:
            flat.unnamed, flat.group_records = unnamed, group
        return ue_list
    if kind != "indicationMessage-Format3":
        raise ValueError(f"expected indication message format 3 (or 2), got {kind!r}")
    return value["ueMeasReportList"]


_NO_LABEL_ITEM: dict[str, Any] = {"measLabel": {"noLabel": "true"}}


def _format2_item_info(item: Any, index: int, default_infos: list[Any] | None, n_items: int) -> tuple[Any, bool]:
    """(measInfoList entry, named) of one ``MeasurementCondUEidItem`` of format 2.

    The first ``measLabel`` matching condition is the record's label (the subcounter), else
    noLabel. An empty ``measName`` (Viavi RIC Test) names no measurement: the name sits
    outside ``MeasurementTypeName``'s root size 1..150, and the only reader of such reports,
    kpimon-go, maps the i-th item to the i-th measurement it subscribed to. So does this
    decoder: item i takes the i-th subscribed measurement when the subscription lists exactly
    as many measurements as the message has items (the same rule as a format-1 report without
    ``measInfoList``); otherwise the item stays unnamed (its records are ignored and counted),
    as guessing a name would put values in the wrong field.
    """
    label_item = _NO_LABEL_ITEM
    for cond in item["matchingCond"]:
        choice = cond["matchingCondChoice"] if isinstance(cond, dict) else cond
        if choice[0] == "measLabel":
            label_item = {"measLabel": choice[1]}
            break
    meas_type = item["measType"]
    named = not (meas_type[0] == "measName" and meas_type[1] == "")
    if not named and default_infos is not None and len(default_infos) == n_items:
        meas_type, named = default_infos[index]["measType"], True
    return {"measType": meas_type, "labelInfoList": [label_item]}, named


def _format2_ue_list(value: Any, default_infos: list[Any] | None) -> tuple[list[Any], int, int]:
    """IM format 2 (style 3) as per-UE format-1 reports: (report list, unnamed items, group records).

    Two record layouts are in use. The standard one (E2SM-KPM 8.2.1.4.2, as format 1): each
    ``measData`` item is a granularity period holding one record per ``measCondUEidList``
    item. A record there is the value of the item's UE group; it is a UE's own value only
    when exactly one UE matched, so records of items matched by several UEs are not per-UE
    values: they are ignored and counted (``group records``). Viavi RIC Test transposes it
    (the vector kpimon-go keeps; kpimon-go reads ``measData[i].measRecord[n]`` as measurement
    i of UE n): one ``measData`` item per ``measCondUEidList`` item, holding one record per
    matched UE, for one granularity period. The standard layout is taken when every period
    has one record per item; else the transposed one when it fits exactly; else ValueError.
    """
    items = value["measCondUEidList"]
    data = value["measData"]
    n_items = len(items)
    infos = []
    unnamed = 0
    for index, item in enumerate(items):
        info, named = _format2_item_info(item, index, default_infos, n_items)
        infos.append(info)
        unnamed += not named
    ue_lists = [[u["ueID"] for u in item.get("matchingUEidList", ())] for item in items]
    per_ue: dict[int, tuple[Any, list[Any], list[list[Any]]]] = {}  # key -> (ueID, infos, records per period)
    group = 0

    def add(ue_raw: Any, info: Any, period: int, record: Any, n_periods: int) -> None:
        key = _ue_key(ue_raw)
        entry = per_ue.get(key)
        if entry is None:
            entry = per_ue[key] = (ue_raw, [], [[] for _ in range(n_periods)])
        if period == 0:
            entry[1].append(info)
        entry[2][period].append(record)

    if all(len(period["measRecord"]) == n_items for period in data):
        for p, period in enumerate(data):
            for i, record in enumerate(period["measRecord"]):
                if len(ue_lists[i]) == 1:
                    add(ue_lists[i][0], infos[i], p, record, len(data))
                elif p == 0 and ue_lists[i]:
                    group += len(data)
    elif len(data) == n_items and all(len(data[i]["measRecord"]) == len(ue_lists[i]) for i in range(n_items)):
        for i, period in enumerate(data):
            for ue_raw, record in zip(ue_lists[i], period["measRecord"]):
                add(ue_raw, infos[i], 0, record, 1)
    else:
        raise ValueError(
            f"format 2 with {len(data)} measData items of {sorted({len(d['measRecord']) for d in data})} records "
            f"fits neither layout for {n_items} measCondUEidList items")
    reports = []
    for ue_raw, ue_infos, periods in per_ue.values():
        report: dict[str, Any] = {"measData": [{"measRecord": records} for records in periods if records],
                                  "measInfoList": ue_infos}
        if "granulPeriod" in value:
            report["granulPeriod"] = value["granulPeriod"]
        reports.append({"ueID": ue_raw, "measReport": report})
    return reports, unnamed, group


def _ue_report(
    item: Any,
    default_cols: list[tuple[int, int, int, int]] | None,
    by_id: dict[int, str],
    per_item: dict[int, list[tuple[int, int, int, int]]],
) -> tuple[Any, Any, list[tuple[int, int, int, int]]]:
    """UE key, its format-1 report and the report's measurement columns (its own
    measurement list, else the subscription's). Raises KeyError/ValueError for a malformed UE."""
    report = item["measReport"]
    infos = report.get("measInfoList")
    cols = default_cols if infos is None else _columns(infos, by_id, per_item)
    if cols is None:
        raise ValueError("no measurement list in the report or the subscription")
    return _ue_key(item["ueID"]), report, cols


def _gather(raw: Any, default_infos: list[Any] | None, by_id: dict[int, str], default_gran_ms: float) -> _Flat:
    """Walk an IM format-3 value into flat arrays; a malformed UE is skipped and counted.

    Per UE only the structure is checked (UE id, measurement list, record counts); the
    records of all UEs are then converted in one pass and split into scalar and
    distribution columns with numpy. Should a record value not convert (a pycrate REAL out
    of float range, say), the message is walked again UE by UE
    (:func:`_gather_per_record`), which drops just the UEs concerned.

    Raises ValueError when the message itself is not a format-3 report list.
    """
    flat = _Flat()
    ue_list = _format3_ue_list(raw, default_infos, flat)
    default_cols = _columns(default_infos, by_id) if default_infos is not None else None
    per_item: dict[int, list[tuple[int, int, int, int]]] = {}
    all_cols: list[tuple[int, int, int, int]] = []
    all_records: list[Any] = []
    counts: list[int] = []
    for item in ue_list:
        try:
            key, report, cols = _ue_report(item, default_cols, by_id, per_item)
            periods = report["measData"]
            records_of = [period["measRecord"] for period in periods]
            for records in records_of:
                if len(records) != len(cols):
                    raise ValueError(f"{len(records)} records for {len(cols)} measurement labels")
            gran = report.get("granulPeriod")
            gran_ms = float(gran) if gran is not None else default_gran_ms
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            flat.malformed += 1
            continue
        flat.keys.append(key)
        flat.gran.append(gran_ms)
        for records in records_of:
            all_cols.extend(cols)
            all_records.extend(records)
        counts.append(len(cols) * len(records_of))
    try:
        values = np.array([_record_value(k, v) for k, v in all_records], dtype=np.float64)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return _gather_per_record(raw, default_infos, by_id, default_gran_ms)
    cols_arr = np.array(all_cols, dtype=np.int64).reshape(-1, 4)
    ue = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    code = cols_arr[:, 0]
    scalar = code >= 0
    dist = code < _IGNORED
    flat.s_ue, flat.s_col, flat.s_val = ue[scalar], code[scalar], values[scalar]
    flat.d_ue, flat.d_kind, flat.d_val = ue[dist], code[dist], values[dist]
    flat.d_x, flat.d_y, flat.d_z = cols_arr[dist, 1], cols_arr[dist, 2], cols_arr[dist, 3]
    return flat


def _gather_per_record(
    raw: Any, default_infos: list[Any] | None, by_id: dict[int, str], default_gran_ms: float
) -> _Flat:
    """:func:`_gather` record by record: a UE whose record values do not convert is dropped.

    Raises ValueError when the message itself is not a format-3 report list.
    """
    flat = _Flat()
    ue_list = _format3_ue_list(raw, default_infos, flat)
    default_cols = _columns(default_infos, by_id) if default_infos is not None else None
    # The library hands out one value object per distinct measurement item (the memoised
    # decode of :mod:`.schema`), so each item's columns are worked out once per message.
    per_item: dict[int, list[tuple[int, int, int, int]]] = {}
    for item in ue_list:
        try:
            key, report, cols = _ue_report(item, default_cols, by_id, per_item)
            s_col: list[int] = []
            s_val: list[float] = []
            d_kind: list[int] = []
            d_x: list[int] = []
            d_y: list[int] = []
            d_z: list[int] = []
            d_val: list[float] = []
            for period in report["measData"]:
                records = period["measRecord"]
                if len(records) != len(cols):
                    raise ValueError(f"{len(records)} records for {len(cols)} measurement labels")
                for (code, bx, by, bz), (rkind, rvalue) in zip(cols, records):
                    if code == _IGNORED:
                        continue
                    if rkind == "integer":
                        v = float(rvalue)
                    elif rkind == "real":
                        v = real_to_float(rvalue)
                    else:
                        v = math.nan
                    if code >= 0:
                        s_col.append(code)
                        s_val.append(v)
                    else:
                        d_kind.append(code)
                        d_x.append(bx)
                        d_y.append(by)
                        d_z.append(bz)
                        d_val.append(v)
            gran = report.get("granulPeriod")
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            flat.malformed += 1
            continue
        index = len(flat.keys)
        flat.keys.append(key)
        flat.gran.append(float(gran) if gran is not None else default_gran_ms)
        flat.s_ue.extend([index] * len(s_col))
        flat.s_col.extend(s_col)
        flat.s_val.extend(s_val)
        flat.d_ue.extend([index] * len(d_kind))
        flat.d_kind.extend(d_kind)
        flat.d_x.extend(d_x)
        flat.d_y.extend(d_y)
        flat.d_z.extend(d_z)
        flat.d_val.extend(d_val)
    return flat


def _largest_bin(
    ue: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, count: np.ndarray, n: int, prefer_low_z: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per UE, the (x, y, z) of the bin with the largest count (counts of equal bins added).

    noValue counts rank below 0 so a labelled noValue record still names its bin. Ties:
    lowest Z when ``prefer_low_z`` (as ``np.argmax`` over MCS), else the last listed.

    Returns ``(has_bin bool [n], x, y, z int64 [n])``.
    """
    has = np.zeros(n, dtype=bool)
    out = np.zeros((3, n), dtype=np.int64)
    if ue.size == 0:
        return has, out[0], out[1], out[2]
    if ue.size == 1 or bool(np.all(ue[1:] > ue[:-1])):
        # one record per UE (the usual report): each UE's only bin is its largest
        has[ue] = True
        out[0, ue], out[1, ue], out[2, ue] = x, y, z
        return has, out[0], out[1], out[2]
    # merge duplicates of the same (ue, x, y, z) bin (several granularity periods)
    # one uint64 key per (ue, x, y, z): 16 bits each (bins beyond 65535 are invalid anyway)
    fields16 = [np.clip(a, 0, 0xFFFF).astype(np.uint64) for a in (ue, x, y, z)]
    packed = (fields16[0] << np.uint64(48)) | (fields16[1] << np.uint64(32)) | (fields16[2] << np.uint64(16)) | fields16[3]
    packed_uniq, inverse = np.unique(packed, return_inverse=True)
    inverse = inverse.reshape(-1)
    uniq = np.stack(
        [(packed_uniq >> np.uint64(s)) & np.uint64(0xFFFF) for s in (48, 32, 16, 0)], axis=1
    ).astype(np.int64)
    total = np.zeros(uniq.shape[0])
    present = np.zeros(uniq.shape[0], dtype=bool)
    finite = np.isfinite(count)
    np.add.at(total, inverse, np.where(finite, count, 0.0))
    np.logical_or.at(present, inverse, finite)
    score = np.where(present, total, -1.0)
    order_z = uniq[:, 3] if prefer_low_z else -np.arange(uniq.shape[0])
    # sort by ue, then score ascending, then z descending: the last row of each UE wins
    order = np.lexsort((-order_z, score, uniq[:, 0]))
    sorted_ue = uniq[order, 0]
    last = np.r_[sorted_ue[1:] != sorted_ue[:-1], True]
    winners = uniq[order[last]]
    has[winners[:, 0]] = True
    out[:, winners[:, 0]] = winners[:, 1:].T
    return has, out[0], out[1], out[2]


def _imputed_sinr_db(cqi: np.ndarray, cqi_table: int) -> np.ndarray:
    """SINR (dB) a CQI stands for; CQI 0 -> CQI-1 threshold − CQI0_MARGIN_DB; clipped."""
    thresholds = default_cqi_sinr_db(cqi_table).copy()
    thresholds[0] = thresholds[1] - CQI0_MARGIN_DB
    lo, hi = SINR_RANGE_DB
    return np.clip(thresholds[np.clip(cqi, 0, 15)], lo, hi)


def reports_from_flat(flat: _Flat, mcs_table: int) -> tuple[LinkReports, DropCounts, tuple[str, ...]]:
    """Vectorised: flat record lists -> (valid LinkReports, drops, imputed feature names)."""
    n = len(flat.keys)
    ue_id = np.asarray(flat.keys, dtype=np.int64)
    gran_ms = np.asarray(flat.gran, dtype=np.float64)
    s_ue = np.asarray(flat.s_ue, dtype=np.int64)
    s_col = np.asarray(flat.s_col, dtype=np.int64)
    s_val = np.asarray(flat.s_val, dtype=np.float64)
    scalar = np.full((n, _N_SCALAR), np.nan)
    # reals: last period with a value wins (numpy keeps the last of repeated assignments)
    has_value = np.isfinite(s_val)
    scalar[s_ue[has_value], s_col[has_value]] = s_val[has_value]
    # counters: sum over the periods that have a value
    is_counter = np.isin(s_col, _COUNTER_COLUMNS) & has_value
    if np.any(is_counter):
        sums = np.zeros((n, _N_SCALAR))
        np.add.at(sums, (s_ue[is_counter], s_col[is_counter]), s_val[is_counter])
        seen = np.zeros((n, _N_SCALAR), dtype=bool)
        seen[s_ue[is_counter], s_col[is_counter]] = True
        scalar = np.where(seen, sums, scalar)
    # which measurements appeared at all (value or noValue) per column, over the message
    listed = np.zeros(_N_SCALAR, dtype=bool)
    listed[np.unique(s_col)] = True

    d_ue = np.asarray(flat.d_ue, dtype=np.int64)
    d_kind = np.asarray(flat.d_kind, dtype=np.int64)
    d_x = np.asarray(flat.d_x, dtype=np.int64)
    d_y = np.asarray(flat.d_y, dtype=np.int64)
    d_z = np.asarray(flat.d_z, dtype=np.int64)
    d_val = np.asarray(flat.d_val, dtype=np.float64)
    is_cqi = d_kind == _CQI_DIST
    is_mcs = d_kind == _MCS_DIST
    has_cqi, cqi_x, ri, cqi_table_bin = _largest_bin(
        d_ue[is_cqi], d_x[is_cqi], d_y[is_cqi], d_z[is_cqi], d_val[is_cqi], n, prefer_low_z=False
    )
    has_mcs, rank_bin, _mcs_table_bin, mcs_z = _largest_bin(
        d_ue[is_mcs], d_x[is_mcs], d_y[is_mcs], d_z[is_mcs], d_val[is_mcs], n, prefer_low_z=True
    )
    cqi = cqi_x - 1
    tables = np.unique(cqi_table_bin[has_cqi])
    valid_tables = tables[(tables >= 1) & (tables <= 3)]
    cqi_table = int(valid_tables[0]) if valid_tables.size else 1
    in_table = has_cqi & (cqi_table_bin == cqi_table)

    imputed: set[str] = set()
    # HARQ, first transmissions (fall back to all transmissions)
    tot = scalar[:, _C_TOT_I]
    err = scalar[:, _C_ERR_I]
    fallback = ~np.isfinite(tot) & ~listed[_C_TOT_I]
    if np.any(fallback):
        tot = np.where(fallback, scalar[:, _C_TOT], tot)
        err = np.where(fallback, scalar[:, _C_ERR], err)
        if not (listed[_C_TOT] and listed[_C_ERR]):
            imputed.add("prev_bler")
    tot = np.where(np.isfinite(tot), tot, 0.0)
    err = np.where(np.isfinite(err), err, 0.0)
    n_nack = err.astype(np.int64)
    n_ack = (tot - err).astype(np.int64)

    thp = scalar[:, _C_THP]
    bits = np.where(np.isfinite(thp), thp, 0.0) * gran_ms
    bits_ok = np.isfinite(bits) & (np.abs(bits) < 2.0**62)
    # a throughput no int64 holds becomes -1 bits, which validate() drops
    served_bits = np.where(bits_ok, np.rint(np.where(bits_ok, bits, 0.0)), -1.0).astype(np.int64)

    cqi_safe = np.where(in_table, cqi, 0)  # out-of-range values stay and are dropped by validate()
    cqi_index = np.clip(cqi_safe, 0, 15)  # for table look-ups only
    ri_safe = np.where(in_table, ri, 1)
    fallback_sinr = _imputed_sinr_db(cqi_index, cqi_table)
    layer = np.arange(MAX_RANK)[None, :]
    used = layer < ri_safe[:, None]
    sinr = scalar[:, _C_SINR:_C_SINR + MAX_RANK]
    missing_sinr = used & ~np.isfinite(sinr)
    if np.any(missing_sinr[in_table]):
        columns = np.flatnonzero(np.any(missing_sinr[in_table], axis=0))
        imputed.update(FEATURE_NAMES[int(c)] for c in columns)
    sinr = np.where(missing_sinr, fallback_sinr[:, None], sinr)
    sinr = np.where(used, sinr, np.nan)

    snr = scalar[:, _C_SNR]
    missing = ~np.isfinite(snr)
    if np.any(missing[in_table]):
        imputed.add("csirs_snr")
    snr = np.where(missing, fallback_sinr, snr)
    olla = scalar[:, _C_OLLA]
    if np.any(~np.isfinite(olla[in_table])):
        imputed.add("olla_offset")
    olla = np.where(np.isfinite(olla), olla, 0.0)
    age = scalar[:, _C_AGE]
    if np.any(~np.isfinite(age[in_table])):
        imputed.add("csi_age")
    age = np.where(np.isfinite(age), age, 0.0)

    table_mcs = np.maximum(cqi_to_mcs(cqi_index, cqi_table, mcs_table), 0)
    rank = np.where(has_mcs, rank_bin, ri_safe)
    mcs = np.where(has_mcs, mcs_z - 1, table_mcs)

    reports = LinkReports(
        ue_id=ue_id, ri=ri_safe, cqi=cqi_safe, sinr_layers_db=sinr, csirs_snr_db=snr, rank=rank, mcs=mcs,
        olla_offset_db=olla, n_ack=n_ack, n_nack=n_nack, served_bits=served_bits, csi_age_ms=age,
        cqi_table=cqi_table,
    )
    ok = reports.validate() & in_table & (n_ack >= 0)
    drops = DropCounts(
        malformed=flat.malformed,
        no_cqi=int(np.count_nonzero(~in_table)),
        out_of_range=int(np.count_nonzero(in_table & ~ok)),
    )
    if not np.all(ok):
        reports = reports.select(ok)
    ordered = tuple(name for name in FEATURE_NAMES if name in imputed)
    return reports, drops, ordered


def _meas_infos_raw(names: Iterable[str] | None) -> list[Any] | None:
    if names is None:
        return None
    return [{"measType": ("measName", name), "labelInfoList": [{"measLabel": {"noLabel": "true"}}]} for name in names]


def decode_kpm_indication_detailed(
    header: bytes,
    message: bytes,
    codec: KpmCodec = DEFAULT_CODEC,
    mcs_table: int = 1,
    granularity_period_ms: float = 0.0,
    subscribed_names: Iterable[str] | None = None,
    meas_id_names: dict[int, str] | None = None,
) -> KpmDecodeResult:
    """Decode a KPM indication (header + format-3 or format-2 message) into :class:`LinkReports`.

    Args:
        header: E2SM-KPM indication header bytes (format 1).
        message: E2SM-KPM indication message bytes (format 3, or format 2: see :func:`_format2_ue_list`).
        codec: the node's KPM flavour (:func:`~lighttune_e2.kpm.codec.codec_for_ran_function`).
        mcs_table: the node's PDSCH MCS table (1..3), for imputing the MCS from the CQI.
        granularity_period_ms: period used for throughput -> bits when a UE report carries no
            ``granulPeriod`` (ms).
        subscribed_names: the subscribed measurement names, in order, for UE reports that
            omit their measurement list (noLabel records in that order), and for the items
            of a format-2 message that carry an empty ``measName`` (by position).
        meas_id_names: measurement id -> name, for reports that identify by ``measID``, on top
            of the ids the node advertised (``codec.measurement_ids``).

    Returns:
        :class:`KpmDecodeResult` (header, valid reports, drops by reason, imputed features).

    Raises:
        E2DecodeError: the bytes are not a KPM header / format-3 message of any version.
    """
    hdr_outcome = codec.decode_indication_header_outcome(header)
    hdr = hdr_outcome.value
    by_id = dict(codec.measurement_ids)
    by_id.update(meas_id_names or {})
    default_infos = _meas_infos_raw(subscribed_names)

    def parse(raw: Any) -> _Flat:
        return _gather(raw, default_infos, by_id, float(granularity_period_ms))

    outcome = codec.decode_indication_message_outcome(message, parse)
    flat = outcome.value
    try:
        reports, drops, imputed = reports_from_flat(flat, mcs_table)
    except ValueError as exc:  # a record shape no LinkReports can hold
        raise E2DecodeError(f"KPM indication: {exc}") from exc
    gran = float(np.median(flat.gran)) if flat.gran else float(granularity_period_ms)
    return KpmDecodeResult(hdr, reports, drops, imputed, gran,
                           hdr_outcome.trailing_octets + outcome.trailing_octets, flat.unnamed, flat.group_records)


def decode_kpm_indication(
    header: bytes,
    message: bytes,
    codec: KpmCodec = DEFAULT_CODEC,
    mcs_table: int = 1,
    granularity_period_ms: float = 0.0,
    subscribed_names: Iterable[str] | None = None,
    meas_id_names: dict[int, str] | None = None,
) -> tuple[IndicationHeader, LinkReports, int, tuple[str, ...]]:
    """``(header, LinkReports, n_dropped, imputed_features)`` of a KPM format-3 indication.

    The same record our own service model yields; see
    :func:`decode_kpm_indication_detailed` for the arguments and the module docstring for
    the measurement table and the imputation rule. ``imputed_features`` names entries of
    :data:`lighttune_core.features.FEATURE_NAMES` that were imputed for at least one UE.

    Raises:
        E2DecodeError: undecodable header or message.
    """
    result = decode_kpm_indication_detailed(
        header, message, codec, mcs_table, granularity_period_ms, subscribed_names, meas_id_names
    )
    return result.header, result.reports, result.drops.total, result.imputed_features


class KpmNodeDecoder:
    """Decodes one node's KPM indications; counts and logs failures, never raises on bad input.

    Keeps, per node, which features were imputed (the union over its indications), so the
    xApp can say e.g. "node gnb-7: csirs_snr, olla_offset, csi_age imputed".

    Args:
        node_id: the node's name in logs and stats.
        codec: its KPM flavour (``KpmSubscriptionPlan.codec``).
        subscribed_names: the subscribed names, in order (for reports without a list).
        granularity_period_ms: the subscribed granularity period, ms.
        mcs_table: the node's MCS table (imputing MCS from CQI).
    """

    def __init__(
        self,
        node_id: str,
        codec: KpmCodec = DEFAULT_CODEC,
        subscribed_names: Iterable[str] | None = None,
        granularity_period_ms: float = 0.0,
        mcs_table: int = 1,
    ) -> None:
        self.node_id = node_id
        self.codec = codec
        self.subscribed_names = None if subscribed_names is None else tuple(subscribed_names)
        self.granularity_period_ms = float(granularity_period_ms)
        self.mcs_table = int(mcs_table)
        self.imputed_features: set[str] = set()
        self.n_indications = 0
        self.n_decode_errors = 0
        self.n_ue_reports = 0
        self.n_dropped = DropCounts()
        self.n_trailing_pdus = 0
        self.n_trailing_octets = 0
        self.n_unnamed_measurements = 0
        self.n_group_records = 0

    def decode(self, header: bytes, message: bytes) -> KpmDecodeResult | None:
        """The decoded indication, or ``None`` (counted, logged) when it cannot be decoded."""
        try:
            result = decode_kpm_indication_detailed(
                header, message, self.codec, self.mcs_table, self.granularity_period_ms, self.subscribed_names
            )
        except E2DecodeError as exc:
            self.n_decode_errors += 1
            _log.warning("node %s: KPM indication dropped: %s", self.node_id, str(exc)[:300])
            return None
        self.n_indications += 1
        self.n_ue_reports += len(result.reports)
        if result.trailing_octets:
            self._count_trailing(result.trailing_octets)
        if result.unnamed_measurements and not self.n_unnamed_measurements:
            _log.warning("node %s: KPM format-2 report names %d measurement(s) with an empty measName that the "
                         "subscription does not resolve by position: their records are ignored", self.node_id,
                         result.unnamed_measurements)
        if result.group_records and not self.n_group_records:
            _log.info("node %s: KPM format-2 records of conditions matched by several UEs are group values, "
                      "not per-UE: ignored", self.node_id)
        self.n_unnamed_measurements += result.unnamed_measurements
        self.n_group_records += result.group_records
        d = result.drops
        self.n_dropped = DropCounts(
            self.n_dropped.malformed + d.malformed,
            self.n_dropped.no_cqi + d.no_cqi,
            self.n_dropped.out_of_range + d.out_of_range,
        )
        new = set(result.imputed_features) - self.imputed_features
        if new:
            self.imputed_features |= new
            _log.info("node %s: KPM report lacks measurements; imputing %s", self.node_id,
                      ", ".join(n for n in FEATURE_NAMES if n in self.imputed_features))
        return result

    def _count_trailing(self, octets: int) -> None:
        """Count an indication accepted with octets after its PDU(s); log the 1st, 10th, 100th, ..."""
        self.n_trailing_pdus += 1
        self.n_trailing_octets += octets
        count = self.n_trailing_pdus
        if count == 10 ** (len(str(count)) - 1):
            _log.warning(
                "node %s: KPM indication accepted with %d octet(s) after the complete PDU (ignored, as other "
                "decoders do); %d such indication(s), %d octets so far", self.node_id, octets, count,
                self.n_trailing_octets,
            )

    def stats(self) -> dict[str, Any]:
        """Counters and the imputed features of this node (JSON-ready)."""
        return {
            "indications": self.n_indications,
            "indications_with_trailing_octets": self.n_trailing_pdus,
            "trailing_octets": self.n_trailing_octets,
            "unnamed_measurements": self.n_unnamed_measurements,
            "group_records": self.n_group_records,
            "decode_errors": self.n_decode_errors,
            "ue_reports": self.n_ue_reports,
            "dropped": dataclasses.asdict(self.n_dropped),
            "imputed_features": [n for n in FEATURE_NAMES if n in self.imputed_features],
        }
