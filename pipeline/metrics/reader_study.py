"""A reader study dentists can take: ``reports/reader_study/<name>.html`` and its answer key.

One self-contained page (no network: a Content-Security-Policy forbids every fetch; images are PNG
data URIs) shows N real held-out radiographs (the ``val``/``test`` split, never a training image)
and N synthetic ones of one variant, one at a time, in a random order. The reader answers *real* or
*synthetic* with a confidence 1-5 and an optional comment, by keyboard or mouse; each image is
timed; nothing is told until the end, where the answers download as CSV / JSON.

What the page holds, and why the key cannot be read from it
-----------------------------------------------------------
Per image only an opaque key (a random token), the picture and one *masked* bit
``m = label XOR (HMAC-SHA256(K, key)[0] & 1)`` (label 1 = synthetic), with
``K = PBKDF2-HMAC-SHA256(passphrase, salt, iterations)``. Without the passphrase the masked bits
are independent of the labels (a one-time pad keyed by the passphrase), so nothing in the source
tells a real image from a synthetic one; trying both labels gains nothing because there is nothing
to check a guess against. The passphrase (about 80 random bits) is drawn by the operating
system's ``secrets`` when the first page is built (or read from ``$DENTSYNTH_READER_PASSPHRASE``) and
written beside the key, never into the page or params.yaml (which is in git). At the end of a
session the *study lead* types it into the page: the page derives K (Web Crypto), checks it
against a check value and only then shows the reader's accuracy. The check value lets a guess be
verified, so the passphrase must be strong: 80 bits and 200,000 PBKDF2 rounds make trying them
hopeless. The real scoring is offline (:mod:`pipeline.metrics.reader_score`) from the key.

Seeds: which images are shown comes from the params ``seed`` (reproducible); their order, keys
and salt come from the seed *and* the study id, a hash of the passphrase, the display settings and
the shown files' bytes: an order drawn from a seed in git alone would give the labels away to
anyone holding the code. The same seed, passphrase and images rebuild the same page byte for byte.
A rerun of the stage (e.g. after a code change) reuses the passphrase of the study already in
``data/reader_study/`` (a persisted DVC output), so answers collected meanwhile stay valid; when
the images change, the study id changes, old answers are refused by the scorer with that reason
(never joined to other images), and the earlier key moves to ``data/reader_study/previous/<id>/``.

The key (``data/reader_study/``: ``key.csv``, ``study.json``, ``passphrase.txt``) is the stage's
own output: DVC lets only one stage write a folder, ``data/eval/`` belongs to ``evaluate``, and
``data/`` is where the held-out images themselves live (DVC cache, not git), the same people who
may see the images may see which is which.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pipeline.core import atomic, config, pngio
from pipeline.core.html import png_data_uri
from pipeline.core.layout import Layout
from pipeline.core.tables import is_flagged, read_csv, read_seeds, sha256_file, write_csv
from pipeline.variants.split import read_split

KEY_COLUMNS = ["study_id", "position", "image_key", "label", "source", "file", "split"]
LABELS = ("real", "synthetic")   # bit 0, bit 1
CHECK_MESSAGE = b"dentsynth-reader-study-check"
PASSPHRASE_ENV = "DENTSYNTH_READER_PASSPHRASE"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"   # no 0/o, 1/l/i: read aloud and typed without mistakes


class StudyError(ValueError):
    """The study cannot be built from these inputs (the message says why)."""


@dataclass(frozen=True)
class ReaderStudyConfig:
    """params.yaml ``reader_study`` (the image draw also takes the top-level ``seed``)."""

    name: str = "demo"                  # the page: reports/reader_study/<name>.html
    variant: str = "full_16x9"          # whose synthetic images, at that variant's size
    images_per_class: int = config.param(20, ge=1)   # N real + N synthetic
    splits: list[str] = field(default_factory=lambda: ["val", "test"])   # real images from these (held out)
    display_width: int = config.param(768, ge=0)     # images shown this wide in px, scaled by the browser (0: the variant's own pixels)
    letterbox_pad: bool = True          # true: as trained (pad bars kept); false: all cut to the real images' common content
    exclude_near_copies: bool = True    # leave out synthetic images the memorisation check flagged (data/eval/nearest.csv)
    pbkdf2_iterations: int = config.param(200000, ge=10000)  # cost of each passphrase try (the end-of-session score)

    def __post_init__(self) -> None:
        bad = set(self.splits) - {"val", "test"}
        if bad or not self.splits:
            raise config.ConfigError(f"reader_study.splits must be val and/or test (never train), got {self.splits}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise config.ConfigError(f"reader_study.name must be a plain file name, got {self.name!r}")


# --------------------------------------------------------------------------------- the secret part
def new_passphrase() -> str:
    """16 characters of a 31-letter alphabet (~79 bits) from the OS, in groups of four."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    return "-".join(chars[i:i + 4] for i in range(0, 16, 4))


def normalise_passphrase(text: str) -> str:
    """What is hashed: lower case, letters and digits only (the page does the same)."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def derive_key(passphrase: str, salt_hex: str, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", normalise_passphrase(passphrase).encode(), bytes.fromhex(salt_hex),
                               iterations, 32)


def mask_bit(key: bytes, image_key: str) -> int:
    return hmac.new(key, image_key.encode(), hashlib.sha256).digest()[0] & 1


def check_value(key: bytes) -> str:
    return hmac.new(key, CHECK_MESSAGE, hashlib.sha256).hexdigest()[:16]


def unmask(study: dict, passphrase: str) -> dict[str, str]:
    """image key -> label from the page's own data and the passphrase (what the page's end screen does)."""
    key = derive_key(passphrase, study["salt"], study["iterations"])
    if not hmac.compare_digest(check_value(key), study["check"]):
        raise ValueError("wrong passphrase")
    return {it["key"]: LABELS[it["m"] ^ mask_bit(key, it["key"])] for it in study["items"]}


# ------------------------------------------------------------------------------------ the images
@dataclass(frozen=True)
class Candidate:
    label: str      # real | synthetic
    path: Path
    file: str       # image id (real) or synthetic file name
    split: str      # val | test for real, "" for synthetic


def delivered_scale(layout: Layout, variant: str) -> int:
    """How much larger than the variant's frame the synthetic images are (their ``sr.json``; 1 without)."""
    meta = layout.synthetic(variant) / "sr.json"
    return int(json.loads(meta.read_text())["scale"]) if meta.is_file() else 1


def real_candidates(cfg: ReaderStudyConfig, layout: Layout) -> list[Candidate]:
    """Held-out real images at the size the synthetic ones are delivered at."""
    split = read_split(layout.split_csv)
    train = set(split.get("train", []))
    full = delivered_scale(layout, cfg.variant) > 1
    images = layout.variant(cfg.variant) / ("images_full" if full else "images")
    out, missing = [], []
    for s in cfg.splits:
        for iid in sorted(split.get(s, [])):
            if iid in train:   # a split table that lists an image twice: never show a training image
                raise StudyError(f"{layout.split_csv}: {iid} is in both train and {s}")
            p = images / f"{iid}.png"
            (out.append(Candidate("real", p, iid, s)) if p.exists() else missing.append(iid))
    if missing:
        print(f"[reader_study] {len(missing)} held-out images of the split are not in {images}: left out")
    return out


def synthetic_candidates(cfg: ReaderStudyConfig, layout: Layout) -> tuple[list[Candidate], int]:
    """(synthetic images, how many were left out as near-copies of a training image)."""
    folder = layout.synthetic(cfg.variant)
    files = [r["file"] for r in read_seeds(folder)]
    flagged: set[str] = set()
    if cfg.exclude_near_copies:
        nearest = layout.eval / "nearest.csv"
        if not nearest.exists():
            raise FileNotFoundError(f"{nearest} is missing (reader_study.exclude_near_copies): run evaluate first")
        flagged = {r["file"] for r in read_csv(nearest) if r["variant"] == cfg.variant and is_flagged(r["flagged"])}
    out = [Candidate("synthetic", folder / "png16" / f, f, "") for f in sorted(files) if f not in flagged]
    missing = [c.file for c in out if not c.path.exists()]
    if missing:
        raise FileNotFoundError(f"{folder}/png16: {len(missing)} files of seeds.csv are missing, e.g. {missing[0]}")
    return out, len(set(files) & flagged)


def content_box(layout: Layout, variant: str, real: list[Candidate]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the part of the variant's frame that is picture (not pad) in every one of
    ``real`` (from transforms.csv); None when nothing is padded."""
    path = layout.variant(variant) / "transforms.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: letterbox_pad false needs it to find the pad bars")
    rows = {r["image_id"]: r for r in read_csv(path)}
    box = [0, 0, 10 ** 9, 10 ** 9]
    for c in real:
        r = rows.get(c.file)
        if r is None:
            raise StudyError(f"{path} has no row for {c.file}")
        x0, y0 = int(r["pad_left"]), int(r["pad_top"])
        x1 = x0 + round(int(r["src_w"]) * float(r["scale_x"]))
        y1 = y0 + round(int(r["src_h"]) * float(r["scale_y"]))
        box = [max(box[0], x0), max(box[1], y0), min(box[2], x1), min(box[3], y1)]
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        raise StudyError(f"the real images' common content box {box} is too small to show")
    f = delivered_scale(layout, variant)
    return tuple(v * f for v in box)


def display_image(path: Path, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """The picture as embedded: the variant's own pixels (cut to ``box``), 8-bit grey. Real and
    synthetic images go through exactly this; the browser scales both alike to ``display_width``."""
    img = pngio.read_float01(path)
    if box is not None:
        x0, y0, x1, y1 = box
        img = img[y0:y1, x0:x1]
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def stored_png_uri(img: np.ndarray) -> str:
    """An *uncompressed* PNG data URI: its length depends on the size only, never on the content.
    (Compressed, the byte size alone told real from synthetic on the demo: synthetic images were
    smoother, every one smaller than every real one.)"""
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 0])
    if not ok:
        raise OSError("PNG encoding failed")
    return png_data_uri(buf.tobytes())


# --------------------------------------------------------------------------------------- building
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


def study_passphrase(key_dir: Path, given: str | None = None) -> str:
    """The passphrase: ``given``, else ``$DENTSYNTH_READER_PASSPHRASE``, else the one of the study
    already in ``key_dir`` (a rerun of the stage with the same images rebuilds the same study, so
    answers collected meanwhile stay valid), else a new one."""
    if given:
        return given
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    prev = Path(key_dir) / "passphrase.txt"
    return prev.read_text(encoding="utf-8").strip() if prev.exists() else new_passphrase()


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


def page_data(page: str) -> dict:
    """The study data embedded in a page (what a reader's browser sees)."""
    m = re.search(r'<script type="application/json" id="study">(.*?)</script>', page, re.S)
    if not m:
        raise ValueError("not a reader-study page")
    return json.loads(m.group(1).replace("<\\/", "</"))


# ------------------------------------------------------------------------------------------ page
CSS = """*{box-sizing:border-box}body{margin:0;background:#151515;color:#e8e8e8;font:16px/1.45 system-ui,sans-serif}
main{max-width:1100px;margin:0 auto;padding:1.2em}h1{font-size:1.5em;margin:.2em 0 .6em}
.warn{background:#4a1d1d;border:2px solid #d55;padding:.7em 1em;border-radius:6px}
.hide{display:none}button{font:inherit;padding:.45em 1.1em;margin:.2em;border-radius:5px;border:1px solid #888;
background:#2b2b2b;color:#eee;cursor:pointer}button.on{background:#2f6fb0;border-color:#9cf;color:#fff}
button:disabled{opacity:.4;cursor:default}input{font:inherit;padding:.35em;background:#222;color:#eee;border:1px solid #888}
#bar{display:flex;justify-content:space-between;color:#aaa;margin-bottom:.5em}
#frame{background:#000;display:flex;justify-content:center;align-items:center;min-height:200px;padding:.4em}
#img{max-width:100%;height:auto;image-rendering:auto}.row{margin:.6em 0;display:flex;align-items:center;flex-wrap:wrap;gap:.3em}
.lab{width:8.5em;color:#aaa}kbd{background:#333;border:1px solid #777;border-radius:3px;padding:0 .3em;font-size:.85em}
#comment{flex:1;min-width:16em}.big{font-size:1.25em}table{border-collapse:collapse}td{padding:.2em .7em;border-bottom:1px solid #444}"""

JS = r"""
const D = JSON.parse(document.getElementById('study').textContent);
const $ = id => document.getElementById(id);
const STORE = 'dentsynth-reader-study:' + D.study_id;
let S = {reader: '', pos: 0, answers: [], done: false};
let cur = {answer: null, confidence: null}, t0 = 0, ticker = null;

function save() { try { localStorage.setItem(STORE, JSON.stringify(S)); } catch (e) {} }
function load() { try { return JSON.parse(localStorage.getItem(STORE) || 'null'); } catch (e) { return null; } }
function show(id) { for (const s of ['start', 'trial', 'end']) $(s).classList.toggle('hide', s !== id); }

function begin(resume) {
  if (resume) { S = load(); }
  else {
    const r = $('reader').value.trim();
    if (!r) { $('reader').focus(); $('need').classList.remove('hide'); return; }
    S = {reader: r, pos: 0, answers: [], done: false};
  }
  save();
  if (S.done) return finish();
  show('trial'); present();
}
function present() {
  const it = D.items[S.pos];
  cur = {answer: null, confidence: null};
  $('img').src = it.img;
  if (D.display_width) $('img').style.width = D.display_width + 'px';
  $('progress').textContent = 'Image ' + (S.pos + 1) + ' of ' + D.n;
  $('comment').value = '';
  paint();
  t0 = performance.now();
  clearInterval(ticker);
  ticker = setInterval(() => { $('clock').textContent = Math.floor((performance.now() - t0) / 1000) + ' s'; }, 250);
  $('clock').textContent = '0 s';
  document.activeElement && document.activeElement.blur();
}
function paint() {
  for (const a of ['real', 'synthetic']) $('a-' + a).classList.toggle('on', cur.answer === a);
  for (let c = 1; c <= 5; c++) $('c-' + c).classList.toggle('on', cur.confidence === c);
  $('next').disabled = !(cur.answer && cur.confidence);
}
function setAnswer(a) { cur.answer = a; paint(); }
function setConf(c) { cur.confidence = c; paint(); }
function next() {
  if (!(cur.answer && cur.confidence)) return;
  const it = D.items[S.pos];
  S.answers.push({position: S.pos + 1, image_key: it.key, answer: cur.answer, confidence: cur.confidence,
                  seconds: Math.round((performance.now() - t0) / 100) / 10, comment: $('comment').value.trim(),
                  answered_at: new Date().toISOString()});
  S.pos += 1;
  if (S.pos >= D.n) { S.done = true; save(); return finish(); }
  save(); present();
}
function finish() {
  clearInterval(ticker);
  show('end');
  $('done-text').textContent = S.reader + ': all ' + S.answers.length + ' images rated. Thank you.';
}
const COLS = ['study_id', 'study', 'reader_id', 'position', 'image_key', 'answer', 'confidence', 'seconds', 'comment', 'answered_at'];
function rows() { return S.answers.map(a => Object.assign({study_id: D.study_id, study: D.name, reader_id: S.reader}, a)); }
function csvCell(v) { return '"' + String(v).replace(/"/g, '""') + '"'; }
function csvText() { return [COLS.join(',')].concat(rows().map(r => COLS.map(c => csvCell(r[c])).join(','))).join('\r\n') + '\r\n'; }
function jsonText() { return JSON.stringify({study_id: D.study_id, study: D.name, reader_id: S.reader, answers: rows()}, null, 1); }
function fileBase() { return D.name + '_' + S.reader.replace(/[^A-Za-z0-9_-]+/g, '_'); }
function download(ext) {
  const text = ext === 'csv' ? csvText() : jsonText();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], {type: ext === 'csv' ? 'text/csv' : 'application/json'}));
  a.download = fileBase() + '.' + ext;
  document.body.appendChild(a); a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
}
function hex(s) { const b = new Uint8Array(s.length / 2); for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(2 * i, 2), 16); return b; }
async function reveal() {
  const out = $('score');
  if (!(window.crypto && crypto.subtle)) { out.textContent = 'This browser cannot compute the score here: the study lead scores the downloaded file.'; return; }
  const pass = $('pass').value.toLowerCase().replace(/[^a-z0-9]/g, '');
  const enc = new TextEncoder();
  out.textContent = 'checking...';
  const base = await crypto.subtle.importKey('raw', enc.encode(pass), 'PBKDF2', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({name: 'PBKDF2', hash: 'SHA-256', salt: hex(D.salt), iterations: D.iterations}, base, 256);
  const key = await crypto.subtle.importKey('raw', bits, {name: 'HMAC', hash: 'SHA-256'}, false, ['sign']);
  const mac = async t => new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(t)));
  const check = Array.from((await mac('dentsynth-reader-study-check')).slice(0, 8)).map(x => x.toString(16).padStart(2, '0')).join('');
  if (check !== D.check) { out.textContent = 'Wrong passphrase.'; out.dataset.state = 'wrong'; return; }
  const truth = {};
  for (const it of D.items) truth[it.key] = (it.m ^ ((await mac(it.key))[0] & 1)) ? 'synthetic' : 'real';
  let right = 0, syn = 0, synRight = 0, real = 0, realRight = 0;
  for (const a of S.answers) {
    const t = truth[a.image_key], ok = a.answer === t;
    right += ok; if (t === 'synthetic') { syn++; synRight += ok; } else { real++; realRight += ok; }
  }
  const pct = x => (100 * x).toFixed(1) + '%';
  out.dataset.state = 'shown'; out.dataset.correct = right; out.dataset.n = S.answers.length;
  out.innerHTML = '<p class="big">Accuracy: <b id="acc">' + pct(right / S.answers.length) + '</b> (' + right + ' of ' + S.answers.length +
    ' right; chance is 50%)</p><table><tr><td>synthetic images called synthetic</td><td>' + synRight + ' of ' + syn +
    '</td></tr><tr><td>real images called real</td><td>' + realRight + ' of ' + real + '</td></tr></table>';
}
document.addEventListener('keydown', e => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;   // the browser's own shortcuts (reload, zoom) stay theirs
  const tag = (e.target && e.target.tagName) || '';
  if (!$('start').classList.contains('hide')) { if (e.key === 'Enter') { e.preventDefault(); begin(false); } return; }
  if (!$('end').classList.contains('hide')) { if (e.key === 'Enter' && e.target === $('pass')) { e.preventDefault(); reveal(); } return; }
  if (tag === 'INPUT') {
    if (e.key === 'Enter') { e.preventDefault(); next(); } else if (e.key === 'Escape') { e.target.blur(); }
    return;
  }
  const k = e.key.toLowerCase();
  if (k === 'r') setAnswer('real');
  else if (k === 's') setAnswer('synthetic');
  else if (k >= '1' && k <= '5' && k.length === 1) setConf(+k);
  else if (k === 'c') { e.preventDefault(); $('comment').focus(); }
  else if (k === 'enter') { e.preventDefault(); next(); }
});
$('go').onclick = () => begin(false);
$('resume').onclick = () => begin(true);
$('a-real').onclick = () => setAnswer('real');
$('a-synthetic').onclick = () => setAnswer('synthetic');
for (let c = 1; c <= 5; c++) $('c-' + c).onclick = () => setConf(c);
$('next').onclick = next;
$('dl-csv').onclick = () => download('csv');
$('dl-json').onclick = () => download('json');
$('show').onclick = reveal;
const saved = load();
if (saved && saved.reader) {
  $('resume-box').classList.remove('hide');
  $('resume').textContent = 'Resume as ' + saved.reader + ' (' + saved.answers.length + ' of ' + D.n + ' done)';
}
$('reader').focus();
"""


def render_page(study: dict) -> str:
    """The self-contained page of ``study`` (from :func:`build_study`)."""
    name = html.escape(study["name"])
    n = study["n"]
    data = json.dumps(study, separators=(",", ":")).replace("</", "<\\/")
    conf = "".join(f"<button id='c-{c}'>{c}</button>" for c in range(1, 6))
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>Reader study {name}</title><style>{CSS}</style></head><body><main>
<section id="start">
<h1>Reader study: real or synthetic panoramic radiographs</h1>
<p class="warn"><b>Confidential: this page shows radiographs of real patients.</b> It must not leave the institute:
do not e-mail it, upload it, copy it to a private device or show it to anyone outside the study.</p>
<p>You will see {n} panoramic radiographs, one at a time. Some are radiographs of patients, the others were drawn by a
neural network (synthetic). For each, say whether you think it is <b>real</b> or <b>synthetic</b>, and how sure you
are, from 1 (a guess) to 5 (certain). A comment is optional. You are told nothing until the end, and you cannot go back.
Each image is timed; take the time you need.</p>
<p>Keys: <kbd>R</kbd> real, <kbd>S</kbd> synthetic, <kbd>1</kbd>-<kbd>5</kbd> confidence, <kbd>C</kbd> comment
(<kbd>Esc</kbd> leaves it), <kbd>Enter</kbd> next. The mouse works as well.</p>
<p>Your reader id (initials or the code the study lead gave you):
<input id="reader" autocomplete="off" size="16"> <button id="go">Start</button>
<span id="need" class="hide">enter your reader id first</span></p>
<p id="resume-box" class="hide">This browser holds an unfinished session: <button id="resume"></button></p>
</section>
<section id="trial" class="hide">
<div id="bar"><span id="progress"></span><span id="clock"></span></div>
<div id="frame"><img id="img" alt="radiograph to rate"></div>
<div class="row"><span class="lab">This image is</span><button id="a-real"><kbd>R</kbd> Real</button>
<button id="a-synthetic"><kbd>S</kbd> Synthetic</button></div>
<div class="row"><span class="lab">Confidence</span>{conf}<span style="color:#aaa">1 = a guess, 5 = certain</span></div>
<div class="row"><span class="lab">Comment</span><input id="comment" autocomplete="off" placeholder="optional (C)">
<button id="next" disabled>Next <kbd>Enter</kbd></button></div>
</section>
<section id="end" class="hide">
<h1>Done</h1><p id="done-text"></p>
<p>Save your answers and give the file to the study lead:
<button id="dl-csv">Download answers (CSV)</button> <button id="dl-json">Download answers (JSON)</button></p>
<p class="warn">The answers hold no images, but this page does: delete your copy of the page when the study is over.</p>
<h2>Score (study lead)</h2>
<p>The page does not hold the answer key in readable form. The study lead types the study passphrase to show
this session's accuracy: <input id="pass" type="password" autocomplete="off" size="24"> <button id="show">Show score</button></p>
<div id="score"></div>
</section>
</main>
<script type="application/json" id="study">{data}</script>
<script>{JS}</script>
</body></html>
"""
