"""The 12 model features built from a per-UE link report and a candidate decision.

One function, :func:`build_features`, serves offline training (the simulator's dataset),
the xApp (both report paths) and the simulator's in-process policy alike.

The model predicts the BLER that a *candidate* decision (rank ``r``, CQI ``c``), applied by
the DU on top of its OLLA, will get in the next CSI-RS period. The features are:

=====  ==========================================  ==============================
index  feature                                     scaling (value fed to model)
=====  ==========================================  ==============================
0-3    per-layer SINR of the reported rank, dB     SINR / 40 dB; 0 beyond ``ri``
4      reported wideband CQI                       CQI / 15
5      reported rank indicator RI                  RI / 4
6      candidate rank r                            r / 4
7      candidate CQI c                             c / 15
8      DU's OLLA offset, dB                        offset / 10 dB
9      previous period's true BLER                 BLER in [0, 1]; 0.1 if unknown
10     CSI age at the start of the period, ms      age / 80 ms
11     wideband CSI-RS SNR, dB                     SNR / 40 dB
=====  ==========================================  ==============================

Missing layers (``l >= ri``) carry 0 so that the RI feature tells the model how many
layer SINRs are real; an unknown previous BLER (first period, or a period with no
transmission) carries the OLLA target 0.1, the value the DU steers towards.

Labels are BLER values quantised with step λ = 0.1 (11 classes 0.0 .. 1.0):
``y = λ · ⌊nNACK / (nACK + nNACK) / λ + 1/2⌋`` (halves round up, so a period with 1 NACK
in 20 transmissions, BLER 0.05, is labelled 0.1, not 0.0).
"""

from __future__ import annotations

import numpy as np

from lighttune_core.report import MAX_CQI, MAX_RANK, LinkReports

N_FEATURES: int = 12
"""Length of the feature vector (the FF network input is these plus the label)."""

BLER_STEP: float = 0.1
"""Label quantisation step λ."""

BLER_LABELS: np.ndarray = np.round(np.arange(11) * BLER_STEP, 10)
"""The 11 candidate labels {0.0, 0.1, ..., 1.0}, float64 [11]."""

UNKNOWN_PREV_BLER: float = 0.1
"""Value used for the previous-period BLER when it is unknown (the OLLA target)."""

SINR_SCALE_DB: float = 40.0
OLLA_SCALE_DB: float = 10.0
CSI_AGE_SCALE_MS: float = 80.0

FEATURE_NAMES: tuple[str, ...] = (
    "sinr_layer1",
    "sinr_layer2",
    "sinr_layer3",
    "sinr_layer4",
    "reported_cqi",
    "reported_ri",
    "candidate_rank",
    "candidate_cqi",
    "olla_offset",
    "prev_bler",
    "csi_age",
    "csirs_snr",
)


def build_features(
    reports: LinkReports,
    rank: np.ndarray | int,
    cqi: np.ndarray | int,
    prev_bler: np.ndarray | None = None,
) -> np.ndarray:
    """Feature vectors for candidate decisions ``(rank, cqi)`` of every UE.

    Args:
        reports: the cell's reports, ``N`` UEs.
        rank: candidate rank(s), 1 .. 4; shape ``[]``, ``[N]`` or ``[N, K]`` (``K``
            candidates per UE).
        cqi: candidate CQI(s), 0 .. 15; same broadcasting as ``rank``.
        prev_bler: float [N], previous period's true BLER per UE, NaN where unknown;
            ``None`` (the normal case) takes it from the reports themselves: the HARQ
            counts of a report are those of the period that has just ended, so
            ``reports.true_bler`` is the previous period's BLER of the decision to come.

    Returns:
        float64 ``[N, 12]`` if the candidates are ``[]`` or ``[N]``; ``[N, K, 12]`` for
        ``[N, K]`` candidates.

    Raises:
        ValueError: candidate rank/CQI out of range or shapes that do not broadcast.
    """
    n = len(reports)
    rank_a = np.asarray(rank, dtype=np.float64)
    cqi_a = np.asarray(cqi, dtype=np.float64)
    if ((rank_a < 1) | (rank_a > MAX_RANK)).any():
        raise ValueError(f"candidate rank must be in 1..{MAX_RANK}")
    if ((cqi_a < 0) | (cqi_a > MAX_CQI)).any():
        raise ValueError(f"candidate CQI must be in 0..{MAX_CQI}")
    cand_ndim = max(rank_a.ndim, cqi_a.ndim)
    if cand_ndim > 2:
        raise ValueError("candidates must have shape [], [N] or [N, K]")
    try:
        if cand_ndim == 2:
            # a [N] candidate is per UE: lift it to [N, 1] before finding K
            lifted = [a[:, None] if a.ndim == 1 else a for a in (rank_a, cqi_a)]
            k = np.broadcast_shapes(lifted[0].shape, lifted[1].shape)[1]
            shape = (n, k)
        else:
            shape = (n,)
        rank_b, cqi_b = (
            a if a.shape == shape else np.broadcast_to(a if a.ndim != 1 or cand_ndim == 1 else a[:, None], shape)
            for a in (rank_a, cqi_a)
        )
    except ValueError as exc:
        raise ValueError(f"candidate shapes {rank_a.shape} and {cqi_a.shape} do not fit {n} UEs") from exc

    prev = reports.true_bler if prev_bler is None else np.asarray(prev_bler, dtype=np.float64)
    if prev.shape != (n,):
        raise ValueError(f"prev_bler must have shape ({n},), got {prev.shape}")
    prev = np.where(np.isfinite(prev), np.minimum(np.maximum(prev, 0.0), 1.0), UNKNOWN_PREV_BLER)

    layer = np.arange(MAX_RANK)[None, :]
    used = layer < reports.ri[:, None]
    sinr = np.where(used & np.isfinite(reports.sinr_layers_db), reports.sinr_layers_db, 0.0)

    base = np.empty((n, N_FEATURES), dtype=np.float64)
    base[:, 0:4] = sinr / SINR_SCALE_DB
    base[:, 4] = reports.cqi / MAX_CQI
    base[:, 5] = reports.ri / MAX_RANK
    base[:, 8] = reports.olla_offset_db / OLLA_SCALE_DB
    base[:, 9] = prev
    base[:, 10] = reports.csi_age_ms / CSI_AGE_SCALE_MS
    base[:, 11] = reports.csirs_snr_db / SINR_SCALE_DB

    if cand_ndim == 2:
        out = np.repeat(base[:, None, :], shape[1], axis=1)
    else:
        out = base
    out[..., 6] = rank_b / MAX_RANK
    out[..., 7] = cqi_b / MAX_CQI
    return out


def bler_label(n_ack: np.ndarray, n_nack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantised true BLER of a period and whether it is defined.

    ``y = λ · round(nNACK / (nACK + nNACK) / λ)`` with λ = 0.1.

    Args:
        n_ack: int [N], first-transmission ACKs of the period (>= 0).
        n_nack: int [N], first-transmission NACKs of the period (>= 0).

    Returns:
        ``(label, valid)``: float64 [N] in {0.0, ..., 1.0} (halves round up) and bool [N].
        A period with no transmission (nACK + nNACK = 0) has no BLER: ``valid`` is False and its label is NaN;
        such a period is never learned from.

    Raises:
        ValueError: negative counts or mismatched shapes.
    """
    a = np.asarray(n_ack)
    b = np.asarray(n_nack)
    if a.shape != b.shape:
        raise ValueError(f"n_ack {a.shape} and n_nack {b.shape} differ in shape")
    if (a < 0).any() or (b < 0).any():
        raise ValueError("HARQ counts must be >= 0")
    total = a + b
    valid = total > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(valid, b / np.maximum(total, 1), np.nan)
    label = np.round(np.floor(ratio / BLER_STEP + 0.5 + 1e-9) * BLER_STEP, 10)
    return label, valid
