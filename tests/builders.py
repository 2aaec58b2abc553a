"""Shared test builders: generated stage inputs (an ingest output, an audit output) and throwaway
copies of this project for tests that drive dvc. Test modules import from here, never from each other."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import csv

import numpy as np
import yaml

from pipeline.core import config, pngio
from pipeline.core.frames import Cleaning
from pipeline.demo import phantoms
from pipeline.ingest import ingest

BIN = Path(sys.executable).parent


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    e.setdefault("DENTSYNTH_WORKERS", "2")
    e["DVC_NO_ANALYTICS"] = "1"
    return e


def copy_project(repo: Path, dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = repo / rel
        if not src.is_file() or rel.startswith(("data/", "models/", "reports/")):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=test"]
    subprocess.run(git + ["init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


def set_params(project: Path, updates: dict[str, object]) -> None:
    """Set dotted keys in the copy's params.yaml (e.g. {'phantoms.width': 256})."""
    path = project / "params.yaml"
    params = config.parse_yaml(path.read_text())  # as DVC reads it (an unquoted 16:9 stays a string)
    for dotted, value in updates.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(project: Path, *args: str, timeout: int = 900) -> str:
    r = subprocess.run([str(BIN / "dvc"), *args], cwd=project, env=env(), capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def changed_stages(project: Path, *targets: str) -> set[str]:
    """Stages `dvc status` reports as changed (their deps, params or outs differ from dvc.lock)."""
    out = dvc(project, "status", "--json", *(("--with-deps", *targets) if targets else ()))
    return set(json.loads(out[out.index("{"):]) if "{" in out else {})


def ran_stages(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}

def write_ingested(folder, images):
    """``images`` (float [0, 1]) as an ingest output in ``folder``: images/<id>.png + manifest.csv."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for img in images:
        px = pngio.to_uint16(img)
        iid = ingest.image_id(px)
        pngio.write_png16(folder / "images" / f"{iid}.png", px)
        rows.append(dict.fromkeys(ingest.MANIFEST_COLUMNS, "") | {"image_id": iid, "source_path": f"{iid}.png",
                                                                 "status": "ok", "width": px.shape[1], "height": px.shape[0]})
    ingest.write_manifest(folder / "manifest.csv", rows)
    return [r["image_id"] for r in rows]


def make_stage_inputs(root: Path, n: int = 5, size=(384, 768), seed: int = 3) -> dict[str, tuple]:
    """A fake audit output (and ingest manifest) in ``root``: phantom OPGs as ingested images, some
    rotated 180 degrees and trimmed by the "audit". Returns id -> (cleaning, teeth box in ingested px)."""
    h, w = size
    (root / "audit/images").mkdir(parents=True)
    (root / "ingested").mkdir(parents=True)
    truth, audit_rows, manifest = {}, [], []
    for i in range(n):
        img, box = phantoms.render_opg(np.random.default_rng([seed, i]), h, w)
        iid = f"{i:016x}"
        rot = i % 2 == 1
        cl = Cleaning(w, h, rot, 3 * i, 2 * i, w - i, h - 4 * i) if i else Cleaning.identity(w, h)
        # a rotated-180 ingested image: the audit rotates it back
        ingested = img[::-1, ::-1] if rot else img
        ib = (w - box[2], h - box[3], w - box[0], h - box[1]) if rot else box
        pngio.write_png16(root / "audit/images" / f"{iid}.png", np.ascontiguousarray(cl.apply(pngio.to_uint16(ingested))))
        truth[iid] = (cl, ib)
        audit_rows.append({"image_id": iid, "verdict": "keep", "reasons": "", "flags": "", "dup_group": "",
                           "rot180": int(rot), "trim_x0": cl.trim_x0, "trim_y0": cl.trim_y0,
                           "trim_x1": cl.trim_x1, "trim_y1": cl.trim_y1})
        manifest.append({"image_id": iid, "width": w, "height": h, "status": "ok"})
    for name, rows in (("audit/audit.csv", audit_rows), ("ingested/manifest.csv", manifest),
                       ("audit/kept.csv", [{"image_id": r["image_id"], "dup_group": "", "patient_key": ""}
                                           for r in audit_rows])):
        with open(root / name, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    return truth


def model_config(**changes):
    """A ModelConfig as the train stage derives it: params-equal TrainConfig defaults plus ``changes``."""
    from pipeline.gan.train import TrainConfig  # torch only for the tests that build models

    return TrainConfig(**changes).model_config()


def make_reader_study_project(root: Path, n_train: int = 8, n_val: int = 3, n_test: int = 5, n_syn: int = 10,
                              flagged: int = 2, size=(36, 64), seed: int = 5) -> dict:
    """A tiny project for the reader study: variant ``wide`` (letterboxed phantoms, pad bars top and
    bottom in transforms.csv), a split, synthetic images with seeds.csv and a nearest.csv flagging the
    first ``flagged`` of them. Returns {"train"/"val"/"test": ids, "synthetic": files, "flagged": files}."""
    h, w = size
    rng = np.random.default_rng(seed)
    images = root / "data" / "variants" / "wide" / "images"
    syn = root / "data" / "synthetic" / "wide" / "png16"
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    split_rows, transforms = [], []
    pad = h // 6
    for k, part in enumerate(["train"] * n_train + ["val"] * n_val + ["test"] * n_test):
        img = np.zeros((h, w), np.float32)
        img[pad:h - pad] = phantoms.render_opg(rng, h - 2 * pad, w)[0]
        px = pngio.to_uint16(img)
        iid = ingest.image_id(px)
        pngio.write_png16(images / f"{iid}.png", px)
        out[part].append(iid)
        split_rows.append({"image_id": iid, "split": part, "group": iid})
        transforms.append({"image_id": iid, "src_w": 2 * w, "src_h": 2 * (h - 2 * pad), "scale_x": 0.5,
                           "scale_y": 0.5, "pad_left": 0, "pad_top": pad, "out_w": w, "out_h": h})
    files = []
    for k in range(n_syn):
        name = f"syn_{k:06d}.png"
        img = np.zeros((h, w), np.float32)
        img[pad // 2:h - pad // 2] = phantoms.render_opg(rng, h - 2 * (pad // 2), w)[0] * 0.9
        pngio.write_png16(syn / name, pngio.to_uint16(img))
        files.append(name)
    out["synthetic"], out["flagged"] = files, files[:flagged]
    tables = {
        "data/split/split.csv": split_rows,
        "data/variants/wide/transforms.csv": transforms,
        "data/synthetic/wide/seeds.csv": [{"file": f, "seed": 1000 + k, "variant": "wide", "checkpoint_sha256": "0" * 64}
                                          for k, f in enumerate(files)],
        "data/eval/nearest.csv": [{"variant": "wide", "file": f, "nearest_train_id": out["train"][0], "distance": 0.1,
                                   "threshold": 0.05, "flagged": int(k < flagged)} for k, f in enumerate(files)],
    }
    for rel, rows in tables.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(root / rel, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    return out
