"""Typed errors of the E2 layer.

Every failure that bad input can cause in the E2 codecs and state machines is one of
these, so a service loop can catch :class:`E2Error`, count it, log it and carry on.
"""

from __future__ import annotations


class E2Error(Exception):
    """Base class of all E2 errors raised by :mod:`lighttune_e2`."""


class E2DecodeError(E2Error):
    """Bytes that are not a valid (or not a supported) E2AP PDU or service-model payload."""


class E2EncodeError(E2Error):
    """A message that cannot be encoded: a field is out of its ASN.1 / protobuf range."""


class E2ProtocolError(E2Error):
    """A well-formed message that is illegal in the current protocol state.

    Examples: a RIC Indication for a subscription that does not exist, a response whose
    transaction id matches no outstanding request, a second E2 Setup on a set-up link.
    """
