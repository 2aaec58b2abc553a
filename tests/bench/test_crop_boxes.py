"""bench/crop_boxes.py: the crop checked against boxes a user annotated on their own device's OPGs."""
import csv

import numpy as np
import pytest

from bench import crop_boxes
from pipeline.core import pngio
from pipeline.demo import phantoms


def _archive(tmp_path, n=3, shift=0):
    """``n`` phantom OPGs (PNG) and their teeth boxes in the CSV the tool reads; ``shift`` moves
    every annotated box by that many pixels to the right (a box the crop cannot hold)."""
    rows = []
    for i in range(n):
        img, box = phantoms.render_opg(np.random.default_rng([77, i]), 384, 768)
        name = f"dev{i % 2}-{i}.png"
        pngio.write_png16(tmp_path / name, np.round(img * 65535).astype(np.uint16))
        rows.append({"file": name, "width": 768, "height": 384, "n_teeth": 32,
                     "x0": box[0] + shift, "y0": box[1], "x1": box[2] + shift, "y1": box[3]})
    with open(tmp_path / "boxes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return tmp_path / "boxes.csv"


def test_phantom_boxes_are_held_and_reported_per_family(tmp_path, repo_root, capsys):
    boxes = _archive(tmp_path)
    assert crop_boxes.main(["--boxes", str(boxes), "--images", str(tmp_path),
                            "--params", str(repo_root / "params.yaml")]) == 0
    out = capsys.readouterr().out
    lines = {ln.split("|")[1].strip(): ln for ln in out.splitlines() if ln.startswith("| dev") or ln.startswith("| all")}
    assert set(lines) == {"dev0", "dev1", "all"}
    assert lines["all"].split("|")[3].strip() == "1"   # covered_share: every box held


def test_a_cut_side_is_counted():
    j = crop_boxes.judge((10, 0, 90, 100), (0, 0, 100, 100), 0.97)
    assert j["cut_left"] and j["cut_right"] and not j["cut_top"] and not j["cut_bottom"]
    assert j["coverage"] == pytest.approx(0.8) and not j["covered"] and not j["tolerated"]


def test_bad_rows_and_missing_files_are_clear_errors(tmp_path, repo_root):
    (tmp_path / "b.csv").write_text("file,x0,y0,x1,y1\na.png,5,5,1,9\n")
    with pytest.raises(SystemExit, match=r"b.csv:2: empty box"):
        crop_boxes.read_boxes(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("file,x0,y0,x1,y1\nmissing.png,0,0,10,10\n")
    with pytest.raises(SystemExit, match="missing.png .* does not exist"):
        crop_boxes.main(["--boxes", str(tmp_path / "c.csv"), "--images", str(tmp_path),
                         "--params", str(repo_root / "params.yaml")])


def test_boxes_the_crop_misses_lower_the_share(tmp_path, repo_root, capsys):
    boxes = _archive(tmp_path, n=2, shift=200)   # every box moved 200 px right of the teeth
    crop_boxes.main(["--boxes", str(boxes), "--images", str(tmp_path), "--params", str(repo_root / "params.yaml")])
    all_row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| all"))
    cells = [c.strip() for c in all_row.split("|")[1:-1]]
    assert float(cells[2]) < 1 and int(cells[10]) >= 1   # covered_share below 1, right side cut
