"""Transports of the xApp: ``direct`` (E2 over SCTP/TCP, local mode) and ``ric`` (RMR, in the RIC)."""
