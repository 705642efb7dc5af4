"""E2SM-KPM (v2.01, v2.03, v3.00/v4.00 content) codec: bytes <-> frozen dataclasses."""
