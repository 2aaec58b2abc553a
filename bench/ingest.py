"""Ingest throughput on full-size demo OPGs (about 2900x1400), 1 and 2 worker processes, against
the floor of decoding the same files alone and of decoding + encoding them (no hashing, no pool
bookkeeping).

    python -m bench.ingest [--n 16] [--width 2900] [--height 1400]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import tempfile
from pathlib import Path

from bench.common import markdown_table, save, timed
from pipeline import ingest, phantoms, pngio
from pipeline.decode import DecodeError, decode_file
from pipeline.ingest import IngestConfig


def _decode_only(path: Path) -> int:
    try:
        return decode_file(path, "bench").pixels.size
    except DecodeError:
        return 0


def _decode_encode(path: Path) -> int:
    try:
        return len(pngio.encode_png16(decode_file(path, "bench").pixels, 1))
    except DecodeError:
        return 0


def _floor(fn, paths: list[Path], workers: int) -> float:
    if workers == 1:
        return timed(lambda: [fn(p) for p in paths])[0]
    ctx = multiprocessing.get_context("forkserver")
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=ingest._init_worker) as pool:
        list(pool.map(_decode_only, paths[:workers]))  # warm the workers (imports) before timing
        return timed(lambda: list(pool.map(fn, paths)))[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=16, help="clean full-size OPGs to generate")
    ap.add_argument("--width", type=int, default=2900)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        cfg = phantoms.PhantomsConfig(n_clean=args.n, n_per_defect=0, width=args.width, height=args.height)
        phantoms.build_archive(raw, cfg, seed=1)
        paths = [p for p in ingest.list_raw_files(raw) if p.name != "ground_truth.csv"]
        rows = []
        for workers in (1, 2):
            t_dec = _floor(_decode_only, paths, workers)
            t_floor = _floor(_decode_encode, paths, workers)
            t_ing, _ = timed(ingest.run_ingest, IngestConfig(raw_dir=str(raw)), Path(tmp) / f"out{workers}",
                             workers=workers, progress=False)
            n = len(paths)
            rows.append({"workers": workers, "images": n,
                         "decode_only_img_s": n / t_dec, "decode_encode_floor_img_s": n / t_floor,
                         "ingest_img_s": n / t_ing, "ingest_ms_per_img": 1000 * t_ing / n,
                         "ingest_vs_floor": t_ing / t_floor})
        rows[1]["speedup_vs_1_worker"] = rows[1]["ingest_img_s"] / rows[0]["ingest_img_s"]
    cols = ["workers", "images", "decode_only_img_s", "decode_encode_floor_img_s", "ingest_img_s",
            "ingest_ms_per_img", "ingest_vs_floor", "speedup_vs_1_worker"]
    save("ingest", {"size": [args.height, args.width], "rows": rows}, markdown_table(rows, cols))


if __name__ == "__main__":
    main()
