"""E2 for both ends: the E2AP codec (APER), the LT-LINKADAPT service model (protobuf), E2SM-KPM
(v2/v3, with the decoders for real nodes' variants), the E2 setup/subscription/control state
machines of a RIC and of an E2 node (:mod:`lighttune_e2.endpoints`) and E2 over SCTP or
length-prefixed TCP (:mod:`lighttune_e2.transport`).

Both the xApp (``lighttune_xapp``) and the E2 node simulator (``e2sim``) import this package;
it imports neither of them (``lighttune_core`` and third-party codecs only).
"""
