"""Standard OSC RMR message type numbers, in one place.

The numbers are those of the RMR library's ``RIC_message_types.h`` (o-ran-sc
ric-plt-lib-rmr) and the A1 mediator's RMR contract; descriptors and the routing manager
refer to them by the names used here (``"RIC_INDICATION"`` ...). This module has no
dependency, so the xApp, the test harness and the benchmarks share the same constants
without importing ricxappframe (which needs the native RMR library at import time).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "A1_POLICY_QUERY",
    "A1_POLICY_REQ",
    "A1_POLICY_RESP",
    "MESSAGE_TYPE_NAMES",
    "RIC_CONTROL_ACK",
    "RIC_CONTROL_FAILURE",
    "RIC_CONTROL_REQ",
    "RIC_E2_SETUP_FAILURE",
    "RIC_E2_SETUP_REQ",
    "RIC_E2_SETUP_RESP",
    "RIC_ERROR_INDICATION",
    "RIC_HEALTH_CHECK_REQ",
    "RIC_HEALTH_CHECK_RESP",
    "RIC_INDICATION",
    "RIC_SUB_DEL_FAILURE",
    "RIC_SUB_DEL_REQ",
    "RIC_SUB_DEL_REQUIRED",
    "RIC_SUB_DEL_RESP",
    "RIC_SUB_FAILURE",
    "RIC_SUB_REQ",
    "RIC_SUB_RESP",
    "message_type_name",
]

RIC_HEALTH_CHECK_REQ: Final = 100
RIC_HEALTH_CHECK_RESP: Final = 101

RIC_E2_SETUP_REQ: Final = 12001
RIC_E2_SETUP_RESP: Final = 12002
RIC_E2_SETUP_FAILURE: Final = 12003

RIC_SUB_REQ: Final = 12010
RIC_SUB_RESP: Final = 12011
RIC_SUB_FAILURE: Final = 12012
RIC_SUB_DEL_REQ: Final = 12020
RIC_SUB_DEL_RESP: Final = 12021
RIC_SUB_DEL_FAILURE: Final = 12022
RIC_SUB_DEL_REQUIRED: Final = 12023

RIC_CONTROL_REQ: Final = 12040
RIC_CONTROL_ACK: Final = 12041
RIC_CONTROL_FAILURE: Final = 12042

RIC_INDICATION: Final = 12050
RIC_ERROR_INDICATION: Final = 10030

A1_POLICY_REQ: Final = 20010
A1_POLICY_RESP: Final = 20011
A1_POLICY_QUERY: Final = 20012

MESSAGE_TYPE_NAMES: Final[dict[int, str]] = {
    value: name
    for name, value in sorted(globals().items())
    if isinstance(value, int) and (name.startswith("RIC_") or name.startswith("A1_"))
}
"""Message type number -> its standard name (as descriptors spell it)."""


def message_type_name(mtype: int) -> str:
    """The standard name of ``mtype``, or ``"UNKNOWN(<n>)"`` for a number we do not know."""
    return MESSAGE_TYPE_NAMES.get(int(mtype), f"UNKNOWN({int(mtype)})")
