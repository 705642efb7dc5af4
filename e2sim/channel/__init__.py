"""Radio model of the simulator: TDL fading, Doppler, antenna correlation, per-rank SINR
and BLER curves (see ``docs/channel.md``)."""

from e2sim.channel.link import DEFAULT_SUBBAND_RB, LinkChannel, SlotSINR
from e2sim.channel.scenario import Scenario, paper_scenario

__all__ = ["DEFAULT_SUBBAND_RB", "LinkChannel", "Scenario", "SlotSINR", "paper_scenario"]
