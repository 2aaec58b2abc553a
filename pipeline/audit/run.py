"""The audit stage as one call: measure every ingested image, decide, write the cleaned copies,
``audit.csv``/``kept.csv`` and (optionally) the report. A module of its own so that the measures
(:mod:`pipeline.audit.audit`) and the report (:mod:`pipeline.audit.audit_report`) do not import each other."""
from __future__ import annotations

from pathlib import Path

from pipeline.audit.audit import (AUDIT_COLUMNS, KEPT_COLUMNS, AuditConfig, _clean_one, _measure_one, decide, fmt_cell,
                                  read_ingest_manifest)
from pipeline.audit.audit_report import write_report
from pipeline.core import atomic, config, workpool
from pipeline.core.frames import Cleaning
from pipeline.core.tables import write_csv

def run_audit(cfg: AuditConfig, ingested: Path, out_dir: Path, report_dir: Path | None = None,
              workers: int | None = None, progress: bool = True) -> list[dict]:
    """The audit stage: ``ingested/{manifest.csv,images}`` -> ``out_dir/{audit.csv,kept.csv,images}``
    and, with ``report_dir``, ``audit.html`` + ``audit.json`` there."""
    ingested = Path(ingested)
    ids, n_files, patient, colour = read_ingest_manifest(ingested / "manifest.csv")
    n_workers = config.workers(workers)
    jobs = [(i, ingested / "images" / f"{i}.png", cfg) for i in ids]
    measured = list(workpool.imap(_measure_one, jobs, n_workers, "audit: measure", progress))
    rows = decide(measured, n_files, cfg, n_workers)
    for r in rows:  # a true-colour source (a photo?): for the steward's eye, not a rejection
        if r["image_id"] in colour:
            r["flags"] = ";".join(filter(None, [r["flags"], "colour"]))
    sizes = {m.image_id: (m.ingested_w, m.ingested_h) for m in measured}
    with atomic.directory(out_dir) as tmp:
        (tmp / "images").mkdir()
        kept = [r for r in rows if r["verdict"] == "keep"]
        jobs2 = []
        for r in kept:
            w, h = sizes[r["image_id"]]
            cl = Cleaning.from_row(r, w, h)
            inpaint = cfg.inpaint_text and "burned_in_text" in r["flags"]
            jobs2.append((r["image_id"], ingested / "images" / f"{r['image_id']}.png",
                          tmp / "images" / f"{r['image_id']}.png", cl, inpaint, cfg))
        for r, err in zip(kept, workpool.imap(_clean_one, jobs2, n_workers, "audit: clean", progress)):
            if err:  # could not write the cleaned copy: a recorded rejection
                r["verdict"], r["reasons"] = "reject", ";".join(filter(None, [r["reasons"], "unreadable"]))
        write_csv(tmp / "audit.csv", AUDIT_COLUMNS, _cells(rows, AUDIT_COLUMNS))
        kept = [dict(r, patient_key=patient.get(r["image_id"], "")) for r in rows if r["verdict"] == "keep"]
        write_csv(tmp / "kept.csv", KEPT_COLUMNS, _cells(kept, KEPT_COLUMNS))
    if report_dir is not None:
        write_report(rows, cfg, ingested / "images", Path(report_dir), sizes)
    return rows


def _cells(rows: list[dict], columns: list[str]) -> list[dict]:
    return [{c: fmt_cell(r.get(c, "")) for c in columns} for r in rows]
