"""LightTune core: forward-forward BLER prediction, LightTune online fine-tuning and
link adaptation (TS 38.214 tables, OLLA, CQI-Tune, RI-CQI-Tune). numpy only, no I/O."""

__version__ = "0.1.0"
