"""Score a reader study: the readers' answer files joined with the key.

Input: ``reports/reader_study/answers/*.csv`` (or ``*.json``), the files the study page downloads,
and the key ``data/reader_study/key.csv`` (:mod:`pipeline.reader.study`). Output:

* ``reports/reader_study/scores.json``: per reader and pooled: accuracy with a 95% Wilson interval
  and the exact two-sided binomial p-value against chance (50%), sensitivity (synthetic images
  called synthetic) and specificity (real images called real), accuracy per confidence level,
  median seconds per image, and the synthetic images most often taken for real. No real image is
  named in it (it may go to git).
* ``reports/reader_study/per_reader.csv``: one row per reader.
* ``reports/reader_study/per_image.csv``: one row per shown image (real ones by image id: kept out
  of git, like the key).

The pooled interval treats every answer as independent; answers of one reader, and answers to one
image, are not, so the pooled interval is too narrow when readers or images differ much. Each
reader's own interval is exact in that sense (one reader sees each image once); the mean of the
readers' accuracies is reported beside the pooled figure.

An answer row that cannot be scored (another study's key, an unknown image key, an answer other
than real/synthetic, a confidence outside 1-5, the same image answered twice differently) is left
out with its reason in ``scores.json["rejected"]``, never silently. The same answers downloaded
twice (CSV and JSON of one session) count once.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from scipy.stats import binomtest

from pipeline.core import atomic
from pipeline.core.layout import Layout
from pipeline.core.tables import read_csv, write_csv

Z95 = 1.959963984540054
CHANCE = 0.5
PUBLISHED = {"accuracy": 0.685, "model": "a diffusion model (PanoDiff-SR)", "readers": 6, "images": "100 + 100"}
PER_READER_COLUMNS = ["reader_id", "answers", "correct", "accuracy", "ci95_low", "ci95_high", "p_value",
                      "sensitivity", "specificity", "median_seconds"]
PER_IMAGE_COLUMNS = ["position", "image_key", "label", "file", "answers", "taken_for_real", "taken_for_real_share",
                     "correct", "mean_confidence"]


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``k / n``."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def proportion(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "value": k / n if n else None, "ci95": [lo, hi] if n else None}


def summarise(rows: list[dict]) -> dict:
    """Scored answer rows (``label``, ``answer``, ``confidence``, ``seconds``) -> the figures of one reader or pool."""
    n = len(rows)
    right = sum(r["answer"] == r["label"] for r in rows)
    syn = [r for r in rows if r["label"] == "synthetic"]
    real = [r for r in rows if r["label"] == "real"]
    acc = proportion(right, n)
    secs = [r["seconds"] for r in rows if r["seconds"] is not None]
    return {
        "answers": n, "correct": right, "accuracy": acc["value"], "ci95": acc["ci95"],
        "p_value_vs_chance": binomtest(right, n, CHANCE).pvalue if n else None,
        "sensitivity": proportion(sum(r["answer"] == "synthetic" for r in syn), len(syn)),
        "specificity": proportion(sum(r["answer"] == "real" for r in real), len(real)),
        "by_confidence": {str(c): proportion(sum(r["answer"] == r["label"] for r in rows if r["confidence"] == c),
                                             sum(r["confidence"] == c for r in rows)) for c in range(1, 6)},
        "median_seconds": statistics.median(secs) if secs else None,
    }


# ------------------------------------------------------------------------------------------ input
def read_key(key_dir: Path) -> tuple[dict, dict[str, dict]]:
    key_csv, meta_json = Path(key_dir) / "key.csv", Path(key_dir) / "study.json"
    for p in (key_csv, meta_json):
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing: run the reader_study stage first")
    return json.loads(meta_json.read_text()), {r["image_key"]: r for r in read_csv(key_csv)}


def read_answer_file(path: Path) -> list[dict]:
    """One downloaded answers file (CSV or JSON) -> rows with the page's columns."""
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return [dict(a, study_id=data.get("study_id", a.get("study_id", "")),
                     reader_id=data.get("reader_id", a.get("reader_id", ""))) for a in data.get("answers", [])]
    return read_csv(path)


def read_answers(folder: Path) -> list[tuple[str, int, dict]]:
    """(file name, row number, row) of every answer file in ``folder``, in file-name order."""
    files = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in (".csv", ".json")) if Path(folder).is_dir() else []
    return [(p.name, i, row) for p in files for i, row in enumerate(read_answer_file(p), start=1)]


def validate(answers: list[tuple[str, int, dict]], meta: dict, key: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    """(scored rows, rejected rows with reasons)."""
    scored: dict[tuple[str, str], dict] = {}
    rejected = []

    def reject(f, i, reason):
        rejected.append({"file": f, "row": i, "reason": reason})

    for f, i, a in answers:
        study_id, token = str(a.get("study_id", "")).strip(), str(a.get("image_key", "")).strip()
        reader, answer = str(a.get("reader_id", "")).strip(), str(a.get("answer", "")).strip().lower()
        if study_id != meta["study_id"]:
            reject(f, i, f"answers to study {study_id or '(none)'}, the key is study {meta['study_id']} (an earlier "
                         "study's key is kept in data/reader_study/previous/<its id>/)")
            continue
        if token not in key:
            reject(f, i, f"image key {token!r} is not in the key")
            continue
        if not reader:
            reject(f, i, "no reader id")
            continue
        if answer not in ("real", "synthetic"):
            reject(f, i, f"answer {answer!r} is neither real nor synthetic")
            continue
        try:
            conf = int(str(a.get("confidence", "")).strip())
        except ValueError:
            conf = 0
        if not 1 <= conf <= 5:
            reject(f, i, f"confidence {a.get('confidence')!r} is not 1-5")
            continue
        try:
            secs = float(a.get("seconds", ""))
            secs = secs if math.isfinite(secs) and secs >= 0 else None
        except (TypeError, ValueError):
            secs = None
        row = {"reader_id": reader, "image_key": token, "answer": answer, "confidence": conf, "seconds": secs,
               "comment": str(a.get("comment", "") or ""), "label": key[token]["label"], "file": f}
        prev = scored.get((reader, token))
        if prev is None:
            scored[(reader, token)] = row
        elif (prev["answer"], prev["confidence"]) != (answer, conf):
            reject(f, i, f"reader {reader} answered image {token} already, differently, in {prev['file']}")
        # else: the same answer again (the CSV and the JSON of one session): counted once
    return list(scored.values()), rejected


# -------------------------------------------------------------------------------------- scoring
def score(meta: dict, key: dict[str, dict], answers: list[tuple[str, int, dict]], top: int = 10) -> dict:
    rows, rejected = validate(answers, meta, key)
    readers = sorted({r["reader_id"] for r in rows})
    per_reader = {rd: summarise([r for r in rows if r["reader_id"] == rd]) for rd in readers}
    per_image = []
    for token, k in sorted(key.items(), key=lambda kv: int(kv[1]["position"])):
        mine = [r for r in rows if r["image_key"] == token]
        taken = sum(r["answer"] == "real" for r in mine)
        per_image.append({"position": int(k["position"]), "image_key": token, "label": k["label"], "file": k["file"],
                          "answers": len(mine), "taken_for_real": taken,
                          "taken_for_real_share": taken / len(mine) if mine else None,
                          "correct": sum(r["answer"] == r["label"] for r in mine),
                          "mean_confidence": statistics.fmean(r["confidence"] for r in mine) if mine else None})
    fooled = sorted((p for p in per_image if p["label"] == "synthetic" and p["answers"]),
                    key=lambda p: (-p["taken_for_real_share"], -p["taken_for_real"], p["position"]))
    out = {
        "study_id": meta["study_id"], "name": meta["name"], "variant": meta["variant"],
        "images": len(key), "images_per_class": meta["images_per_class"], "readers": len(readers),
        "pooled": summarise(rows) if rows else None,
        "mean_reader_accuracy": statistics.fmean(s["accuracy"] for s in per_reader.values()) if readers else None,
        "per_reader": per_reader,
        "synthetic_most_often_taken_for_real": [
            {k: p[k] for k in ("image_key", "file", "answers", "taken_for_real", "taken_for_real_share")}
            for p in fooled[:top] if p["taken_for_real"]],
        "incomplete_readers": {rd: s["answers"] for rd, s in per_reader.items() if s["answers"] < len(key)},
        "rejected": rejected, "chance": CHANCE, "published": PUBLISHED,
        "note": ("pooled interval: every answer counted as independent (readers share the images): too narrow when "
                 "readers or images differ; see per_reader"),
    }
    return {"scores": out, "per_image": per_image}


def run_score(layout: Layout) -> dict:
    """The stage ``reader_score``: answers + key -> scores.json, per_reader.csv, per_image.csv."""
    meta, key = read_key(layout.reader_study_key)
    folder = layout.reader_study_reports
    result = score(meta, key, read_answers(folder / "answers"))
    s = result["scores"]
    atomic.write_text(folder / "scores.json", json.dumps(s, indent=2) + "\n")
    write_csv(folder / "per_reader.csv", PER_READER_COLUMNS, [
        {"reader_id": rd, "answers": v["answers"], "correct": v["correct"], "accuracy": f"{v['accuracy']:.4f}",
         "ci95_low": f"{v['ci95'][0]:.4f}", "ci95_high": f"{v['ci95'][1]:.4f}", "p_value": f"{v['p_value_vs_chance']:.4g}",
         "sensitivity": _f(v["sensitivity"]["value"]), "specificity": _f(v["specificity"]["value"]),
         "median_seconds": _f(v["median_seconds"])} for rd, v in s["per_reader"].items()])
    write_csv(folder / "per_image.csv", PER_IMAGE_COLUMNS,
              [{k: (_f(v) if isinstance(v, float) else ("" if v is None else v)) for k, v in p.items()}
               for p in result["per_image"]])
    return s


def _f(v) -> str:
    return "" if v is None else f"{v:.4f}"


def summary_line(s: dict) -> str:
    p = s.get("pooled")
    if not p:
        return f"reader study {s['name']}: no answers yet (put the readers' files into reports/reader_study/answers/)"
    lo, hi = p["ci95"]
    return (f"reader study {s['name']}: {s['readers']} reader(s), {p['answers']} answers: accuracy {p['accuracy']:.1%} "
            f"(95% CI {lo:.1%}-{hi:.1%}, chance 50%, p={p['p_value_vs_chance']:.3g}); "
            f"sensitivity {p['sensitivity']['value'] if p['sensitivity']['n'] else float('nan'):.2f}, "
            f"specificity {p['specificity']['value'] if p['specificity']['n'] else float('nan'):.2f}; "
            f"{len(s['rejected'])} row(s) rejected")
