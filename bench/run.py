"""`make bench`: every benchmark, each writing reports/bench/<name>.json and .md, then one summary
table in reports/bench/README.md."""
from __future__ import annotations

import importlib
import sys
import time

from bench.common import OUT
from pipeline.core import atomic

BENCHMARKS = ["preprocess", "train", "demo", "crop_fit", "duplicates", "metric_validation", "quality", "phantoms",
              "workpool"]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"bench.{name}":
                print(f"[bench] {name}: not present, skipped")
                continue
            raise
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        saved_argv = sys.argv
        sys.argv = [f"bench.{name}"]
        try:
            module.main()
        except Exception as e:  # one broken benchmark must not hide the others
            failed.append(f"{name}: {type(e).__name__}: {e}")
        finally:
            sys.argv = saved_argv
        print(f"[bench] {name}: {time.perf_counter() - t0:.0f} s")
    parts = [p.read_text() for p in sorted(OUT.glob("*.md")) if p.name != "README.md"]
    atomic.write_text(OUT / "README.md", "# Benchmarks\n\n" + "\n".join(parts))
    for f in failed:
        print(f"[bench] FAILED {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
