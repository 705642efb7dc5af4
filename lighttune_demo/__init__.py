"""The closed-loop demo (``lighttune-demo``): e2sim and the xApp as two processes over E2.

It sits above both: it starts ``lighttune-xapp`` (local mode) and ``e2sim run --compare`` as
child processes and reads their JSON results, so neither the xApp nor the simulator imports
the other.
"""
