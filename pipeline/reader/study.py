"""Stage ``reader_study``: a page dentists take (real or synthetic?) and its answer key.

One self-contained page (:mod:`pipeline.reader.page`) shows N real held-out radiographs (the
``val``/``test`` split, never a training image) and N synthetic ones of one variant
(:mod:`pipeline.reader.images`), one at a time, in a random order; the labels are masked
(:mod:`pipeline.reader.secret`). Which images are shown comes from the params ``seed``; their order,
keys and salt from the seed *and* the study id (a hash of the passphrase, the display settings and
the shown files' bytes), since an order drawn from a seed in git alone would give the labels away.
The same seed, passphrase and images rebuild the same page byte for byte. A rerun reuses the
passphrase of the study already in ``data/reader_study/`` (a persisted DVC output), so answers
collected meanwhile stay valid; when the images change, the study id changes, the scorer refuses old
answers with that reason, and the earlier key moves to ``data/reader_study/previous/<id>/``. The key
is the stage's own output folder (DVC lets one stage write a folder; ``data/`` holds the images).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict

import numpy as np

from pipeline.core import atomic, config
from pipeline.core.layout import Layout
from pipeline.core.tables import sha256_file, write_csv
from pipeline.reader.config import ReaderStudyConfig, StudyError
from pipeline.reader.images import content_box, display_image, real_candidates, stored_png_uri, synthetic_candidates
from pipeline.reader.page import render_page
from pipeline.reader.secret import (LABELS, PASSPHRASE_ENV, check_value, derive_key, mask_bit, normalise_passphrase,
                                    study_passphrase)

__all__ = ["KEY_COLUMNS", "ReaderStudyConfig", "StudyError", "build_study", "write_study"]

KEY_COLUMNS = ["study_id", "position", "image_key", "label", "source", "file", "split"]


def build_study(cfg: ReaderStudyConfig, seed: int, layout: Layout, passphrase: str) -> dict:
    """Everything the page and the key need: ``{"study": page data, "key": rows, "meta": study.json}``."""
    real = real_candidates(cfg, layout)
    syn_pool, n_near = synthetic_candidates(cfg, layout)
    if not real:
        raise StudyError(f"no held-out ({'/'.join(cfg.splits)}) images of {cfg.variant}: nothing real to show")
    if not syn_pool:
        raise StudyError(f"no synthetic images of {cfg.variant} to show")
    n = min(cfg.images_per_class, len(real), len(syn_pool))
    if n < cfg.images_per_class:
        print(f"[reader_study] asked for {cfg.images_per_class} per class, have {len(real)} held-out real and "
              f"{len(syn_pool)} synthetic: showing {n} + {n}")
    pick = np.random.default_rng([seed, 0x19])
    chosen_real = [real[i] for i in sorted(pick.choice(len(real), n, replace=False))]
    chosen_syn = [syn_pool[i] for i in sorted(pick.choice(len(syn_pool), n, replace=False))]
    box = None if cfg.letterbox_pad else content_box(layout, cfg.variant, chosen_real)

    if len(normalise_passphrase(passphrase)) < 12:
        raise config.ConfigError(f"the reader-study passphrase needs at least 12 letters/digits (${PASSPHRASE_ENV})")
    # the study id names this exact study: the secret, the seed, how the images are shown, and every
    # shown file's bytes. Changed images make a new study, so old answers can never be joined to them.
    study_id = hashlib.sha256(json.dumps({
        "secret": hashlib.sha256(normalise_passphrase(passphrase).encode()).hexdigest(), "seed": seed,
        "name": cfg.name, "variant": cfg.variant, "display_width": cfg.display_width, "pad": cfg.letterbox_pad,
        "iterations": cfg.pbkdf2_iterations,
        "files": [[c.label, c.file, sha256_file(c.path)] for c in chosen_real + chosen_syn]}).encode()).hexdigest()[:16]
    rng = np.random.default_rng([seed, 0x19, int(study_id, 16)])
    salt = rng.bytes(16).hex()
    tokens: list[str] = []
    while len(tokens) < 2 * n:
        t = rng.bytes(6).hex()
        if t not in tokens:
            tokens.append(t)
    order = rng.permutation(2 * n)
    shown = [(chosen_real + chosen_syn)[i] for i in order]

    key = derive_key(passphrase, salt, cfg.pbkdf2_iterations)
    items, key_rows = [], []
    for pos, (c, token) in enumerate(zip(shown, tokens), start=1):
        bit = LABELS.index(c.label)
        items.append({"key": token, "img": stored_png_uri(display_image(c.path, box)),
                      "m": bit ^ mask_bit(key, token)})
        key_rows.append({"study_id": study_id, "position": pos, "image_key": token, "label": c.label,
                         "source": "variant" if c.label == "real" else "synthetic", "file": c.file, "split": c.split})
    if len({len(it["img"]) for it in items}) != 1:   # never a size cue: one image shape, stored PNGs
        raise StudyError("the shown images differ in size: real and synthetic would be told apart by their bytes")
    study = {"study_id": study_id, "name": cfg.name, "n": 2 * n, "salt": salt, "iterations": cfg.pbkdf2_iterations,
             "check": check_value(key), "display_width": cfg.display_width, "items": items}
    meta = {"study_id": study_id, "name": cfg.name, "variant": cfg.variant, "images_per_class": n,
            "images_per_class_asked": cfg.images_per_class, "real_available": len(real),
            "synthetic_available": len(syn_pool), "synthetic_near_copies_left_out": n_near,
            "content_box": list(box) if box else None, "seed": seed, "salt": salt, "check": study["check"],
            "config": asdict(cfg)}
    return {"study": study, "key": key_rows, "meta": meta, "passphrase": passphrase}


def write_study(cfg: ReaderStudyConfig, seed: int, layout: Layout, passphrase: str | None = None) -> dict:
    """The stage: ``reports/reader_study/<name>.html`` + ``data/reader_study/`` (key.csv, study.json,
    passphrase.txt; an earlier study's files, if its id differs, move to ``previous/<study_id>/``).
    Returns the study's metadata."""
    key_dir = layout.reader_study_key
    built = build_study(cfg, seed, layout, study_passphrase(key_dir, passphrase))
    page = render_page(built["study"])
    old = json.loads((key_dir / "study.json").read_text()) if (key_dir / "study.json").exists() else None
    with atomic.directory(key_dir) as tmp:
        if (key_dir / "previous").is_dir():
            shutil.copytree(key_dir / "previous", tmp / "previous")
        if old and old.get("study_id") != built["meta"]["study_id"]:
            # answers to the earlier study can still be scored against its own key
            keep = tmp / "previous" / str(old.get("study_id"))
            keep.mkdir(parents=True, exist_ok=True)
            for f in ("key.csv", "study.json", "passphrase.txt"):
                if (key_dir / f).exists():
                    shutil.copy2(key_dir / f, keep / f)
            print(f"[reader_study] a new study ({built['meta']['study_id']}): the key of study {old.get('study_id')} "
                  f"moved to {key_dir / 'previous' / str(old.get('study_id'))}")
        write_csv(tmp / "key.csv", KEY_COLUMNS, built["key"])
        atomic.write_text(tmp / "study.json", json.dumps(built["meta"], indent=2) + "\n")
        atomic.write_text(tmp / "passphrase.txt", built["passphrase"] + "\n")
    atomic.write_text(layout.reader_study_reports / f"{cfg.name}.html", page)
    (layout.reader_study_reports / "answers").mkdir(parents=True, exist_ok=True)
    return built["meta"]
