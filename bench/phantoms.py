"""How fast the demo archive's phantom OPG renders at full size (2900x1400, a real OPG's size): the
median of three renders after a warm-up. Target: under 1 s (the archive of a benchmark renders
hundreds). A timing, so measured here rather than asserted in the tests.

    python -m bench.phantoms
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from bench.common import markdown_table, save
from pipeline.demo import phantoms

HEIGHT, WIDTH = 1400, 2900


def main() -> None:
    phantoms.render_opg(np.random.default_rng(0), HEIGHT, WIDTH)   # warm-up (imports, first allocations)
    times = []
    for k in range(3):
        t0 = time.perf_counter()
        phantoms.render_opg(np.random.default_rng(k), HEIGHT, WIDTH)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    row = {"size": f"{WIDTH}x{HEIGHT}", "median_s": median, "runs_s": ", ".join(f"{t:.2f}" for t in times),
           "target": "< 1 s", "met": median < 1.0}
    save("phantoms", {"rows": [row]}, markdown_table([row], ["size", "median_s", "runs_s", "target", "met"]))


if __name__ == "__main__":
    main()
