"""Seeded synthetic BLER tasks for tests and benchmarks of the FF model (no radio simulation).

:func:`synthetic_bler_task` samples look like :func:`lighttune_core.features.build_features`
output and carry a BLER label that follows a link-budget rule:

* per-layer SINR ``s_j ~ U(-5, 35)`` dB for the ``ri ~ U{1..4}`` reported layers (0 beyond),
  wideband CSI-RS SNR = mean layer SINR + 3 dB, reported CQI from the SINR, candidate rank
  ``r ~ U{1..4}``, candidate CQI ``c ~ U{1..15}``, OLLA offset ``~ U(-3, 3)`` dB, previous
  BLER ``~ U(0, 1)`` and CSI age ``~ U{10, 40, 80}`` ms;
* effective SINR of the candidate: the mean reported-layer SINR, minus ``3 (r − ri)`` dB
  per extra layer, plus the OLLA offset, minus ``shift_db``;
* the SINR the candidate CQI needs: ``2 c − 8`` dB (about 2 dB per CQI step);
* BLER ``= 1 / (1 + exp((SINR_eff − SINR_needed) / 1.5 dB))``, quantised to ``{0.0, ..., 1.0}``.

``shift_db > 0`` is a harsher channel (the same features now mean a higher BLER).

:func:`synthetic_threshold_task` is a separable two-level task with a margin (convergence
and adaptation tests). :func:`random_reports` draws in-range per-UE link reports (decision
and codec tests, loop benchmarks).
"""

from __future__ import annotations

import numpy as np

from lighttune_core.features import BLER_STEP, CSI_AGE_SCALE_MS, N_FEATURES, OLLA_SCALE_DB, SINR_SCALE_DB
from lighttune_core.report import MAX_CQI, MAX_RANK, LinkReports


def synthetic_bler_task(
    n: int, seed: int | None = 0, shift_db: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples of the synthetic task.

    Args:
        n: number of samples (>= 0).
        seed: seed of the generator.
        shift_db: channel shift, dB (SINR lost against the base task).

    Returns:
        ``(features float64 [n, 12], labels float64 [n])``, labels in {0.0, 0.1, ..., 1.0}.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    ri = rng.integers(1, MAX_RANK + 1, n)
    sinr = rng.uniform(-5.0, 35.0, (n, MAX_RANK))
    used = np.arange(MAX_RANK)[None, :] < ri[:, None]
    sinr = np.where(used, sinr, 0.0)
    mean_sinr = sinr.sum(axis=1) / ri
    reported_cqi = np.clip(np.round((mean_sinr + 8.0) / 2.0), 0, MAX_CQI)
    rank = rng.integers(1, MAX_RANK + 1, n)
    cqi = rng.integers(1, MAX_CQI + 1, n)
    olla = rng.uniform(-3.0, 3.0, n)
    prev = rng.uniform(0.0, 1.0, n)
    age = rng.choice(np.array([10.0, 40.0, 80.0]), n)
    effective = mean_sinr - 3.0 * (rank - ri) + olla - shift_db
    needed = 2.0 * cqi - 8.0
    bler = 1.0 / (1.0 + np.exp((effective - needed) / 1.5))
    labels = np.round(np.round(bler / BLER_STEP) * BLER_STEP, 10)

    x = np.empty((n, N_FEATURES))
    x[:, 0:4] = sinr / SINR_SCALE_DB
    x[:, 4] = reported_cqi / MAX_CQI
    x[:, 5] = ri / MAX_RANK
    x[:, 6] = rank / MAX_RANK
    x[:, 7] = cqi / MAX_CQI
    x[:, 8] = olla / OLLA_SCALE_DB
    x[:, 9] = prev
    x[:, 10] = age / CSI_AGE_SCALE_MS
    x[:, 11] = (mean_sinr + 3.0) / SINR_SCALE_DB
    return x, labels


def synthetic_threshold_task(
    n: int, seed: int | None = 0, edge: float = 0.5, margin: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """A separable two-level task: BLER 1.0 below an SINR edge, 0.0 above it.

    Features ``x ~ U(0, 1)^12`` except ``x_0`` (the scaled layer-1 SINR), drawn half from
    ``U(0, edge − margin)`` with label 1.0 and half from ``U(edge + margin, 1)`` with label
    0.0. The margin makes the task realisable with slack, the setting of LightTune's
    convergence guarantee (finitely many updates). Moving ``edge`` shifts the distribution
    (the same features now have another label).

    Returns:
        ``(features float64 [n, 12], labels float64 [n])``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 < edge - margin and edge + margin < 1.0:
        raise ValueError(f"need 0 < edge - margin and edge + margin < 1, got edge={edge}, margin={margin}")
    rng = np.random.default_rng(seed)
    x = rng.random((n, N_FEATURES))
    low = rng.random(n) < 0.5
    x[:, 0] = np.where(low, rng.uniform(0.0, edge - margin, n), rng.uniform(edge + margin, 1.0, n))
    return x, np.where(low, 1.0, 0.0)


def random_reports(
    n: int,
    seed: int | None = 0,
    *,
    consistent: bool = True,
    ue_ids: np.ndarray | None = None,
    first_tx: tuple[int, int] = (0, 200),
    nack_rate: float = 0.2,
    cqi_table: int = 1,
) -> LinkReports:
    """Seeded in-range reports of ``n`` UEs (every field valid per ``LinkReports.validate``).

    Common to both kinds: RI ``~ U{1..4}``, per-layer SINR ``~ U(-5, 30)`` dB for the reported
    layers (NaN beyond), CQI ``~ U{0..15}``, CSI-RS SNR ``~ U(-10, 40)`` dB, MCS ``~ U{0..28}``,
    OLLA offset ``~ U(-5, 5)`` dB, CSI age ``~ U(0, 80)`` ms.

    * ``consistent`` (default): rank = RI; first transmissions ``~ U{first_tx[0] ..
      first_tx[1] − 1}`` with ``Binomial(·, nack_rate)`` NACKs; served bits ``~ U{0..10^6 − 1}``.
    * otherwise (the "stress" reports of the loop benchmarks): rank ``~ U{1..4}`` drawn
      independently of RI, ACKs ``~ U{0..99}`` and NACKs ``~ U{0..19}`` drawn independently,
      served bits ``~ U{0..10^9 − 1}``.

    Args:
        ue_ids: int [n] UE ids (default ``0 .. n − 1``).
    """
    rng = np.random.default_rng(seed)
    ri = rng.integers(1, MAX_RANK + 1, n)
    sinr = rng.uniform(-5, 30, (n, MAX_RANK))
    sinr[np.arange(MAX_RANK)[None, :] >= ri[:, None]] = np.nan
    ids = np.arange(n) if ue_ids is None else np.asarray(ue_ids, dtype=np.int64)
    if consistent:
        total = rng.integers(first_tx[0], first_tx[1], n)
        nack = rng.binomial(total, nack_rate)
        cqi, snr, rank = rng.integers(0, MAX_CQI + 1, n), rng.uniform(-10, 40, n), ri
        mcs, olla = rng.integers(0, 29, n), rng.uniform(-5, 5, n)
        n_ack, n_nack, served_max = total - nack, nack, 10**6
    else:
        cqi, snr, rank = rng.integers(0, MAX_CQI + 1, n), rng.uniform(-10, 40, n), rng.integers(1, MAX_RANK + 1, n)
        mcs, olla = rng.integers(0, 29, n), rng.uniform(-5, 5, n)
        n_ack, n_nack, served_max = rng.integers(0, 100, n), rng.integers(0, 20, n), 10**9
    return LinkReports(
        ue_id=ids, ri=ri, cqi=cqi, sinr_layers_db=sinr, csirs_snr_db=snr, rank=rank, mcs=mcs,
        olla_offset_db=olla, n_ack=n_ack, n_nack=n_nack, served_bits=rng.integers(0, served_max, n),
        csi_age_ms=rng.uniform(0, 80, n), cqi_table=cqi_table,
    )
