"""Link adaptation: TS 38.214 CQI/MCS tables, TBS, OLLA, CQI-Tune and RI-CQI-Tune.

numpy only, vectorised over UEs. Modules:

* :mod:`.tables` — CQI tables 1–3, MCS tables 1–3, CQI → SE / MCS look-ups.
* :mod:`.tbs` — transport block size (TS 38.214 §5.1.3.2), LDPC base graph and code-block
  segmentation (TS 38.212).
* :mod:`.olla` — outer-loop link adaptation and MCS selection from CQI and offset.
* :mod:`.tune` — CQI-Tune and RI-CQI-Tune on top of a BLER predictor.
"""

from lighttune_core.linkadapt.olla import (
    DEFAULT_CLAMP_DB,
    DEFAULT_DELTA_UP_DB,
    DEFAULT_SHANNON_GAP_DB,
    DEFAULT_TARGET_BLER,
    Olla,
    default_cqi_sinr_db,
    default_mcs_sinr_db,
    delta_down_db,
    olla_mcs,
    olla_update,
    shannon_sinr_threshold_db,
)
from lighttune_core.linkadapt.tables import (
    CQI_TABLES,
    MAX_MCS_BY_TABLE,
    MCS_TABLES,
    NO_TRANSMISSION,
    cqi_to_mcs,
    mcs_spectral_efficiency,
    spectral_efficiency,
)
from lighttune_core.linkadapt.tbs import (
    TBS_TABLE,
    code_block_size,
    ldpc_base_graph,
    n_code_blocks,
    transport_block_size,
)
from lighttune_core.linkadapt.tune import (
    BlerPredictor,
    CqiTuneResult,
    RiCqiTuneResult,
    SearchBudget,
    cqi_tune,
    rank_cqi_anchor,
    ri_cqi_tune,
)

__all__ = [
    "CQI_TABLES",
    "DEFAULT_CLAMP_DB",
    "DEFAULT_DELTA_UP_DB",
    "DEFAULT_SHANNON_GAP_DB",
    "DEFAULT_TARGET_BLER",
    "MAX_MCS_BY_TABLE",
    "MCS_TABLES",
    "NO_TRANSMISSION",
    "TBS_TABLE",
    "BlerPredictor",
    "CqiTuneResult",
    "Olla",
    "RiCqiTuneResult",
    "SearchBudget",
    "code_block_size",
    "cqi_to_mcs",
    "cqi_tune",
    "rank_cqi_anchor",
    "default_cqi_sinr_db",
    "default_mcs_sinr_db",
    "delta_down_db",
    "ldpc_base_graph",
    "mcs_spectral_efficiency",
    "n_code_blocks",
    "olla_mcs",
    "olla_update",
    "ri_cqi_tune",
    "shannon_sinr_threshold_db",
    "spectral_efficiency",
    "transport_block_size",
]
