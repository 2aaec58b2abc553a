"""Small helpers shared by the benchmarks: timing, JSON + markdown output under reports/bench/."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from pipeline.core import atomic
from pipeline.core.tables import cpu_count

OUT = Path("reports/bench")


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": cpu_count(),
            "machine": platform.machine()}


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def save(name: str, payload: dict, table: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), **payload}
    atomic.write_text(OUT / f"{name}.json", json.dumps(payload, indent=2) + "\n")
    atomic.write_text(OUT / f"{name}.md", f"## {name}\n\n{table}\n")
    print(table)
    return OUT / f"{name}.json"
