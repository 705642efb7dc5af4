"""Transports of the xApp inside the RIC: RMR with the Subscription Manager (``ric``). Direct E2 over SCTP/TCP (local mode) lives in :mod:`lighttune_e2.transport`."""
