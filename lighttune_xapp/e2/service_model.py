"""LT-LINKADAPT service model: protobuf payloads <-> numpy / :class:`LinkReports`.

The messages are defined (with unit and range of every field) in ``lt_sm.proto`` next to
this module; ``lt_sm_pb2.py`` is generated from it with ``protoc --python_out``.

Identity of the service model:

- RAN function short name ``LT-LINKADAPT``, default RAN function id 200,
- OID ``1.3.6.1.4.1.65535.200.1.1`` (our own, experimental arc; see ``lt_sm.proto``),
- version 1.0.

Layout: per-UE data is a *struct of arrays* — one packed repeated field per
:class:`~lighttune_core.report.LinkReports` column — so encoding is one ``extend`` per column
and decoding one ``numpy.array`` per column; there is no Python loop over UEs.

Bad input: unparsable bytes raise :class:`~lighttune_xapp.e2.errors.E2DecodeError`; UEs
whose fields are missing (column too short) or out of range are dropped and counted
(``n_dropped``), never the whole cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError as _PbDecodeError
from google.protobuf.message import Message as _PbMessage

from lighttune_core.report import MAX_CQI, MAX_RANK, LinkReports
from lighttune_xapp.e2 import lt_sm_pb2 as pb
from lighttune_xapp.e2.errors import E2DecodeError, E2EncodeError

SM_SHORT_NAME = "LT-LINKADAPT"
SM_OID = "1.3.6.1.4.1.65535.200.1.1"
SM_VERSION = (1, 0)
DEFAULT_RAN_FUNCTION_ID = 200
MAX_VALID_PERIODS = 1024
MAX_CELL_ID = 2**36 - 1

REJECT_NONE = pb.REJECT_REASON_NONE
REJECT_UNKNOWN_UE = pb.REJECT_REASON_UNKNOWN_UE
REJECT_RI_OUT_OF_RANGE = pb.REJECT_REASON_RI_OUT_OF_RANGE
REJECT_CQI_OUT_OF_RANGE = pb.REJECT_REASON_CQI_OUT_OF_RANGE
REJECT_VALIDITY_OUT_OF_RANGE = pb.REJECT_REASON_VALIDITY_OUT_OF_RANGE
REJECT_MISSING_FIELD = pb.REJECT_REASON_MISSING_FIELD
REJECT_UNKNOWN_CELL = pb.REJECT_REASON_UNKNOWN_CELL


def _parse(cls: type[_PbMessage], data: bytes, what: str) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise E2DecodeError(f"{what} must be bytes, got {type(data).__name__}")
    msg = cls()
    try:
        msg.ParseFromString(bytes(data))
    except (_PbDecodeError, ValueError, RuntimeError, TypeError) as exc:
        raise E2DecodeError(f"{what}: not a valid {cls.__name__}: {exc}") from None
    return msg


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- setup / subscription


@dataclass(frozen=True)
class RanFunctionDefinition:
    """What a node's LT-LINKADAPT function offers (sent in E2 Setup).

    ``report_periods_ms``: supported CSI-RS periods, ms; ``max_ues_per_indication``: UEs of one
    cell per indication; ``max_rank``: 1..4; ``cqi_table``: 1..3.
    """

    report_periods_ms: tuple[int, ...] = (10, 20, 40, 80, 160)
    max_ues_per_indication: int = 1024
    max_rank: int = MAX_RANK
    control_supported: bool = True
    cqi_table: int = 1
    description: str = "LightTune per-UE link-adaptation reports and RI/CQI control"
    short_name: str = SM_SHORT_NAME
    oid: str = SM_OID
    version: tuple[int, int] = SM_VERSION

    def __post_init__(self) -> None:
        for p in self.report_periods_ms:
            _check_int("RanFunctionDefinition.report_periods_ms[]", p, 1, 10240)
        _check_int("RanFunctionDefinition.max_ues_per_indication", self.max_ues_per_indication, 1, 65535)
        _check_int("RanFunctionDefinition.max_rank", self.max_rank, 1, MAX_RANK)
        _check_int("RanFunctionDefinition.cqi_table", self.cqi_table, 1, 3)
        if len(self.description) > 150:
            raise ValueError("RanFunctionDefinition.description must be at most 150 characters")
        object.__setattr__(self, "report_periods_ms", tuple(int(p) for p in self.report_periods_ms))


def encode_ran_function_definition(d: RanFunctionDefinition) -> bytes:
    """Serialise a :class:`RanFunctionDefinition` (E2AP RANfunctionDefinition octets)."""
    m = pb.RanFunctionDefinition(
        short_name=d.short_name, description=d.description, version_major=d.version[0],
        version_minor=d.version[1], oid=d.oid, max_ues_per_indication=d.max_ues_per_indication,
        max_rank=d.max_rank, control_supported=d.control_supported, cqi_table=d.cqi_table,
    )
    m.report_periods_ms.extend(d.report_periods_ms)
    return m.SerializeToString()


def decode_ran_function_definition(data: bytes) -> RanFunctionDefinition:
    """Parse RANfunctionDefinition octets; E2DecodeError if not ours or out of range."""
    m = _parse(pb.RanFunctionDefinition, data, "RANfunctionDefinition")
    if m.short_name != SM_SHORT_NAME:
        raise E2DecodeError(f"RANfunctionDefinition.short_name is {m.short_name!r}, expected {SM_SHORT_NAME!r}")
    if m.version_major != SM_VERSION[0]:
        raise E2DecodeError(f"RANfunctionDefinition.version_major {m.version_major} is not supported")
    try:
        return RanFunctionDefinition(
            tuple(m.report_periods_ms), m.max_ues_per_indication, m.max_rank, m.control_supported,
            m.cqi_table, m.description, m.short_name, m.oid, (m.version_major, m.version_minor),
        )
    except ValueError as exc:
        raise E2DecodeError(str(exc)) from None


@dataclass(frozen=True)
class EventTrigger:
    """Report every ``every_n_csirs_periods`` CSI-RS periods (1..1024) or every ``period_ms`` ms
    (1..60000); exactly one is set."""

    every_n_csirs_periods: int | None = 1
    period_ms: int | None = None

    def __post_init__(self) -> None:
        if (self.every_n_csirs_periods is None) == (self.period_ms is None):
            raise ValueError("EventTrigger needs exactly one of every_n_csirs_periods and period_ms")
        if self.every_n_csirs_periods is not None:
            _check_int("EventTrigger.every_n_csirs_periods", self.every_n_csirs_periods, 1, 1024)
        if self.period_ms is not None:
            _check_int("EventTrigger.period_ms", self.period_ms, 1, 60000)


def encode_event_trigger(t: EventTrigger) -> bytes:
    """Serialise an :class:`EventTrigger` (RICeventTriggerDefinition octets)."""
    if t.period_ms is not None:
        return pb.EventTrigger(period_ms=t.period_ms).SerializeToString()
    return pb.EventTrigger(every_n_csirs_periods=t.every_n_csirs_periods).SerializeToString()


def decode_event_trigger(data: bytes) -> EventTrigger:
    """Parse RICeventTriggerDefinition octets; E2DecodeError if unset or out of range."""
    m = _parse(pb.EventTrigger, data, "RICeventTriggerDefinition")
    which = m.WhichOneof("trigger")
    try:
        if which == "period_ms":
            return EventTrigger(None, m.period_ms)
        if which == "every_n_csirs_periods":
            return EventTrigger(m.every_n_csirs_periods, None)
    except ValueError as exc:
        raise E2DecodeError(str(exc)) from None
    raise E2DecodeError("RICeventTriggerDefinition sets no trigger")


@dataclass(frozen=True)
class ActionDefinition:
    """Report action: ``max_ues`` caps UEs per indication (0 = the node's maximum)."""

    max_ues: int = 0
    format_version: int = 1

    def __post_init__(self) -> None:
        _check_int("ActionDefinition.max_ues", self.max_ues, 0, 65535)
        _check_int("ActionDefinition.format_version", self.format_version, 1, 1)


def encode_action_definition(a: ActionDefinition) -> bytes:
    """Serialise an :class:`ActionDefinition` (RICactionDefinition octets)."""
    return pb.ActionDefinition(format_version=a.format_version, max_ues=a.max_ues).SerializeToString()


def decode_action_definition(data: bytes) -> ActionDefinition:
    """Parse RICactionDefinition octets; an empty payload means the defaults."""
    m = _parse(pb.ActionDefinition, data, "RICactionDefinition")
    try:
        return ActionDefinition(m.max_ues, m.format_version or 1)
    except ValueError as exc:
        raise E2DecodeError(str(exc)) from None


# --------------------------------------------------------------------------- indication


@dataclass(frozen=True)
class IndicationHeader:
    """Cell (NR cell identity, 0..2**36-1), CSI-RS period index, time (ms) and CQI table."""

    cell_id: int
    period_index: int
    time_ms: int
    cqi_table: int = 1
    version: int = SM_VERSION[0]


_INT_COLS = ("ue_id", "ri", "cqi", "rank", "mcs", "n_ack", "n_nack", "served_bits")
_FLOAT_COLS = ("csirs_snr_db", "olla_offset_db", "csi_age_ms")
_UINT32_MAX = 2**32 - 1


def encode_indication(cell_id: int, period: int, time_ms: int, reports: LinkReports) -> tuple[bytes, bytes]:
    """Serialise one cell's reports of one period.

    Args:
        cell_id: NR cell identity, 0 .. 2**36 - 1.
        period: CSI-RS period index, >= 0.
        time_ms: end of the period, ms, >= 0.
        reports: N UEs; integer columns must fit their protobuf types (uint32, served_bits
            uint64), which out-of-range values (negative counts, ids >= 2**32) do not.

    Returns:
        (RICindicationHeader octets, RICindicationMessage octets). SINR and SNR are carried as
        float32 (rounding < 1e-5 dB in the -30..60 dB range).

    Raises:
        E2EncodeError: a value does not fit its wire type.
    """
    _check_int("cell_id", cell_id, 0, MAX_CELL_ID)
    _check_int("period", period, 0, 2**64 - 1)
    _check_int("time_ms", time_ms, 0, 2**64 - 1)
    hdr = pb.IndicationHeader(
        version=SM_VERSION[0], cell_id=cell_id, period_index=period, time_ms=time_ms, cqi_table=reports.cqi_table
    )
    msg = pb.IndicationMessage()
    for name in _INT_COLS:
        col: np.ndarray = getattr(reports, name)
        hi = 2**63 - 1 if name == "served_bits" else _UINT32_MAX
        if col.size and (col.min() < 0 or col.max() > hi):
            raise E2EncodeError(f"LinkReports.{name} has values outside [0, {hi}]")
        getattr(msg, name).extend(col.tolist())
    for name in _FLOAT_COLS:
        getattr(msg, name).extend(getattr(reports, name).astype(np.float32).tolist())
    msg.sinr_layers_db.extend(reports.sinr_layers_db.astype(np.float32).ravel().tolist())
    return hdr.SerializeToString(), msg.SerializeToString()


def _column(values: Any, n: int, dtype: type, fill: float | int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A repeated field as a length-``n`` array padded with ``fill``, and the mask of present rows."""
    if dtype is np.int64:  # wire columns are unsigned: values above int64 range are invalid
        wide = np.array(values, dtype=np.uint64)
        arr = wide.astype(np.int64)
        arr[wide > np.uint64(2**63 - 1)] = -1
    else:
        arr = np.array(values, dtype=dtype)
    if arr.shape[0] > n:
        raise E2DecodeError(f"IndicationMessage.{name} has {arr.shape[0]} values for {n} UEs")
    present = np.arange(n) < arr.shape[0]
    if arr.shape[0] < n:
        arr = np.concatenate([arr, np.full(n - arr.shape[0], fill, dtype=dtype)])
    return arr, present


def decode_indication(header: bytes, message: bytes) -> tuple[IndicationHeader, LinkReports, int]:
    """Parse one indication into a header and the valid UEs' :class:`LinkReports`.

    Returns:
        (header, reports of the M <= N valid UEs, n_dropped = N - M). A UE is dropped when a
        column is too short to reach it or when ``LinkReports.validate()`` rejects it.

    Raises:
        E2DecodeError: unparsable bytes, an unsupported version or CQI table, or a column
            longer than ``ue_id`` (the cell is then unreadable as a whole).
    """
    h = _parse(pb.IndicationHeader, header, "RICindicationHeader")
    if h.version != SM_VERSION[0]:
        raise E2DecodeError(f"RICindicationHeader.version {h.version} is not supported")
    if h.cqi_table not in (1, 2, 3):
        raise E2DecodeError(f"RICindicationHeader.cqi_table must be 1..3, got {h.cqi_table}")
    hdr = IndicationHeader(h.cell_id, h.period_index, h.time_ms, h.cqi_table, h.version)
    m = _parse(pb.IndicationMessage, message, "RICindicationMessage")
    ue_id = np.array(m.ue_id, dtype=np.int64)
    n = ue_id.shape[0]
    present = np.ones(n, dtype=bool)
    cols: dict[str, np.ndarray] = {"ue_id": ue_id}
    for name in _INT_COLS[1:]:
        cols[name], ok = _column(getattr(m, name), n, np.int64, -1, name)
        present &= ok
    for name in _FLOAT_COLS:
        cols[name], ok = _column(getattr(m, name), n, np.float64, np.nan, name)
        present &= ok
    sinr, _ = _column(m.sinr_layers_db, n * MAX_RANK, np.float64, np.nan, "sinr_layers_db")
    cols["sinr_layers_db"] = sinr.reshape(n, MAX_RANK)
    reports = LinkReports(**cols, cqi_table=int(h.cqi_table))
    keep = present & reports.validate()
    n_dropped = int(n - np.count_nonzero(keep))
    if n_dropped:
        reports = reports.select(keep)
    return hdr, reports, n_dropped


# --------------------------------------------------------------------------- control


@dataclass(frozen=True)
class ControlHeader:
    """Cell the decisions are for and the report period they answer."""

    cell_id: int
    period_index: int = 0
    version: int = SM_VERSION[0]


@dataclass(frozen=True)
class ControlDecisions:
    """Per-UE decisions (M UEs): ``ue_id``, ``ri`` (1..4), ``cqi`` (0..15) and
    ``valid_periods`` (1..1024), all int64 [M]."""

    ue_id: np.ndarray
    ri: np.ndarray
    cqi: np.ndarray
    valid_periods: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.ue_id.shape[0])


def _as_int_column(name: str, values: Any, n: int | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0 and n is not None:
        arr = np.full(n, arr)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise ValueError(f"{name} must be a 1-D array of {n} values, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got {arr.dtype}")
    return arr.astype(np.int64)


def encode_control(
    cell_id: int,
    ue_id: np.ndarray,
    ri: np.ndarray,
    cqi: np.ndarray,
    valid_periods: np.ndarray | int = 1,
    period_index: int = 0,
) -> tuple[bytes, bytes]:
    """Serialise per-UE RI/CQI decisions of one cell.

    Args:
        cell_id: NR cell identity, 0 .. 2**36 - 1.
        ue_id, ri, cqi: int [M]; ri in 1..4, cqi in 0..15.
        valid_periods: int [M] or a scalar for all UEs, 1..1024 CSI-RS periods.
        period_index: the report period the decisions answer.

    Returns:
        (RICcontrolHeader octets, RICcontrolMessage octets).

    Raises:
        ValueError: naming the array that has the wrong shape or a value out of range.
    """
    _check_int("cell_id", cell_id, 0, MAX_CELL_ID)
    _check_int("period_index", period_index, 0, 2**64 - 1)
    ue = _as_int_column("ue_id", ue_id, None)
    n = ue.shape[0]
    ri_a = _as_int_column("ri", ri, n)
    cqi_a = _as_int_column("cqi", cqi, n)
    vp = _as_int_column("valid_periods", valid_periods, n)
    for name, arr, lo, hi in (
        ("ue_id", ue, 0, _UINT32_MAX), ("ri", ri_a, 1, MAX_RANK), ("cqi", cqi_a, 0, MAX_CQI),
        ("valid_periods", vp, 1, MAX_VALID_PERIODS),
    ):
        if n and (arr.min() < lo or arr.max() > hi):
            raise ValueError(f"{name} must lie in [{lo}, {hi}]")
    hdr = pb.ControlHeader(version=SM_VERSION[0], cell_id=cell_id, period_index=period_index)
    msg = pb.ControlMessage()
    msg.ue_id.extend(ue.tolist())
    msg.ri.extend(ri_a.tolist())
    msg.cqi.extend(cqi_a.tolist())
    msg.valid_periods.extend(vp.tolist())
    return hdr.SerializeToString(), msg.SerializeToString()


def decode_control(header: bytes, message: bytes) -> tuple[ControlHeader, ControlDecisions, ControlDecisions]:
    """Parse a control request.

    Returns:
        (header, accepted decisions, rejected decisions). A UE is rejected when a column is
        too short to reach it or a value is out of range; the rejected ones are returned
        (with the reason computable by :func:`control_reject_reasons`) so the node can answer
        every UE in its :class:`ControlOutcome`.

    Raises:
        E2DecodeError: unparsable bytes, unsupported version, or a column longer than ue_id.
    """
    h = _parse(pb.ControlHeader, header, "RICcontrolHeader")
    if h.version != SM_VERSION[0]:
        raise E2DecodeError(f"RICcontrolHeader.version {h.version} is not supported")
    m = _parse(pb.ControlMessage, message, "RICcontrolMessage")
    ue = np.array(m.ue_id, dtype=np.int64)
    n = ue.shape[0]
    ri, ri_ok = _column(m.ri, n, np.int64, -1, "ri")
    cqi, cqi_ok = _column(m.cqi, n, np.int64, -1, "cqi")
    vp, vp_ok = _column(m.valid_periods, n, np.int64, -1, "valid_periods")
    reasons = control_reject_reasons(ri, cqi, vp, ri_ok & cqi_ok & vp_ok)
    ok = reasons == REJECT_NONE
    acc = ControlDecisions(ue[ok], ri[ok], cqi[ok], vp[ok])
    rej = ControlDecisions(ue[~ok], ri[~ok], cqi[~ok], vp[~ok])
    return ControlHeader(h.cell_id, h.period_index, h.version), acc, rej


def control_reject_reasons(
    ri: np.ndarray, cqi: np.ndarray, valid_periods: np.ndarray, present: np.ndarray, max_rank: int = MAX_RANK
) -> np.ndarray:
    """Reject reason per UE, int64 [M]: REJECT_NONE where the decision is usable.

    Precedence: missing field, RI out of 1..max_rank, CQI out of 0..15, validity out of 1..1024.
    """
    reason = np.full(ri.shape, REJECT_NONE, dtype=np.int64)
    reason = np.where((valid_periods < 1) | (valid_periods > MAX_VALID_PERIODS), REJECT_VALIDITY_OUT_OF_RANGE, reason)
    reason = np.where((cqi < 0) | (cqi > MAX_CQI), REJECT_CQI_OUT_OF_RANGE, reason)
    reason = np.where((ri < 1) | (ri > max_rank), REJECT_RI_OUT_OF_RANGE, reason)
    return np.where(~present, REJECT_MISSING_FIELD, reason)


@dataclass(frozen=True)
class ControlOutcome:
    """Per-UE result of a control request: ``ue_id`` int64 [M], ``accepted`` bool [M],
    ``reason`` int64 [M] (``REJECT_*`` codes, REJECT_NONE where accepted)."""

    ue_id: np.ndarray
    accepted: np.ndarray
    reason: np.ndarray


def encode_control_outcome(ue_id: np.ndarray, accepted: np.ndarray, reason: np.ndarray) -> bytes:
    """Serialise a :class:`ControlOutcome` (RICcontrolOutcome octets).

    Raises:
        ValueError: arrays of different lengths, or an unknown reason code.
    """
    ue = _as_int_column("ue_id", ue_id, None)
    n = ue.shape[0]
    acc = np.asarray(accepted, dtype=bool)
    rs = _as_int_column("reason", reason, n)
    if acc.shape != (n,):
        raise ValueError(f"accepted must have shape ({n},), got {acc.shape}")
    known = set(pb.RejectReason.values())
    if n and not set(np.unique(rs).tolist()) <= known:
        raise ValueError(f"reason holds codes outside {sorted(known)}")
    m = pb.ControlOutcome()
    m.ue_id.extend(ue.tolist())
    m.accepted.extend(acc.tolist())
    m.reason.extend(rs.tolist())
    return m.SerializeToString()


def decode_control_outcome(data: bytes) -> ControlOutcome:
    """Parse RICcontrolOutcome octets; E2DecodeError if the columns disagree in length."""
    m = _parse(pb.ControlOutcome, data, "RICcontrolOutcome")
    ue = np.array(m.ue_id, dtype=np.int64)
    acc = np.array(m.accepted, dtype=bool)
    rs = np.array(m.reason, dtype=np.int64)
    if not ue.shape == acc.shape == rs.shape:
        raise E2DecodeError("RICcontrolOutcome columns ue_id, accepted, reason differ in length")
    return ControlOutcome(ue, acc, rs)
