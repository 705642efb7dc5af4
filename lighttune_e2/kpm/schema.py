"""The E2SM-KPM ASN.1 schemas we ship, and their compiled forms (lazy singletons).

Three versions of the standard module are kept as data files in ``asn1/`` (origin and
commit in each file's header):

- v03.00: TimeStamp is OCTET STRING (SIZE(8)). Also decodes v04.00 content, which only
  adds extension fields (srsRAN's Python xApps use v04.00, whose module header still says
  ``version3``).
- v02.03: the same module with TimeStamp SIZE(4).
- v02.01: TimeStamp SIZE(4), ``MatchingCondItem`` a CHOICE, fewer test conditions.

asn1tools compiles a schema in ~0.2-0.4 s, so each version is compiled once per process,
on first use (:func:`asn1tools_spec`). pycrate classes come from modules generated at
development time (:mod:`lighttune_e2.kpm.pycrate_generate`) and are imported on first
use (:func:`pycrate_module`).

asn1tools defect worked around here: its REAL encoder (asn1tools 0.169 ``ber.encode_real``)
writes the mantissa with a needless leading 0x00 octet whenever its bit length is a multiple
of 8 (e.g. -100.5 = -201 x 2^-1 -> ``c0 ff 00 c9`` instead of ``c0 ff c9``). X.691 encodes
REAL as the CER contents octets of X.690, whose mantissa is an unsigned integer in the fewest
octets, as pycrate and asn1c write it. After compiling, every REAL type of the spec gets our
encoder (:func:`real_contents`) bound in place of asn1tools' (the library itself is not
patched); asn1tools' decoder reads both forms. REAL decodes compute the common binary form
directly (:func:`_decode_real_fast`, the same floats) and leave the rest to asn1tools.
"""

from __future__ import annotations

import enum
import functools
import importlib
import math
import re
import threading
import types
from pathlib import Path
from typing import Any, Iterator

import asn1tools
from asn1tools.codecs import ber as asn1tools_ber
from asn1tools.codecs import per as asn1tools_per

ASN1_DIR: Path = Path(__file__).with_name("asn1")


class KpmVersion(enum.Enum):
    """E2SM-KPM module versions the codec understands."""

    V3_00 = "3.00"
    V2_03 = "2.03"
    V2_01 = "2.01"

    @property
    def timestamp_octets(self) -> int:
        """Size of the TimeStamp OCTET STRING: 8 for v3, 4 for v2."""
        return 8 if self is KpmVersion.V3_00 else 4


SCHEMA_FILES: dict[KpmVersion, Path] = {
    KpmVersion.V3_00: ASN1_DIR / "e2sm_kpm_v03.00.asn1",
    KpmVersion.V2_03: ASN1_DIR / "e2sm_kpm_v02.03.asn1",
    KpmVersion.V2_01: ASN1_DIR / "e2sm_kpm_v02.01.asn1",
}

_LOCK = threading.Lock()


def real_contents(value: float) -> bytes:
    """X.690 (CER) contents octets of a REAL, base 2, with the fewest octets.

    ``value = (-1)^s * N * 2^E`` with N odd (0 -> no octets); first octet
    ``0x80 | s << 6 | (len(E) - 1)``, then E as a two's-complement integer, then N unsigned.
    Special values: +inf 0x40, -inf 0x41, NaN 0x42.
    """
    if math.isnan(value):
        return b"\x42"
    if math.isinf(value):
        return b"\x40" if value > 0 else b"\x41"
    if value == 0.0:
        return b""
    numerator, denominator = abs(value).as_integer_ratio()
    exponent = -(denominator.bit_length() - 1)
    while numerator % 2 == 0:
        numerator //= 2
        exponent += 1
    exponent_octets = 1 if -128 <= exponent <= 127 else 2 if -32768 <= exponent <= 32767 else 3
    first = 0x80 | (0x40 if value < 0 else 0) | (exponent_octets - 1)
    mantissa = numerator.to_bytes((numerator.bit_length() + 7) // 8, "big")
    return bytes([first]) + exponent.to_bytes(exponent_octets, "big", signed=True) + mantissa


def _encode_real_minimal(self: Any, data: float, encoder: Any) -> None:
    encoded = real_contents(float(data))
    encoder.align()
    encoder.append_length_determinant(len(encoded))
    encoder.append_bytes(encoded)


def _asn1tools_objects(root: Any) -> Iterator[Any]:
    """Every object reachable from ``root`` through containers and asn1tools objects' attributes,
    each once (attributes this module adds, ``_lt_*``, are not followed)."""
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, asn1tools_per.Type) or hasattr(obj, "__dict__") and type(obj).__module__.startswith(
            "asn1tools"
        ):
            stack.extend(v for k, v in vars(obj).items() if not k.startswith("_lt_"))


def _decode_real_fast(self: Any, decoder: Any) -> float:
    """asn1tools' PER REAL decode with its most common form computed directly.

    X.690 8.5.7 binary form with base 2, scale factor 0 and a one-octet exponent (first
    contents octet ``0x80`` or ``0xC0``, the form :func:`real_contents` writes for every
    double with ``-128 <= E <= 127``) and a mantissa ``N`` of at most 53 bits:
    ``(-1)^s N 2^E`` is ``math.ldexp(N, E)``, exactly the float asn1tools computes
    (``N · 2^E`` is exact in binary64 for such ``N`` and ``E``). Any other form (zero length,
    special values, longer exponents or mantissas, decimal) goes to asn1tools' own decoder.
    """
    decoder.align()
    length = decoder.read_length_determinant()
    data = decoder.read_bytes(length)
    if 3 <= length <= 9 and (data[0] | 0x40) == 0xC0:
        mantissa = int.from_bytes(data[2:], "big")
        if mantissa.bit_length() <= 53:
            exponent = data[1]
            value = math.ldexp(mantissa, exponent - 256 if exponent & 0x80 else exponent)
            return -value if data[0] & 0x40 else value
    return asn1tools_ber.decode_real(bytearray(data))


def _rebind_real_codecs(root: Any) -> int:
    """Bind :func:`_encode_real_minimal` and :func:`_decode_real_fast` to every asn1tools PER
    REAL type under ``root``."""
    count = 0
    for obj in _asn1tools_objects(root):
        if isinstance(obj, asn1tools_per.Real):
            obj.encode = types.MethodType(_encode_real_minimal, obj)
            obj.decode = types.MethodType(_decode_real_fast, obj)
            count += 1
    return count


def _octet_alphabet(string_type: Any) -> bool:
    """True when a PER string type reads 8-bit characters whose codes are the characters."""
    if getattr(string_type, "bits_per_character", None) != 8:
        return False
    decode_map = getattr(string_type.permitted_alphabet, "decode_map", None)
    return isinstance(decode_map, dict) and all(code == char for code, char in decode_map.items())


def _decode_string_bytewise(self: Any, decoder: Any) -> str:
    """Bounded 8-bit known-multiplier string, read as one byte run (same bits as asn1tools).

    asn1tools reads such strings (PrintableString measurement names, sender names) one
    character at a time through the alphabet map, about a third of a KPM format-3 decode;
    with an identity alphabet the characters are the octets themselves.
    """
    if self.has_extension_marker and decoder.read_bit():
        decoder.number_of_bits += 1  # un-read the bit: asn1tools' own decode reports the extension
        return asn1tools_per.KnownMultiplierStringType.decode(self, decoder)
    if self.minimum != self.maximum:
        length = decoder.read_constrained_whole_number(self.minimum, self.maximum, self.number_of_bits)
        if self.maximum > 1 and length > 0:
            decoder.align()
    else:
        if self.maximum * 8 > 16:
            decoder.align()
        length = self.minimum
    text = bytes(decoder.read_bytes(length)).decode(self.ENCODING)
    if self._lt_alphabet.fullmatch(text) is None:
        raise ValueError(f"characters outside the {type(self).__name__} alphabet in {text!r}")
    return text


def _rebind_string_decoders(root: Any) -> int:
    """Bind :func:`_decode_string_bytewise` to every bounded 8-bit identity-alphabet string."""
    count = 0
    for obj in list(_asn1tools_objects(root)):
        if (
            isinstance(obj, asn1tools_per.KnownMultiplierStringType)
            and obj.number_of_bits is not None
            and _octet_alphabet(obj)
        ):
            chars = "".join(chr(code) for code in obj.permitted_alphabet.decode_map)
            obj._lt_alphabet = re.compile("[" + re.escape(chars) + "]*")
            obj.decode = types.MethodType(_decode_string_bytewise, obj)
            count += 1
    return count


#: Types whose decodes are memoised by their bits (see :func:`_memoise_decoder`).
MEMOISED_TYPES: tuple[str, ...] = ("MeasurementInfoItem",)
#: Distinct encodings remembered per memoised type; when full the memo is emptied and refilled
#: (a bound on memory, not on correctness).
MEMO_ENTRIES: int = 4096
_MEMO_PREFIX_BITS = 48


def _decode_memoised(self: Any, decoder: Any) -> Any:
    """Decode through asn1tools once per distinct bit run; repeats reuse that value.

    Aligned PER is a pure function of the bits read and of the bit position modulo 8
    (X.691 alignment): the same run of bits at the same phase decodes to the same value and
    consumes the same number of bits. A format-3 indication repeats each UE's measurement
    list (E2SM-KPM IM format 1 ``measInfoList``, O-RAN E2SM-KPM v3.00 8.2.1.4.1: the same
    measurement types and noLabel for every UE, only the distribution bins differ), so after
    the first UE almost every ``MeasurementInfoItem`` is a look-up. First probe: (phase, the
    bits of the last hit's length) in a flat map, since most items of a list share one
    length; otherwise the memo maps (phase, first 48 bits) -> {run length -> {run bits ->
    value}}: one dictionary probe per distinct run length, however many bins have been seen. The cached values are shared
    between UEs: callers must treat decoded values as read-only (ours do).
    """
    bits = decoder.value
    left = decoder.number_of_bits
    offset = decoder.total_number_of_bits - left
    # fast path: the run length of the previous hit (most items of a list share one length)
    n_bits = self._lt_last_bits
    if n_bits <= left:
        value = self._lt_runs.get((left & 7, bits[offset:offset + n_bits]))
        if value is not None:
            decoder.number_of_bits = left - n_bits
            return value
    key = (left & 7, bits[offset:offset + _MEMO_PREFIX_BITS])
    by_length = self._lt_memo.get(key)
    if by_length is not None:
        for n_bits, runs in by_length.items():
            if n_bits <= left:
                value = runs.get(bits[offset:offset + n_bits])
                if value is not None:
                    decoder.number_of_bits = left - n_bits
                    self._lt_last_bits = n_bits
                    return value
    value = self._lt_decode(decoder)
    n_bits = left - decoder.number_of_bits
    if self._lt_memo_size >= MEMO_ENTRIES:  # e.g. after a flood of garbage: start afresh
        self._lt_memo = {}
        self._lt_runs = {}
        self._lt_memo_size = 0
    if value is not None:
        run = bits[offset:offset + n_bits]
        self._lt_memo.setdefault(key, {}).setdefault(n_bits, {})[run] = value
        self._lt_runs[(left & 7, run)] = value
        self._lt_memo_size += 1
        self._lt_last_bits = n_bits
    return value


def _memoise_decoder(compiled_type: Any) -> None:
    """Bind :func:`_decode_memoised` to one compiled asn1tools PER type (its own decode kept)."""
    compiled_type._lt_decode = compiled_type.decode
    compiled_type._lt_memo = {}
    compiled_type._lt_runs = {}
    compiled_type._lt_last_bits = 0
    compiled_type._lt_memo_size = 0
    compiled_type.decode = types.MethodType(_decode_memoised, compiled_type)


def _memoise_types(spec: Any, names: tuple[str, ...]) -> int:
    """Memoise every compiled occurrence of the named types (element types of SEQUENCE OF too)."""
    count = 0
    for obj in list(_asn1tools_objects(spec)):
        if isinstance(obj, asn1tools_per.Type) and obj.type_name in names and not hasattr(obj, "_lt_memo"):
            _memoise_decoder(obj)
            count += 1
    return count


class FastPerDecoder(asn1tools_per.Decoder):
    """asn1tools' aligned-PER bit reader with the hottest reads inlined.

    Same bit string, same results and errors; ``read_bit``,
    ``read_non_negative_binary_integer``, ``read_constrained_whole_number`` and ``read_bits``
    (most of a KPM format-3 decode once its measurement lists are memoised) skip method calls
    and string padding per read.
    """

    def read_bit(self) -> int:
        left = self.number_of_bits
        if left == 0:
            raise asn1tools_per.OutOfDataError(self.total_number_of_bits)
        self.number_of_bits = left - 1
        return 1 if self.value[self.total_number_of_bits - left] == "1" else 0

    def read_non_negative_binary_integer(self, number_of_bits: int) -> int:
        left = self.number_of_bits
        if number_of_bits > left:
            raise asn1tools_per.OutOfDataError(self.total_number_of_bits - left)
        if number_of_bits == 0:
            return 0
        offset = self.total_number_of_bits - left
        self.number_of_bits = left - number_of_bits
        return int(self.value[offset:offset + number_of_bits], 2)

    def read_constrained_whole_number(self, minimum: int, maximum: int, number_of_bits: int) -> int:
        """X.691 11.5.7 constrained whole number: as asn1tools reads it, in one method."""
        left = self.number_of_bits
        span = maximum - minimum + 1
        if span > 255:  # octet-aligned: 8 bits for a range of 256, 16 up to 64K, else as given
            left -= left & 7
            number_of_bits = 8 if span == 256 else 16 if span <= 65536 else number_of_bits
        if number_of_bits > left:
            self.number_of_bits = left
            raise asn1tools_per.OutOfDataError(self.total_number_of_bits - left)
        if number_of_bits == 0:
            self.number_of_bits = left
            return minimum
        offset = self.total_number_of_bits - left
        self.number_of_bits = left - number_of_bits
        return int(self.value[offset:offset + number_of_bits], 2) + minimum

    def read_bits(self, number_of_bits: int) -> bytes:
        """``number_of_bits`` bits as bytes, the last octet padded with zero bits (as asn1tools)."""
        left = self.number_of_bits
        if number_of_bits > left:
            raise asn1tools_per.OutOfDataError(self.total_number_of_bits - left)
        offset = self.total_number_of_bits - left
        self.number_of_bits = left - number_of_bits
        if number_of_bits == 0:
            return b""
        n_bytes = (number_of_bits + 7) // 8
        value = int(self.value[offset:offset + number_of_bits], 2) << (8 * n_bytes - number_of_bits)
        return value.to_bytes(n_bytes, "big")


@functools.cache
def _asn1tools_spec_unlocked(version: KpmVersion) -> Any:
    spec = asn1tools.compile_files([str(SCHEMA_FILES[version])], "per")
    _rebind_real_codecs(spec)
    _rebind_string_decoders(spec)
    _memoise_types(spec, MEMOISED_TYPES)
    return spec


def asn1tools_spec(version: KpmVersion) -> Any:
    """The asn1tools aligned-PER specification of ``version`` (compiled once, cached)."""
    with _LOCK:
        return _asn1tools_spec_unlocked(version)


@functools.cache
def _pycrate_module_unlocked(version: KpmVersion) -> Any:
    name = "kpm_" + version.value.replace(".", "_")
    module = importlib.import_module(f"lighttune_e2.kpm.generated.{name}")
    return module.E2SM_KPM_IEs


def pycrate_module(version: KpmVersion) -> Any:
    """The pycrate class namespace of the E2SM-KPM-IEs module of ``version`` (cached)."""
    with _LOCK:
        return _pycrate_module_unlocked(version)
