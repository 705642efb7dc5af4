"""LT-LINKADAPT service model: protobuf payloads <-> numpy / :class:`LinkReports`.

The messages are defined (with dtype, byte order, shape, unit and range of every field) in
``lt_sm.proto`` next to this module; ``lt_sm_pb2.py`` is generated from it with
``protoc --python_out`` (protoc 3.21.12; the generated module loads with protobuf 3.20.3 to 5.x).

Identity of the service model:

- RAN function short name ``LT-LINKADAPT``, default RAN function id 200,
- OID ``1.3.6.1.4.1.65535.200.1.2`` (our own, experimental arc; see ``lt_sm.proto``),
- version 2.0 (protobuf package ``lighttune.e2sm.linkadapt.v2``).

Layout: per-UE data is a *struct of arrays*. Each :class:`~lighttune_core.report.LinkReports`
column travels as one ``bytes`` field holding a little-endian fixed-width array
(``INDICATION_COLUMNS``, ``CONTROL_COLUMNS``, ``OUTCOME_COLUMNS``): encoding is one
``astype(dtype).tobytes()`` per column and decoding one ``numpy.frombuffer`` per column, so
the protobuf runtime parses a dozen fields per message whatever the number of UEs, and
there is no Python work per UE.

Bad input: unparsable bytes, or a column whose byte length is not N x its element width
(the UE boundaries are then lost), raise :class:`~lighttune_e2.errors.E2DecodeError`
for the whole message; a UE with a value out of range (or NaN where a number is required)
is dropped and counted (``n_dropped``), never the whole cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError as _PbDecodeError
from google.protobuf.message import Message as _PbMessage

from lighttune_core.report import MAX_CQI, MAX_RANK, LinkReports
from lighttune_e2 import lt_sm_pb2 as pb
from lighttune_e2.errors import E2DecodeError, E2EncodeError

SM_SHORT_NAME = "LT-LINKADAPT"
SM_OID = "1.3.6.1.4.1.65535.200.1.2"
SM_VERSION = (2, 1)
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


# --------------------------------------------------------------------------- column layout


@dataclass(frozen=True)
class WireColumn:
    """One per-UE column of a v2 message: a ``bytes`` field holding a fixed-width array.

    ``dtype`` is the numpy dtype of one element on the wire (little-endian, or one byte);
    ``per_ue`` is how many elements each UE has (4 for the row-major [N, 4] SINR column,
    1 otherwise), so the field holds exactly ``N * per_ue * dtype.itemsize`` bytes.
    """

    name: str
    dtype: np.dtype
    per_ue: int = 1

    @property
    def row_bytes(self) -> int:
        """Bytes one UE takes in this column."""
        return self.per_ue * self.dtype.itemsize


_U8 = np.dtype("u1")
_U16 = np.dtype("<u2")
_U32 = np.dtype("<u4")
_U64 = np.dtype("<u8")
_F32 = np.dtype("<f4")

INDICATION_COLUMNS: tuple[WireColumn, ...] = (
    WireColumn("ue_id", _U32),
    WireColumn("ri", _U8),
    WireColumn("cqi", _U8),
    WireColumn("sinr_layers_db", _F32, MAX_RANK),
    WireColumn("csirs_snr_db", _F32),
    WireColumn("rank", _U8),
    WireColumn("mcs", _U8),
    WireColumn("olla_offset_db", _F32),
    WireColumn("n_ack", _U32),
    WireColumn("n_nack", _U32),
    WireColumn("served_bits", _U64),
    WireColumn("csi_age_ms", _F32),
)
"""Wire layout of ``IndicationMessage`` (see ``lt_sm.proto``), in field-number order."""

CONTROL_COLUMNS: tuple[WireColumn, ...] = (
    WireColumn("ue_id", _U32),
    WireColumn("ri", _U8),
    WireColumn("cqi", _U8),
    WireColumn("valid_periods", _U16),
)
"""Wire layout of ``ControlMessage``."""

OUTCOME_COLUMNS: tuple[WireColumn, ...] = (
    WireColumn("ue_id", _U32),
    WireColumn("accepted", _U8),
    WireColumn("reason", _U8),
)
"""Wire layout of ``ControlOutcome``."""

_UINT32_MAX = 2**32 - 1
_INT64_MAX = 2**63 - 1


def _to_wire(message: str, col: WireColumn, values: np.ndarray, error: type[Exception]) -> bytes:
    """Little-endian bytes of an integer or float column; ``error`` if an integer does not fit.

    Floats are rounded to float32 (|error| < 1e-5 dB over -30..60 dB); magnitudes beyond the
    float32 range become +-inf, which the receiver drops as out of range.
    """
    if col.dtype.kind == "f":
        with np.errstate(over="ignore"):
            return np.ascontiguousarray(values, dtype=col.dtype).tobytes()
    if values.size:
        hi = _INT64_MAX if col.dtype.itemsize == 8 else int(np.iinfo(col.dtype).max)
        lo, top = int(values.min()), int(values.max())
        if lo < 0 or top > hi:
            raise error(f"{message}.{col.name} must fit {col.dtype.name} [0, {hi}], got values in [{lo}, {top}]")
    return np.ascontiguousarray(values).astype(col.dtype, copy=False).tobytes()


def _from_wire(message: str, col: WireColumn, raw: bytes, n: int) -> np.ndarray:
    """The column as a read-only array of shape [n] (or [n, per_ue]), without copying.

    Raises:
        E2DecodeError: the byte length is not ``n * per_ue * itemsize`` (UE boundaries lost).
    """
    if len(raw) != n * col.row_bytes:
        raise E2DecodeError(
            f"{message}.{col.name} holds {len(raw)} bytes, expected {n} UEs x {col.row_bytes} bytes"
            f" ({col.per_ue} x {col.dtype.name})"
        )
    arr = np.frombuffer(raw, dtype=col.dtype)
    return arr.reshape(n, col.per_ue) if col.per_ue > 1 else arr


def _count_ues(message: str, raw: bytes) -> int:
    """N from the ``ue_id`` column (u32): E2DecodeError unless its length is a multiple of 4."""
    if len(raw) % _U32.itemsize:
        raise E2DecodeError(f"{message}.ue_id holds {len(raw)} bytes, not a multiple of {_U32.itemsize}")
    return len(raw) // _U32.itemsize


# --------------------------------------------------------------------------- indication


@dataclass(frozen=True)
class IndicationHeader:
    """Cell (NR cell identity, 0..2**36-1), CSI-RS period index, time (ms) and CQI table."""

    cell_id: int
    period_index: int
    time_ms: int
    cqi_table: int = 1
    version: int = SM_VERSION[0]


def encode_indication(cell_id: int, period: int, time_ms: int, reports: LinkReports) -> tuple[bytes, bytes]:
    """Serialise one cell's reports of one period.

    Each :class:`LinkReports` column becomes one little-endian fixed-width byte array
    (``INDICATION_COLUMNS``): ``ndarray.astype(dtype).tobytes()``, no per-UE Python work.

    Args:
        cell_id: NR cell identity, 0 .. 2**36 - 1.
        period: CSI-RS period index, >= 0.
        time_ms: end of the period, ms, >= 0.
        reports: N UEs; integer columns must fit their wire types (ue_id, n_ack, n_nack u32;
            ri, cqi, rank, mcs u8; served_bits 0 .. 2**63 - 1). Values that fit the wire type
            but not the documented range (e.g. mcs 31) are sent; the receiver drops that UE.

    Returns:
        (RICindicationHeader octets, RICindicationMessage octets). SINR, SNR, OLLA offset and
        CSI age are carried as float32 (rounding < 1e-5 dB in the -30..60 dB range). The
        message is 52 bytes per UE plus 2 to 4 bytes of protobuf framing per column.

    Raises:
        E2EncodeError: an integer value does not fit its wire type (the message names it).
        ValueError: cell_id, period or time_ms out of range.
    """
    _check_int("cell_id", cell_id, 0, MAX_CELL_ID)
    _check_int("period", period, 0, 2**64 - 1)
    _check_int("time_ms", time_ms, 0, 2**64 - 1)
    hdr = pb.IndicationHeader(
        version=SM_VERSION[0], cell_id=cell_id, period_index=period, time_ms=time_ms, cqi_table=reports.cqi_table
    )
    cols = {c.name: _to_wire("LinkReports", c, getattr(reports, c.name), E2EncodeError) for c in INDICATION_COLUMNS}
    return hdr.SerializeToString(), pb.IndicationMessage(**cols).SerializeToString()


def decode_indication(header: bytes, message: bytes) -> tuple[IndicationHeader, LinkReports, int]:
    """Parse one indication into a header and the valid UEs' :class:`LinkReports`.

    Every column is read with ``numpy.frombuffer`` (shape [N], SINR [N, 4]); ``served_bits``
    (u64) is reinterpreted as int64, so values above 2**63 - 1 turn negative and are dropped.

    Returns:
        (header, reports of the M <= N valid UEs, n_dropped = N - M). A UE is dropped when
        ``LinkReports.validate()`` rejects it (a value out of range, or NaN where a number is
        required).

    Raises:
        E2DecodeError: unparsable bytes, an unsupported version or CQI table, a cell id that
            is not an NR cell identity (above 2**36 - 1), or a column whose byte length is not
            N x its element width (the cell is then unreadable as a whole).
    """
    h = _parse(pb.IndicationHeader, header, "RICindicationHeader")
    if h.version != SM_VERSION[0]:
        raise E2DecodeError(f"RICindicationHeader.version {h.version} is not supported (expected {SM_VERSION[0]})")
    if h.cqi_table not in (1, 2, 3):
        raise E2DecodeError(f"RICindicationHeader.cqi_table must be 1..3, got {h.cqi_table}")
    if h.cell_id > MAX_CELL_ID:
        raise E2DecodeError(f"RICindicationHeader.cell_id {h.cell_id} is not an NR cell identity (0 .. 2**36 - 1)")
    hdr = IndicationHeader(h.cell_id, h.period_index, h.time_ms, h.cqi_table, h.version)
    m = _parse(pb.IndicationMessage, message, "RICindicationMessage")
    n = _count_ues("IndicationMessage", m.ue_id)
    cols = {c.name: _from_wire("IndicationMessage", c, getattr(m, c.name), n) for c in INDICATION_COLUMNS}
    cols["served_bits"] = cols["served_bits"].view("<i8").astype(np.int64)
    reports = LinkReports(**cols, cqi_table=int(h.cqi_table))
    keep = reports.validate()
    n_dropped = int(n - np.count_nonzero(keep))
    if n_dropped:
        reports = reports.select(keep)
    return hdr, reports, n_dropped


# --------------------------------------------------------------------------- control


@dataclass(frozen=True)
class ControlHeader:
    """Cell the decisions are for, the report period they answer, and the sender's fencing
    token (``owner_epoch``: epoch of the replica's ownership lock of the node, 0 = not fenced)."""

    cell_id: int
    period_index: int = 0
    version: int = SM_VERSION[0]
    owner_epoch: int = 0


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
    owner_epoch: int = 0,
) -> tuple[bytes, bytes]:
    """Serialise per-UE RI/CQI decisions of one cell (``CONTROL_COLUMNS`` byte arrays).

    Args:
        cell_id: NR cell identity, 0 .. 2**36 - 1.
        ue_id, ri, cqi: int [M]; ue_id in 0..2**32-1, ri in 1..4, cqi in 0..15.
        valid_periods: int [M] or a scalar for all UEs, 1..1024 CSI-RS periods.
        period_index: the report period the decisions answer.
        owner_epoch: fencing token of the sending replica (its ownership lock's epoch of
            the node, see :mod:`lighttune_xapp.ownership`), 0 .. 2**64 - 1; 0 = not fenced.

    Returns:
        (RICcontrolHeader octets, RICcontrolMessage octets); the message is 8 bytes per UE
        plus framing.

    Raises:
        ValueError: naming the array that has the wrong shape or a value out of range.
    """
    _check_int("cell_id", cell_id, 0, MAX_CELL_ID)
    _check_int("period_index", period_index, 0, 2**64 - 1)
    _check_int("owner_epoch", owner_epoch, 0, 2**64 - 1)
    ue = _as_int_column("ue_id", ue_id, None)
    n = ue.shape[0]
    arrays = {
        "ue_id": ue, "ri": _as_int_column("ri", ri, n), "cqi": _as_int_column("cqi", cqi, n),
        "valid_periods": _as_int_column("valid_periods", valid_periods, n),
    }
    for name, lo, hi in (("ue_id", 0, _UINT32_MAX), ("ri", 1, MAX_RANK), ("cqi", 0, MAX_CQI),
                         ("valid_periods", 1, MAX_VALID_PERIODS)):
        arr = arrays[name]
        if n and (arr.min() < lo or arr.max() > hi):
            raise ValueError(f"{name} must lie in [{lo}, {hi}]")
    hdr = pb.ControlHeader(
        version=SM_VERSION[0], cell_id=cell_id, period_index=period_index, owner_epoch=owner_epoch
    )
    cols = {c.name: _to_wire("ControlMessage", c, arrays[c.name], ValueError) for c in CONTROL_COLUMNS}
    return hdr.SerializeToString(), pb.ControlMessage(**cols).SerializeToString()


def decode_control(header: bytes, message: bytes) -> tuple[ControlHeader, ControlDecisions, ControlDecisions]:
    """Parse a control request.

    Returns:
        (header, accepted decisions, rejected decisions), int64 columns. A UE is rejected when
        a value is out of range; the rejected ones are returned (with the reason computable by
        :func:`control_reject_reasons`) so the node can answer every UE in its
        :class:`ControlOutcome`.

    Raises:
        E2DecodeError: unparsable bytes, unsupported version, a cell id above 2**36 - 1, or a
            column whose byte length is not M x its element width.
    """
    h = _parse(pb.ControlHeader, header, "RICcontrolHeader")
    if h.version != SM_VERSION[0]:
        raise E2DecodeError(f"RICcontrolHeader.version {h.version} is not supported (expected {SM_VERSION[0]})")
    if h.cell_id > MAX_CELL_ID:
        raise E2DecodeError(f"RICcontrolHeader.cell_id {h.cell_id} is not an NR cell identity (0 .. 2**36 - 1)")
    m = _parse(pb.ControlMessage, message, "RICcontrolMessage")
    n = _count_ues("ControlMessage", m.ue_id)
    ue, ri, cqi, vp = (
        _from_wire("ControlMessage", c, getattr(m, c.name), n).astype(np.int64) for c in CONTROL_COLUMNS
    )
    reasons = control_reject_reasons(ri, cqi, vp)
    ok = reasons == REJECT_NONE
    acc = ControlDecisions(ue[ok], ri[ok], cqi[ok], vp[ok])
    rej = ControlDecisions(ue[~ok], ri[~ok], cqi[~ok], vp[~ok])
    return ControlHeader(h.cell_id, h.period_index, h.version, h.owner_epoch), acc, rej


def control_reject_reasons(
    ri: np.ndarray,
    cqi: np.ndarray,
    valid_periods: np.ndarray,
    present: np.ndarray | None = None,
    max_rank: int = MAX_RANK,
) -> np.ndarray:
    """Reject reason per UE, int64 [M]: REJECT_NONE where the decision is usable.

    ``present`` (bool [M], default all True) marks UEs for which the node has the data it
    needs to apply the decision; ``max_rank`` is the cell's (or UE's) largest rank.
    Precedence: missing data, RI out of 1..max_rank, CQI out of 0..15, validity out of 1..1024.
    """
    reason = np.full(ri.shape, REJECT_NONE, dtype=np.int64)
    reason = np.where((valid_periods < 1) | (valid_periods > MAX_VALID_PERIODS), REJECT_VALIDITY_OUT_OF_RANGE, reason)
    reason = np.where((cqi < 0) | (cqi > MAX_CQI), REJECT_CQI_OUT_OF_RANGE, reason)
    reason = np.where((ri < 1) | (ri > max_rank), REJECT_RI_OUT_OF_RANGE, reason)
    if present is None:
        return reason
    return np.where(~np.asarray(present, dtype=bool), REJECT_MISSING_FIELD, reason)


@dataclass(frozen=True)
class ControlOutcome:
    """Per-UE result of a control request: ``ue_id`` int64 [M], ``accepted`` bool [M],
    ``reason`` int64 [M] (``REJECT_*`` codes, REJECT_NONE exactly where accepted), and
    ``n_dropped``: rows of the received message left out because they were unreadable."""

    ue_id: np.ndarray
    accepted: np.ndarray
    reason: np.ndarray
    n_dropped: int = 0


_REJECT_CODES = np.array(sorted(pb.RejectReason.values()), dtype=np.int64)


def encode_control_outcome(ue_id: np.ndarray, accepted: np.ndarray, reason: np.ndarray) -> bytes:
    """Serialise a :class:`ControlOutcome` (RICcontrolOutcome octets, 6 bytes per UE).

    Raises:
        ValueError: arrays of different lengths, a ue_id outside 0..2**32-1, an unknown reason
            code, or a row whose ``accepted`` disagrees with its reason (accepted exactly where
            reason is REJECT_NONE).
    """
    ue = _as_int_column("ue_id", ue_id, None)
    n = ue.shape[0]
    acc = np.asarray(accepted, dtype=bool)
    rs = _as_int_column("reason", reason, n)
    if acc.shape != (n,):
        raise ValueError(f"accepted must have shape ({n},), got {acc.shape}")
    if n and not np.isin(rs, _REJECT_CODES).all():
        raise ValueError(f"reason holds codes outside {_REJECT_CODES.tolist()}")
    if np.any(acc != (rs == REJECT_NONE)):
        raise ValueError("accepted must be True exactly where reason is REJECT_NONE")
    arrays = {"ue_id": ue, "accepted": acc.astype(np.int64), "reason": rs}
    cols = {c.name: _to_wire("ControlOutcome", c, arrays[c.name], ValueError) for c in OUTCOME_COLUMNS}
    return pb.ControlOutcome(**cols).SerializeToString()


def decode_control_outcome(data: bytes) -> ControlOutcome:
    """Parse RICcontrolOutcome octets.

    Rows with ``accepted`` not 0/1, an unknown reason code, or an ``accepted`` flag that
    disagrees with the reason are dropped and counted in ``n_dropped``.

    Raises:
        E2DecodeError: unparsable bytes, or a column whose byte length is not M x its width.
    """
    m = _parse(pb.ControlOutcome, data, "RICcontrolOutcome")
    n = _count_ues("ControlOutcome", m.ue_id)
    ue, acc, rs = (_from_wire("ControlOutcome", c, getattr(m, c.name), n).astype(np.int64) for c in OUTCOME_COLUMNS)
    ok = (acc <= 1) & np.isin(rs, _REJECT_CODES) & ((acc == 1) == (rs == REJECT_NONE))
    n_dropped = int(n - np.count_nonzero(ok))
    return ControlOutcome(ue[ok], acc[ok].astype(bool), rs[ok], n_dropped)
