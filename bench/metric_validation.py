"""Metric validation: does every quality metric rank the failure modes real GANs produce below
unseen real radiographs? Writes reports/bench/metric_validation.{md,json}.

For each data set, images are split at random into a reference set (the stand-in for the
training images a generator learned from) and an unseen set of the same source. Every candidate
set is scored against the reference with ``evaluate``'s own code and parameters
(:func:`pipeline.metrics.evaluate.quality_metrics`, the dataclass defaults, which equal
params.yaml): the unseen real images give the real-vs-real value, the failure modes of
:mod:`bench.failures` (made from the unseen images, or the reference's mean image) what
the metric must rank worse. A metric may head the quality report's verdict only if it ranks every
failure mode worse than real in every split of every data set.

  * phantoms: :func:`pipeline.demo.phantoms.render_opg` at 128x256, area-downsampled to 36x64;
    25 + 25 images per split, 2 splits.
  * opg-dev: the 51 real OPGs of ../shared/data/opg-dev (four sources, two devices, adults and
    children), decoded as ingest does, area-downsampled to 36x64 (aspect 2:1 squashed to 16:9);
    25 reference + 26 unseen per split, 3 random splits (skipped when the folder is absent).
    Only aggregate numbers are written.

Generalisation: the ranking must hold on every split (other images in each role) and on both data
sets (synthetic phantoms and real radiographs of several devices); a split is a fresh draw of which
real images are "unseen", not a re-run on the same numbers.

``--timing REF`` also times ``evaluate``'s distribution metrics (:func:`compare`, everything but
the memorisation check, which this work does not change) on the demo's image counts and sizes
(29 held-out, 67 train, 64 synthetic; 72x128 and 64x64) with the code of git ref ``REF`` and of
this tree, alternately in one run (the ratio is what counts: the machine's speed varies).

    python -m bench.metric_validation [--timing dc7ed75] [--quick]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.common import save
from pipeline.metrics.evaluate import EvaluateConfig, quality_metrics
from bench.failures import FAILURE_MODES, failure_sets
from pipeline.metrics.metric_table import HEADLINE, METRICS

REPO = Path(__file__).resolve().parents[1]
OPG_DEV = REPO.parent / "shared" / "data" / "opg-dev"
H, W = 36, 64
REAL = "real (unseen)"


def phantoms(n: int, seed: int) -> np.ndarray:
    from pipeline.demo.phantoms import render_opg  # reason: only the phantom data set needs the demo package

    rng = np.random.default_rng(seed)
    return np.stack([cv2.resize(render_opg(rng, 128, 256)[0], (W, H), interpolation=cv2.INTER_AREA)
                     for _ in range(n)]).astype(np.float32)


def real_opgs(folder: Path) -> np.ndarray:
    from pipeline.core import pngio  # reason: only the real data set is decoded
    from pipeline.ingest.decode import decode_file  # reason: only the real data set is decoded

    files = sorted((folder / "images").iterdir())
    return np.stack([cv2.resize(pngio.to_float01(decode_file(f, "bench").pixels), (W, H),
                                interpolation=cv2.INTER_AREA) for f in files]).astype(np.float32)


def worse(metric: str, value, real) -> bool | None:
    """Does ``value`` rank strictly worse than the real-vs-real ``real``? None: not computed."""
    if not isinstance(value, float) or not isinstance(real, float):
        return None
    return value > real if METRICS[metric][0] == "lower" else value < real


def score_split(reference: np.ndarray, unseen: np.ndarray, seed: int, cfg: EvaluateConfig) -> dict:
    """{candidate: {metric: value}} for the unseen real set and every failure mode."""
    sets = {REAL: unseen, **failure_sets(reference, unseen, seed)}
    cache: dict = {}
    out = {}
    for name, images in sets.items():
        t0 = time.perf_counter()
        m = quality_metrics(reference, images, cfg, seed, None, cache)
        out[name] = {k: v["value"] for k, v in m.items() if isinstance(v["value"], float)}
        print(f"  {name:18s} {time.perf_counter() - t0:5.1f} s  " +
              " ".join(f"{k} {v:.3g}" for k, v in out[name].items()), flush=True)
    return out


def validate(name: str, images_fn, splits: list[int], cfg: EvaluateConfig) -> dict:
    runs = []
    for s in splits:
        reference, unseen = images_fn(s)
        print(f"[{name}] split {s}: {len(reference)} reference, {len(unseen)} unseen, {H}x{W}", flush=True)
        runs.append(score_split(reference, unseen, s, cfg))
    metrics = [m for m in METRICS if m in runs[0][REAL]]
    values = {c: {m: [r[c][m] for r in runs] for m in metrics} for c in runs[0]}
    worse_count = {c: {m: sum(bool(worse(m, r[c][m], r[REAL][m])) for r in runs) for m in metrics}
                   for c in FAILURE_MODES}
    fooled = {m: [c for c in FAILURE_MODES if worse_count[c][m] < len(runs)] for m in metrics}
    return {"size": [H, W], "images_per_set": [len(reference), len(unseen)], "splits": splits,
            "values": values, "worse_in_splits": worse_count, "fooled_by": fooled}


def table(name: str, res: dict) -> str:
    """metric x failure mode: mean value over splits, the real-vs-real value, and whether the failure
    ranks worse in every split (yes) or in how many (e.g. 1/3)."""
    n = len(res["splits"])
    modes = list(FAILURE_MODES)
    head = "| metric (better) | real vs real | " + " | ".join(modes) + " |"
    lines = [head, "|" + "---|" * (len(modes) + 2)]
    for m, real in res["values"][REAL].items():
        cells = []
        for c in modes:
            k = res["worse_in_splits"][c][m]
            mark = "worse" if k == n else ("**NOT worse**" if k == 0 else f"**worse {k}/{n}**")
            cells.append(f"{np.mean(res['values'][c][m]):.3g} {mark}")
        star = " (headline)" if m in HEADLINE else ""
        lines.append(f"| {m} ({METRICS[m][0]}){star} | {np.mean(real):.3g} | " + " | ".join(cells) + " |")
    return (f"### {name}: {res['size'][0]}x{res['size'][1]}, {res['images_per_set'][0]} reference + "
            f"{res['images_per_set'][1]} unseen images, {n} random splits (mean over splits)\n\n" + "\n".join(lines))


# ------------------------------------------------------------------------------------------- timing
TIMING_SNIPPET = r"""
import sys, time, numpy as np, cv2, torch
torch.set_num_threads(1)  # as stages/evaluate.py runs them
from pipeline.demo.phantoms import render_opg
from pipeline.metrics.evaluate import EvaluateConfig, compare
rng = np.random.default_rng(0)
total = 0.0
for h, w in ((72, 128), (64, 64)):
    def draw(n, blur=0.0):
        out = [cv2.resize(render_opg(rng, 2 * h, 4 * h)[0], (w, h), interpolation=cv2.INTER_AREA) for _ in range(n)]
        return np.stack([cv2.GaussianBlur(x, (0, 0), blur) if blur else x for x in out]).astype(np.float32)
    held, train, syn = draw(29), draw(67), draw(64, 1.0)
    t0 = time.perf_counter()
    compare(held, syn, train, EvaluateConfig(), 20261122)
    total += time.perf_counter() - t0
print(total)
"""


def timing(ref: str, rounds: int = 2) -> dict:
    """Seconds of :func:`compare` on the demo's counts, code of ``ref`` vs this tree, alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "archive", ref, "pipeline"], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(rounds):
            for label, root in (("before", base), ("after", REPO)):
                env = {**os.environ, "PYTHONPATH": str(root)}
                r = subprocess.run([sys.executable, "-c", TIMING_SNIPPET], cwd=root, env=env, check=True,
                                   capture_output=True, text=True)
                times[label].append(float(r.stdout.strip().splitlines()[-1]))
                print(f"[timing] {label}: {times[label][-1]:.1f} s", flush=True)
    best = {k: min(v) for k, v in times.items()}
    return {"ref": ref, "seconds": times, "best_before": best["before"], "best_after": best["after"],
            "ratio": best["after"] / best["before"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timing", metavar="REF", help="also time evaluate's metrics with git ref REF vs this tree")
    ap.add_argument("--quick", action="store_true", help="one split per data set")
    ap.add_argument("--rewrite", action="store_true",
                    help="re-render the markdown from the saved JSON (with --timing: re-measure only the timing)")
    ap.add_argument("--opg-dev", type=Path, default=OPG_DEV, help=f"the real OPGs (default {OPG_DEV})")
    args = ap.parse_args()
    if args.rewrite:
        return rewrite(args.timing)
    import torch  # reason: only to keep the small networks on one thread (two run slower on a shared machine)

    torch.set_num_threads(1)
    cfg = EvaluateConfig()
    results = {}
    ph_splits = [1] if args.quick else [1, 2]
    results["phantoms"] = validate("phantoms", lambda s: (phantoms(25, 100 + s), phantoms(25, 200 + s)),
                                   ph_splits, cfg)
    if (args.opg_dev / "images").is_dir():
        real = real_opgs(args.opg_dev)

        def opg_split(s):
            p = np.random.default_rng(s).permutation(len(real))
            return real[p[:25]], real[p[25:]]

        results["opg-dev"] = validate("opg-dev", opg_split, [1] if args.quick else [1, 2, 3], cfg)
    else:
        print(f"[metric_validation] {args.opg_dev} is absent: real-OPG validation skipped")
    ranks_all = {m: all(not r["fooled_by"][m] for r in results.values()) for m in results["phantoms"]["fooled_by"]}
    payload = {"failure_modes": list(FAILURE_MODES), "headline": list(HEADLINE), "datasets": results,
               "ranks_every_failure_worse": ranks_all}
    if args.timing:
        payload["timing"] = timing(args.timing)
    write(payload)


def write(payload: dict) -> None:
    """reports/bench/metric_validation.{json,md} from the measured ``payload``."""
    results, ranks_all = payload["datasets"], payload["ranks_every_failure_worse"]
    payload["headline"] = list(HEADLINE)
    parts = ["Each cell: the failure mode's value (mean over splits) and whether it ranks worse than the "
             "real-vs-real value (unseen real images against the reference set) in every split; **NOT worse** or "
             "**worse k/n**: the metric let that failure through in some splits. Headline: the metrics the "
             "quality report's verdict rests on. Failure modes: bench/failures.py.",
             *(table(n, r) for n, r in results.items()),
             "Metrics that rank every failure mode worse than real in every split of every data set: " +
             ", ".join(m for m, ok in ranks_all.items() if ok) + ". Fooled: " +
             "; ".join(f"{m} by {', '.join(sorted({c for r in results.values() for c in r['fooled_by'][m]}))}"
                       for m, ok in ranks_all.items() if not ok) + ". Passed but left out of the headline for "
             "blind spots by construction (stated in the quality report): " +
             ", ".join(m for m, ok in ranks_all.items() if ok and m not in HEADLINE) + "."]
    t = payload.get("timing")
    if t:
        parts.append(f"Time of evaluate's distribution metrics (`compare`, demo counts and sizes), best of "
                     f"{len(t['seconds']['before'])} alternating runs: before ({t['ref']}) {t['best_before']:.1f} s, "
                     f"after {t['best_after']:.1f} s, ratio {t['ratio']:.2f}.")
    t2 = payload.get("timing_two_threads")
    if t2:
        parts.append(f"The same with torch's default two threads (an earlier run, machine busier): before "
                     f"{t2['best_before']:.1f} s, after {t2['best_after']:.1f} s, ratio {t2['ratio']:.2f}.")
    payload = {k: v for k, v in payload.items() if k not in ("benchmark", "machine")}
    save("metric_validation", payload, "\n\n".join(parts))


def rewrite(timing_ref: str | None = None) -> None:
    """Re-render the markdown from the saved JSON (after a change of HEADLINE); with ``timing_ref``
    measure (only) the timing again."""
    import json

    payload = json.loads((Path("reports/bench") / "metric_validation.json").read_text())
    if timing_ref:
        payload["timing"] = timing(timing_ref)
    write(payload)


if __name__ == "__main__":
    main()
