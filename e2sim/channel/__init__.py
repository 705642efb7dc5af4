"""Radio model of the simulator: TDL fading, Doppler, antenna correlation, per-rank SINR
and BLER curves (see ``README.md`` in this folder)."""

from e2sim.channel.link import DEFAULT_SUBBAND_RB, LinkChannel, SlotSINR, auto_subband_rb
from e2sim.channel.scenario import Scenario, paper_scenario

__all__ = ["DEFAULT_SUBBAND_RB", "auto_subband_rb", "LinkChannel", "Scenario", "SlotSINR", "paper_scenario"]
