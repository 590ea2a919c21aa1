"""Run every benchmark in order: ``python -m bench`` (or ``make bench``)."""

from __future__ import annotations

import importlib
import sys

BENCHES = [
    "bench.gait_bench",
    "bench.fit_decoder_bench",
    "bench.stream_bench",
    "bench.freshness_bench",
    "bench.daily_bench",
    "bench.simulate_bench",
    "bench.nightly_bench",
    "bench.runners_bench",
    "bench.gateway_bench",
]


def main() -> int:
    failed = []
    for name in BENCHES:
        print(f"\n=== {name} ===", flush=True)
        try:
            importlib.import_module(name).main()
        except Exception as exc:  # keep going: one broken bench should not hide the others
            print(f"FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
