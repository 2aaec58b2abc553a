"""The reader-study page: what it holds (no key in clear), which images it shows, and three readers
taking it in headless Chromium by keyboard and mouse (a keyboard reader, an oracle, a coin flip),
their downloaded answers scored offline against the key.

Screenshots (start, an image, the end screen) are saved to $READER_STUDY_SHOTS when it is set."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.core import config
from pipeline.core.layout import Layout
from pipeline.core.tables import read_csv
from pipeline.reader import score as reader_score
from pipeline.reader.page import page_data, render_page
from pipeline.reader.secret import unmask
from pipeline.reader.study import ReaderStudyConfig, StudyError, build_study, write_study
from tests.builders import make_reader_study_project

PASS = "kq7m-xt3h-9pvc-2dna"
CFG = ReaderStudyConfig(name="trial", variant="wide", images_per_class=6, display_width=256, pbkdf2_iterations=10000)


def _without_images(page: str) -> str:
    """The page source minus its base64 pictures (random base64 may spell any short word)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,", page)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("rs")
    ids = make_reader_study_project(root)
    meta = write_study(CFG, 11, Layout(root), passphrase=PASS)
    return root, ids, meta


# ------------------------------------------------------------------------------- the page's source
def test_key_cannot_be_read_from_the_page_source(project):
    root, ids, meta = project
    page = (root / "reports" / "reader_study" / "trial.html").read_text()
    key = read_csv(root / "data" / "reader_study" / "key.csv")
    text = _without_images(page)
    low = text.lower()
    # no split label, file name, image id or synthetic file stem anywhere
    for pattern in (r"\btrain", r"\bval\b", r"\btest", r"held.?out", r"syn_", r"\.png", r"flagged", r"split"):
        assert not re.search(pattern, low), pattern
    for iid in ids["train"] + ids["val"] + ids["test"]:
        assert iid not in page and iid[:8] not in text
    for f in ids["synthetic"]:
        assert f not in page and Path(f).stem not in page
    # per image: only an opaque key, the picture and a masked bit
    data = page_data(page)
    assert [set(it) for it in data["items"]] == [{"key", "img", "m"}] * len(key)
    assert [it["key"] for it in data["items"]] == [r["image_key"] for r in key]
    # keys are random tokens, not digests of the file names or ids
    for r in key:
        assert r["image_key"] not in hashlib.sha256(r["file"].encode()).hexdigest()
    # the words real/synthetic are the interface's only: a page with twice the images has as many
    other = render_page(build_study(ReaderStudyConfig(**{**CFG.__dict__, "images_per_class": 3}), 11, Layout(root),
                                    passphrase=PASS)["study"])
    for word in ("real", "synthetic"):
        assert low.count(word) == _without_images(other).lower().count(word), word
    # the masked bits alone are no key: they agree with the labels about as often as not ...
    agree = sum(it["m"] == (r["label"] == "synthetic") for it, r in zip(data["items"], key))
    assert 0 < agree < len(key)
    # ... the passphrase opens them, a wrong one is refused
    assert unmask(data, PASS) == {r["image_key"]: r["label"] for r in key}
    with pytest.raises(ValueError, match="wrong passphrase"):
        unmask(data, "aaaa-bbbb-cccc-dddd")
    assert PASS not in page and "kq7m" not in page
    # self-contained: no address outside the page, network forbidden by its CSP
    assert not re.search(r"https?://|src=['\"](?!data:)", text)
    assert "default-src 'none'" in page
    assert "must not leave the institute" in page


def test_shown_images_are_held_out_and_released_synthetic(project):
    root, ids, meta = project
    key = read_csv(root / "data" / "reader_study" / "key.csv")
    real = [r for r in key if r["label"] == "real"]
    syn = [r for r in key if r["label"] == "synthetic"]
    assert len(real) == len(syn) == 6 == meta["images_per_class"]
    assert {r["file"] for r in real} <= set(ids["val"] + ids["test"])
    assert not {r["file"] for r in real} & set(ids["train"])
    assert {r["split"] for r in real} <= {"val", "test"}
    assert not {r["file"] for r in syn} & set(ids["flagged"]), "near-copies of training images are left out"
    assert meta["synthetic_near_copies_left_out"] == 2
    labels = [r["label"] for r in key]
    assert labels != sorted(labels), "the classes are mixed"
    # the images: the variant's own pixels, both classes through the same path, shown 256 px wide
    data = page_data((root / "reports" / "reader_study" / "trial.html").read_text())
    by_key = {r["image_key"]: r for r in key}
    for it in data["items"]:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(it["img"].split(",", 1)[1]), np.uint8),
                           cv2.IMREAD_UNCHANGED)
        assert img.shape == (36, 64) and img.dtype == np.uint8
        r = by_key[it["key"]]
        src = (root / "data" / ("variants/wide/images" if r["label"] == "real" else "synthetic/wide/png16")
               / (f"{r['file']}.png" if r["label"] == "real" else r["file"]))
        want = np.round(cv2.imread(str(src), cv2.IMREAD_UNCHANGED) / 65535 * 255)
        assert np.abs(img.astype(float) - want).max() <= 1, "the picture is the variant's image, unaltered"
    assert data["display_width"] == 256
    # no size cue: every embedded image has the same number of bytes (stored, uncompressed PNGs)
    assert len({len(it["img"]) for it in data["items"]}) == 1
    assert (root / "data" / "reader_study" / "passphrase.txt").read_text().strip() == PASS
    assert (root / "reports" / "reader_study" / "answers").is_dir()


def test_same_seed_and_passphrase_rebuild_the_page_other_passphrase_other_order(project):
    root, ids, meta = project
    a = build_study(CFG, 11, Layout(root), passphrase=PASS)
    b = build_study(CFG, 11, Layout(root), passphrase=PASS)
    c = build_study(CFG, 11, Layout(root), passphrase="zzzz-yyyy-xxxx-wwww")
    assert render_page(a["study"]) == render_page(b["study"])
    assert {r["file"] for r in a["key"]} == {r["file"] for r in c["key"]}, "the seed picks the images"
    assert [r["file"] for r in a["key"]] != [r["file"] for r in c["key"]], "the passphrase orders them"
    assert a["study"]["study_id"] != c["study"]["study_id"]
    d = build_study(CFG, 12, Layout(root), passphrase=PASS)
    assert {r["file"] for r in a["key"]} != {r["file"] for r in d["key"]}


def test_letterbox_pad_false_cuts_every_image_to_the_real_content(project):
    root, ids, meta = project
    built = build_study(ReaderStudyConfig(**{**CFG.__dict__, "letterbox_pad": False, "display_width": 0}), 11,
                        Layout(root), passphrase=PASS)
    assert built["meta"]["content_box"] == [0, 6, 64, 30]   # the pad bars (6 px top and bottom) are gone
    shapes = {cv2.imdecode(np.frombuffer(base64.b64decode(it["img"].split(",", 1)[1]), np.uint8),
                           cv2.IMREAD_UNCHANGED).shape for it in built["study"]["items"]}
    assert shapes == {(24, 64)}


def test_too_few_images_and_bad_params(project, tmp_path, capsys):
    root, ids, meta = project
    built = build_study(ReaderStudyConfig(**{**CFG.__dict__, "images_per_class": 50}), 11, Layout(root), passphrase=PASS)
    assert built["meta"]["images_per_class"] == 8 and "showing 8 + 8" in capsys.readouterr().out  # 8 held out
    with pytest.raises(config.ConfigError, match="never train"):
        ReaderStudyConfig(splits=["train"])
    with pytest.raises(config.ConfigError, match="12 letters"):
        build_study(CFG, 11, Layout(root), passphrase="short")
    make_reader_study_project(tmp_path)
    (tmp_path / "data" / "eval" / "nearest.csv").unlink()
    with pytest.raises(FileNotFoundError, match="nearest.csv"):
        build_study(CFG, 11, Layout(tmp_path), passphrase=PASS)
    empty = tmp_path / "e"
    make_reader_study_project(empty, n_val=0, n_test=0)
    with pytest.raises(StudyError, match="nothing real"):
        build_study(CFG, 11, Layout(empty), passphrase=PASS)


# ------------------------------------------------------------------------------- readers in Chromium
SHOTS = os.environ.get("READER_STUDY_SHOTS")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from tests.browser import DevTools, chromium

    chromium()  # skips when absent
    with DevTools(tmp_path_factory.mktemp("downloads"), width=1100, height=820) as b:
        yield b


@pytest.fixture(scope="module")
def shown_project(tmp_path_factory):
    """The page at a size a dentist would see (72x128 variant shown 640 px wide)."""
    root = tmp_path_factory.mktemp("rs_shown")
    make_reader_study_project(root, size=(72, 128))
    write_study(ReaderStudyConfig(**{**CFG.__dict__, "display_width": 640}), 11, Layout(root), passphrase=PASS)
    return root


def _wait(cond, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out")


def take_study(b, page: Path, reader: str, choose, shots: Path | None = None, comment: str = "",
               linger: float = 0.0) -> dict:
    """``reader`` answers every image by keyboard (``choose(image_key, i) -> (answer, confidence)``),
    downloads the answers with the mouse, the study lead types the passphrase; returns what the page showed.
    With ``linger`` the page's clock (``performance.now``) is the test's: it stands still but for
    ``linger`` seconds on the first image, so the times recorded are known exactly, whatever the load."""
    b.open(page)
    b.js("localStorage.clear()")
    b.open(page)
    if linger:
        b.js("window.__now = 1000; performance.now = () => window.__now")
    if shots:
        b.screenshot(shots / "reader_study_start.png")
    b.click("#reader")
    b.type(reader)
    b.key("Enter")
    n = b.js("D.n")
    for i in range(n):
        assert b.js("document.getElementById('trial').className") == "", "one image at a time"
        assert b.js("document.getElementById('score').textContent") == "", "no feedback until the end"
        token = b.js("D.items[S.pos].key")
        answer, conf = choose(token, i)
        b.key("r" if answer == "real" else "s")
        b.key(str(conf))
        if i == 0 and linger:
            b.js(f"window.__now += {1000 * linger}")   # the reader looks at the first image a while
        if i == 1 and shots:
            b.screenshot(shots / "reader_study_image.png")
        if i == 2 and comment:
            b.key("c")
            b.type(comment)
            b.key("Enter")        # Enter in the comment box goes on too
        else:
            b.key("Enter")
    assert b.js("document.getElementById('end').className") == ""
    b.click("#dl-csv")
    b.click("#dl-json")
    base = f"trial_{re.sub(r'[^A-Za-z0-9_-]+', '_', reader)}"
    csv_path = _wait(lambda: (b.downloads / f"{base}.csv").exists() and b.downloads / f"{base}.csv")
    json_path = _wait(lambda: (b.downloads / f"{base}.json").exists() and b.downloads / f"{base}.json")
    b.click("#pass")
    b.type(PASS)
    b.key("Enter")
    _wait(lambda: b.js("document.getElementById('score').dataset.state") == "shown")
    shown = {"correct": int(b.js("document.getElementById('score').dataset.correct")),
             "n": int(b.js("document.getElementById('score').dataset.n")),
             "accuracy_text": b.js("document.getElementById('acc').textContent"),
             "csv": csv_path, "json": json_path}
    if shots:
        b.screenshot(shots / "reader_study_end.png")
    return shown


def _score(root: Path, *files: Path) -> dict:
    answers = root / "reports" / "reader_study" / "answers"
    for f in answers.glob("*.*"):
        if f.suffix in (".csv", ".json"):
            f.unlink()
    for f in files:
        shutil.copy(f, answers / f.name)
    return reader_score.run_score(Layout(root))


def test_keyboard_reader_downloads_and_the_scorer_agrees(browser, shown_project, tmp_path):
    root = shown_project
    page = root / "reports" / "reader_study" / "trial.html"
    rng = np.random.default_rng(4)
    picks = {}

    def choose(token, i):
        picks[token] = ("real" if rng.random() < 0.5 else "synthetic", int(rng.integers(1, 6)))
        return picks[token]

    shots = Path(SHOTS) if SHOTS else tmp_path
    shown = take_study(browser, page, "Dr. A", choose, shots=shots, comment='odd "condyle", left', linger=0.4)
    for name in ("reader_study_start.png", "reader_study_image.png", "reader_study_end.png"):
        img = cv2.imread(str(shots / name), cv2.IMREAD_GRAYSCALE)
        assert img is not None and img.shape == (820, 1100)
    # the downloaded CSV: one row per image, the page's columns, the comment intact, timed
    rows = read_csv(shown["csv"])
    assert len(rows) == 12 and list(rows[0]) == ["study_id", "study", "reader_id", "position", "image_key", "answer",
                                                 "confidence", "seconds", "comment", "answered_at"]
    assert {r["reader_id"] for r in rows} == {"Dr. A"}
    assert {(r["answer"], int(r["confidence"])) for r in rows} == set(picks.values())
    assert rows[2]["comment"] == 'odd "condyle", left' and all(not r["comment"] for i, r in enumerate(rows) if i != 2)
    assert [float(r["seconds"]) for r in rows] == [0.4] + [0.0] * 11   # the page's clock moved on image 1 only
    assert json.loads(shown["json"].read_text())["answers"][2]["comment"] == 'odd "condyle", left'
    # the scorer reproduces what the page showed (CSV and JSON of one session count once)
    s = _score(root, shown["csv"], shown["json"])
    r = s["per_reader"]["Dr. A"]
    assert (r["correct"], r["answers"]) == (shown["correct"], shown["n"]) and not s["rejected"]
    assert shown["accuracy_text"] == f"{100 * r['accuracy']:.1f}%"
    print(f"\nkeyboard reader: page {shown['accuracy_text']}, scorer {r['accuracy']:.3f} {r['ci95']}")


def test_oracle_reader_scores_100_and_coin_flip_is_within_its_interval(browser, shown_project):
    root = shown_project
    page = root / "reports" / "reader_study" / "trial.html"
    truth = {r["image_key"]: r["label"] for r in read_csv(root / "data" / "reader_study" / "key.csv")}
    oracle = take_study(browser, page, "oracle", lambda t, i: (truth[t], 5))
    assert (oracle["correct"], oracle["n"], oracle["accuracy_text"]) == (12, 12, "100.0%")
    rng = np.random.default_rng(2026)
    coin = take_study(browser, page, "coin", lambda t, i: (["real", "synthetic"][int(rng.integers(2))], 1))
    s = _score(root, oracle["csv"], coin["csv"])
    o, c = s["per_reader"]["oracle"], s["per_reader"]["coin"]
    assert o["accuracy"] == 1.0 and o["sensitivity"]["value"] == 1.0 and o["specificity"]["value"] == 1.0
    assert o["ci95"][0] > 0.5, "12 of 12 right is better than chance"
    assert c["correct"] == coin["correct"]
    assert c["ci95"][0] <= 0.5 <= c["ci95"][1], c
    assert s["readers"] == 2 and s["pooled"]["answers"] == 24
    print(f"\noracle {o['accuracy']:.2f} {o['ci95']}; coin {c['accuracy']:.2f} {c['ci95']}")


def test_wrong_passphrase_and_resume_after_reload(browser, shown_project):
    page = shown_project / "reports" / "reader_study" / "trial.html"
    b = browser
    b.open(page)
    b.js("localStorage.clear()")
    b.open(page)
    b.click("#reader")
    b.type("R9")
    b.key("Enter")
    for _ in range(3):
        b.key("s"), b.key("3"), b.key("Enter")
    b.key("Enter")   # no answer yet: Enter does not move on
    assert b.js("S.pos") == 3
    b.open(page)     # the tab is reloaded mid-study
    assert "3 of 12 done" in b.js("document.getElementById('resume').textContent")
    b.click("#resume")
    assert b.js("document.getElementById('progress').textContent") == "Image 4 of 12"
    for _ in range(9):
        b.click("#a-real"), b.click("#c-2"), b.click("#next")   # the mouse works as well
    assert b.js("S.answers.length") == 12 and b.js("S.answers.filter(a => a.answer === 'synthetic').length") == 3
    b.click("#pass")
    b.type("aaaa-bbbb-cccc-dddd")
    b.click("#show")
    _wait(lambda: b.js("document.getElementById('score').dataset.state") == "wrong")
    assert "Wrong passphrase" in b.js("document.getElementById('score').textContent")


def test_a_rerun_keeps_the_study_changed_images_make_a_new_one(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DENTSYNTH_READER_PASSPHRASE", raising=False)
    make_reader_study_project(tmp_path)
    layout = Layout(tmp_path)
    first = write_study(CFG, 11, layout)          # a new passphrase from the OS
    page = (tmp_path / "reports" / "reader_study" / "trial.html").read_bytes()
    secret = (tmp_path / "data" / "reader_study" / "passphrase.txt").read_text()
    again = write_study(CFG, 11, layout)          # e.g. dvc repro after a code change
    assert again["study_id"] == first["study_id"]
    assert (tmp_path / "reports" / "reader_study" / "trial.html").read_bytes() == page
    assert (tmp_path / "data" / "reader_study" / "passphrase.txt").read_text() == secret
    # one shown synthetic image changes: a new study; the old key is kept, old answers are refused
    key = read_csv(tmp_path / "data" / "reader_study" / "key.csv")
    shown = next(r["file"] for r in key if r["label"] == "synthetic")
    path = tmp_path / "data" / "synthetic" / "wide" / "png16" / shown
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(path), (img // 2).astype(img.dtype))
    third = write_study(CFG, 11, layout)
    assert third["study_id"] != first["study_id"]
    assert read_csv(tmp_path / "data" / "reader_study" / "previous" / first["study_id"] / "key.csv") == key
    old_answers = [("old.csv", 1, {"study_id": first["study_id"], "reader_id": "A", "image_key": key[0]["image_key"],
                                   "answer": "real", "confidence": 3, "seconds": 1})]
    meta, new_key = reader_score.read_key(tmp_path / "data" / "reader_study")
    s = reader_score.score(meta, new_key, old_answers)["scores"]
    assert s["pooled"] is None and f"answers to study {first['study_id']}" in s["rejected"][0]["reason"]
