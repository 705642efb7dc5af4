"""A second numpy/OpenBLAS CPU-feature setting for the float-sensitive tests.

Float sums and vectorised math (exp/log, BLAS dot products) give results whose last bits
depend on the SIMD kernels numpy and OpenBLAS pick for the CPU (AVX-512 vs AVX2 vs SSE),
so data recorded on one CPU cannot be compared bit for bit on another. ``.ci/run`` runs
the tests marked ``float_sensitive`` a second time with the kernels of one CPU tier lower
than the machine's, as if on another CPU:

- AVX-512 machine: numpy's AVX-512 kernels off, OpenBLAS ``Haswell`` (an AVX2 CPU);
- AVX2 machine: numpy's AVX/AVX2/FMA3 kernels off, OpenBLAS ``Sandybridge`` (AVX, no FMA);
- otherwise: every numpy kernel above the build's baseline off, OpenBLAS as detected.

Usage:
    python .ci/alt_cpu_env.py          # prints KEY=VALUE lines (NPY_DISABLE_CPU_FEATURES, OPENBLAS_CORETYPE)
    python .ci/alt_cpu_env.py --check  # exit 1 unless the current process runs with such a setting
"""

from __future__ import annotations

import sys

_AVX2_TIER = ("X86_V3", "AVX", "F16C", "FMA3", "AVX2")


def _numpy_cpu() -> tuple[list[str], list[str], dict[str, bool]]:
    """(baseline, dispatchable, feature -> available on this CPU and not disabled)."""
    try:
        from numpy._core import _multiarray_umath as umath  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import _multiarray_umath as umath  # type: ignore[no-redef]
    return list(umath.__cpu_baseline__), list(umath.__cpu_dispatch__), dict(umath.__cpu_features__)


def alternative_setting() -> dict[str, str]:
    """Environment variables of the second setting for this machine (empty if there is none)."""
    baseline, dispatch, features = _numpy_cpu()
    available = [f for f in dispatch if features.get(f) and f not in baseline]
    avx512 = [f for f in available if f.startswith("AVX512") or f == "X86_V4"]
    if avx512:
        return {"NPY_DISABLE_CPU_FEATURES": " ".join(avx512), "OPENBLAS_CORETYPE": "Haswell"}
    avx2 = [f for f in available if f in _AVX2_TIER]
    if avx2:
        return {"NPY_DISABLE_CPU_FEATURES": " ".join(avx2), "OPENBLAS_CORETYPE": "Sandybridge"}
    if available:
        return {"NPY_DISABLE_CPU_FEATURES": " ".join(available)}
    return {}


def check() -> int:
    """0 when numpy runs with the features named in NPY_DISABLE_CPU_FEATURES off and
    OpenBLAS with the OPENBLAS_CORETYPE asked for; 1 (with the reason) otherwise."""
    import os

    from threadpoolctl import threadpool_info

    wanted_off = os.environ.get("NPY_DISABLE_CPU_FEATURES", "").split()
    _baseline, _dispatch, features = _numpy_cpu()
    still_on = [f for f in wanted_off if features.get(f)]
    if still_on:
        print(f"alt_cpu_env: numpy still uses {' '.join(still_on)}", file=sys.stderr)
        return 1
    core = os.environ.get("OPENBLAS_CORETYPE")
    if core:
        import numpy as np

        np.dot(np.ones((4, 4)), np.ones((4, 4)))  # make sure the BLAS library is loaded
        arch = [str(i.get("architecture", "")) for i in threadpool_info() if i.get("internal_api") == "openblas"]
        if arch and not any(a.lower() == core.lower() for a in arch):
            print(f"alt_cpu_env: OpenBLAS runs {', '.join(arch)}, not {core}", file=sys.stderr)
            return 1
    print(f"alt_cpu_env: numpy without [{' '.join(wanted_off) or '-'}], OpenBLAS core {core or 'as detected'}")
    return 0


def main(argv: list[str]) -> int:
    """Command-line entry; returns the exit code."""
    if argv[1:] == ["--check"]:
        return check()
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    for key, value in alternative_setting().items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
