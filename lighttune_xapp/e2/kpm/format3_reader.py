"""A specialised aligned-PER reader for KPM v3.00 indication message format 3.

The report path's hot spot: asn1tools decodes a format-3 message with a generic,
pure-Python PER engine (a type object and a dict per field, one method call per bit
read), ~1 ms per UE with our measurement list. This reader walks only the structure our
path needs, straight over the octets (X.691 aligned variant), and yields the same value
form as asn1tools for :func:`lighttune_xapp.e2.kpm.reports._gather`.

Covered (anything else raises :class:`UnsupportedEncoding`, and the caller falls back to
the full codec, which gives the definitive answer and its typed error):

* ``E2SM-KPM-IndicationMessage`` with the format-3 extension alternative (open type of
  fewer than 16K octets), no extension additions anywhere;
* UEID ``gNB-DU-UEID`` (F1AP id, optional ran-UEID);
* format 1 per UE with ``measData`` (records integer / real base 2 / noValue,
  ``incompleteFlag``), optional ``measInfoList`` (``measName`` or ``measID``; labels with
  ``noLabel`` and ``distBinX/Y/Z`` only) and optional ``granulPeriod``.

Encodings used (X.691): constrained whole numbers of range <= 255 as bit-fields, 256 as
one aligned octet, <= 64K as two aligned octets, larger as a 2-bit octet count plus
aligned octets; SIZE(1..65535) lists as a two-octet count − 1; lists with an upper bound
of 64K or more with the general length determinant; REAL as an octet-counted X.690 CER
value. Trailing octets are rejected.
"""

from __future__ import annotations

from typing import Any

#: MeasurementLabel root fields in order (21 optional bits); we read noLabel and distBin*.
_LABEL_FIELDS = 21
_NO_LABEL, _BIN_X, _BIN_Y, _BIN_Z = 0, 13, 14, 15
_SUPPORTED_LABEL_MASK = (1 << (_LABEL_FIELDS - 1 - _NO_LABEL)) | (1 << (_LABEL_FIELDS - 1 - _BIN_X)) | (
    1 << (_LABEL_FIELDS - 1 - _BIN_Y)) | (1 << (_LABEL_FIELDS - 1 - _BIN_Z))


class UnsupportedEncoding(ValueError):
    """The message uses something this reader does not cover (or is malformed)."""


class _Reader:
    """Bit cursor over octets (most significant bit first)."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, start_octet: int = 0, end_octet: int | None = None) -> None:
        self.data = data + b"\x00\x00\x00\x00"
        self.pos = start_octet * 8
        self.end = (len(data) if end_octet is None else end_octet) * 8

    def bits(self, k: int) -> int:
        """Read ``k`` <= 25 bits."""
        p = self.pos
        if p + k > self.end:
            raise UnsupportedEncoding("out of data")
        o = p >> 3
        v = int.from_bytes(self.data[o:o + 4], "big")
        self.pos = p + k
        return (v >> (32 - (p & 7) - k)) & ((1 << k) - 1)

    def align(self) -> None:
        self.pos = (self.pos + 7) & ~7

    def octets(self, n: int) -> bytes:
        self.align()
        o = self.pos >> 3
        if self.pos + 8 * n > self.end:
            raise UnsupportedEncoding("out of data")
        self.pos += 8 * n
        return self.data[o:o + n]

    def uint(self, n: int) -> int:
        """``n`` aligned octets as an unsigned integer."""
        return int.from_bytes(self.octets(n), "big")

    def length(self) -> int:
        """General (unconstrained) length determinant, < 16K."""
        first = self.uint(1)
        if first < 0x80:
            return first
        if first < 0xC0:
            return ((first & 0x3F) << 8) | self.uint(1)
        raise UnsupportedEncoding("fragmented length")

    def big_uint(self) -> int:
        """Constrained whole number of range 2^32 (or 2^32 − 1): 2-bit octet count + octets."""
        return self.uint(self.bits(2) + 1)

    def no_extension(self) -> None:
        if self.bits(1):
            raise UnsupportedEncoding("extension present")


def _real(contents: bytes) -> float:
    if not contents:
        return 0.0
    first = contents[0]
    if first & 0x80 == 0:
        if first == 0x40:
            return float("inf")
        if first == 0x41:
            return float("-inf")
        if first == 0x42:
            return float("nan")
        if first == 0x43:
            return -0.0
        raise UnsupportedEncoding("decimal REAL")
    if first & 0x30:
        raise UnsupportedEncoding("REAL base other than 2")
    scale = (first >> 2) & 0x03
    form = first & 0x03
    if form == 3:
        n_exp = contents[1]
        start = 2
    else:
        n_exp = form + 1
        start = 1
    if len(contents) <= start + n_exp - 1 or n_exp == 0:
        raise UnsupportedEncoding("short REAL")
    exponent = int.from_bytes(contents[start:start + n_exp], "big", signed=True)
    mantissa = int.from_bytes(contents[start + n_exp:], "big") << scale
    value = float(mantissa) * 2.0 ** exponent if -1074 <= exponent <= 1023 else float(mantissa * 2 ** exponent) \
        if exponent >= 0 else mantissa / 2 ** -exponent
    return -value if first & 0x40 else value


_NO_VALUE = ("noValue", None)
#: LabelInfoItem + MeasurementLabel with only noLabel (and its ENUMERATED ext bit): 24 bits.
_NO_LABEL_BITS = 1 << (_LABEL_FIELDS - 1 - _NO_LABEL + 1)
#: Decoded measurement names by their octets (names repeat in every UE's report).
_NAMES: dict[bytes, str] = {}


def _label(r: _Reader) -> dict[str, Any]:
    # LabelInfoItem ext, MeasurementLabel ext, 21 presence bits: one 23-bit read
    head = r.bits(2 + _LABEL_FIELDS)
    if head >> _LABEL_FIELDS:
        raise UnsupportedEncoding("extension present")
    present = head & ((1 << _LABEL_FIELDS) - 1)
    if present & ~_SUPPORTED_LABEL_MASK:
        raise UnsupportedEncoding("label field other than noLabel/distBin")
    label: dict[str, Any] = {}
    if present >> (_LABEL_FIELDS - 1 - _NO_LABEL) & 1:
        r.no_extension()  # ENUMERATED {true, ...}
        label["noLabel"] = "true"
    for index, key in ((_BIN_X, "distBinX"), (_BIN_Y, "distBinY"), (_BIN_Z, "distBinZ")):
        if present >> (_LABEL_FIELDS - 1 - index) & 1:
            r.no_extension()  # INTEGER (1..65535, ...)
            label[key] = r.uint(2) + 1
    return {"measLabel": label}


def _records(r: _Reader, n: int) -> list[tuple[str, Any]]:
    """``n`` MeasurementRecordItems, the innermost loop, read with local state."""
    data = r.data
    pos = r.pos
    end = r.end
    records: list[tuple[str, Any]] = []
    append = records.append
    for _ in range(n):
        o = pos >> 3
        # ext bit, 2-bit choice index, and (integer) 2-bit octet count: 5 bits
        v = (int.from_bytes(data[o:o + 2], "big") >> (11 - (pos & 7))) & 0x1F
        if v & 0x10:
            raise UnsupportedEncoding("record extension")
        kind = v >> 2
        if kind == 0:
            count = (v & 3) + 1
            o = (pos + 12) >> 3
            append(("integer", int.from_bytes(data[o:o + count], "big")))
            pos = (o + count) << 3
        elif kind == 1:
            o = (pos + 10) >> 3
            size = data[o]
            if size >= 0x80:
                raise UnsupportedEncoding("long REAL")
            append(("real", _real(data[o + 1:o + 1 + size])))
            pos = (o + 1 + size) << 3
        elif kind == 2:
            append(_NO_VALUE)
            pos += 3
        else:
            raise UnsupportedEncoding("record choice index")
        if pos > end:
            raise UnsupportedEncoding("out of data")
    r.pos = pos
    return records


def _format1(r: _Reader) -> dict[str, Any]:
    head = r.bits(3)  # ext, measInfoList present, granulPeriod present
    if head & 4:
        raise UnsupportedEncoding("extension present")
    periods = []
    for _ in range(r.uint(2) + 1):  # MeasurementData SIZE(1..65535)
        item_head = r.bits(2)  # MeasurementDataItem ext, incompleteFlag present
        if item_head & 2:
            raise UnsupportedEncoding("extension present")
        n = r.length()
        if n < 1:
            raise UnsupportedEncoding("empty record list")
        item: dict[str, Any] = {"measRecord": _records(r, n)}
        if item_head & 1:
            r.no_extension()
            item["incompleteFlag"] = "true"
        periods.append(item)
    out: dict[str, Any] = {"measData": periods}
    if head & 2:
        infos = []
        for _ in range(r.uint(2) + 1):  # MeasurementInfoList SIZE(1..65535)
            # item ext, MeasurementType ext, choice index
            kind = r.bits(3)
            if kind & 6:
                raise UnsupportedEncoding("extension present")
            if kind == 0:
                size_head = r.bits(9)  # size extension bit + 8-bit size - 1
                if size_head & 0x100 or size_head >= 150:
                    raise UnsupportedEncoding("measName size")
                raw_name = r.octets(size_head + 1)
                name = _NAMES.get(raw_name)
                if name is None:
                    name = raw_name.decode("ascii")
                    if len(_NAMES) < 4096:
                        _NAMES[raw_name] = name
                meas_type: tuple[str, Any] = ("measName", name)
            else:
                r.no_extension()
                meas_type = ("measID", r.uint(2) + 1)
            n_labels = r.length()
            if n_labels < 1:
                raise UnsupportedEncoding("empty label list")
            labels = []
            for _ in range(n_labels):
                if r.bits(24) == _NO_LABEL_BITS:  # the common plain counter, one read
                    labels.append({"measLabel": {"noLabel": "true"}})
                else:
                    r.pos -= 24
                    labels.append(_label(r))
            infos.append({"measType": meas_type, "labelInfoList": labels})
        out["measInfoList"] = infos
    if head & 1:
        out["granulPeriod"] = r.big_uint() + 1
    return out


def read_format3(data: bytes) -> dict[str, Any]:
    """asn1tools-form value of a KPM v3.00 IM format 3, or :class:`UnsupportedEncoding`."""
    outer = _Reader(data)
    outer.no_extension()  # E2SM-KPM-IndicationMessage
    if outer.bits(1) != 1:  # CHOICE extension bit: format 3 is the first extension alternative
        raise UnsupportedEncoding("not an extension alternative")
    if outer.bits(7) != 0:  # normally small number: index 0 = Format3
        raise UnsupportedEncoding("not format 3")
    size = outer.length()
    start = outer.pos >> 3
    if start + size != len(data):
        raise UnsupportedEncoding("open type length does not match the message")
    r = _Reader(data, start, start + size)
    r.no_extension()  # Format3
    reports = []
    for _ in range(r.uint(2) + 1):  # UEMeasurementReportList SIZE(1..65535)
        # item ext, UEID ext, 3-bit index (1 = gNB-DU-UEID), UEID-GNB-DU ext, ran-UEID present
        head = r.bits(7)
        if head >> 1 != 0b000010:
            raise UnsupportedEncoding("UEID other than gNB-DU-UEID, or an extension")
        ue: dict[str, Any] = {"gNB-CU-UE-F1AP-ID": r.big_uint()}
        if head & 1:
            ue["ran-UEID"] = r.octets(8)
        reports.append({"ueID": ("gNB-DU-UEID", ue), "measReport": _format1(r)})
    if (r.end - r.pos) >= 8:
        raise UnsupportedEncoding("trailing octets")
    return {"indicationMessage-formats": ("indicationMessage-Format3", {"ueMeasReportList": reports})}
