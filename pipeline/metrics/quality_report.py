"""reports/quality.html: one self-contained page on how good the synthetic radiographs are.

Written for a dentist as much as for an engineer: per variant, real held-out radiographs beside
synthetic ones, the synthetic images closest to a training image (next to it), every metric with
its meaning in plain words and what two sets of *real* radiographs score (the reference), the
training curves, and the data audit summary. Images are embedded as base64 PNG; charts are
matplotlib PNGs; no scripts, no external files.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np

from pipeline.core import atomic, pngio
from pipeline.core.html import image_data_uri
from pipeline.core.layout import Layout
from pipeline.core.tables import is_flagged
from pipeline.metrics.metric_table import HEADLINE, METRICS
from pipeline.variants.split import read_split

MEANINGS = {
    "swd": ("Texture and sharpness match", "How different the fine detail, edges and overall layout of the "
            "synthetic images are from real ones, compared patch by patch at several scales (sliced "
            "Wasserstein distance on a Laplacian pyramid, x1000). 0 = identical."),
    "c2st_accuracy": ("Can a computer tell them apart?", "A small neural network is trained to tell real from "
                      "synthetic images and tested on images it has not seen. 0.5 = it can only guess (ideal), "
                      "1.0 = it always knows. For comparison, dentists told real from AI-made panoramic "
                      "radiographs apart 68.5% of the time in a published reader study."),
    "c2st_auc": ("Same test, ranking score", "Area under the ROC curve of that network: 0.5 = guessing, "
                 "1.0 = perfect separation."),
    "ms_ssim_gap": ("Variety (no copies of one picture)", "How much more (or less) alike the synthetic images are "
                    "to each other than real radiographs are (MS-SSIM). A generator stuck on a few outputs "
                    "makes images that look alike. 0 = the same variety as real."),
    "histogram_js": ("Grey-level distribution", "Difference between the histograms of grey levels (brightness "
                     "and contrast of bone, teeth, soft tissue), Jensen-Shannon divergence in bits. 0 = identical."),
    "histogram_emd_percent": ("Overall brightness shift", "How far, on average, grey levels must move to match "
                              "real images, in percent of the full grey range. 0 = identical."),
    "precision": ("Realism (precision)", "Share of synthetic images that fall among real ones in a feature space. "
                  "1 = all look like some real radiograph."),
    "recall": ("Coverage of real variety (recall)", "Share of real radiographs that have a synthetic look-alike. "
               "1 = the synthetic set covers everything real images show."),
    "density": ("Realism, robust (density)", "Like precision but counts how many real neighbours each synthetic "
                "image has; about 1 for real images."),
    "coverage": ("Coverage, robust", "Share of real radiographs with a synthetic image close by; robust to "
                 "outliers. 1 = all covered."),
    "fid": ("FID (ImageNet features)", "The common GAN score on features of a network trained on everyday "
            "photos; a weak judge of radiographs. Lower is better."),
    "kid_x1e3": ("KID (ImageNet features)", "Kernel version of FID, unbiased for small sets (x1000). Lower is better."),
    "near_copy_share": ("Near-copies of training images", "Share of synthetic images so close to one training "
                        "radiograph that they could reveal a patient; these are never released. The reference is "
                        "the same share for real held-out radiographs."),
}


def _to8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(pngio.to_float01(img), 0, 1) * 255).astype(np.uint8)


def _tile(images: list[np.ndarray], cols: int, pad: int = 3, max_w: int = 256) -> np.ndarray:
    """Grey images of one size -> one uint8 mosaic (white gaps), each scaled to at most ``max_w`` wide."""
    h, w = images[0].shape
    f = min(1.0, max_w / w) if w > max_w else min(4.0, max(1.0, 160 / w))
    th, tw = max(1, round(h * f)), max(1, round(w * f))
    rows = math.ceil(len(images) / cols)
    out = np.full((rows * (th + pad) + pad, cols * (tw + pad) + pad), 255, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        out[pad + r * (th + pad):pad + r * (th + pad) + th, pad + c * (tw + pad):pad + c * (tw + pad) + tw] = \
            cv2.resize(_to8(im), (tw, th), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_NEAREST)
    return out


def _interval(iv) -> str:
    if not (isinstance(iv, (list, tuple)) and len(iv) == 2 and all(isinstance(v, (int, float)) for v in iv)):
        return ""
    return f"<br><small>95%: {_fmt(float(iv[0]))}-{_fmt(float(iv[1]))}</small>"


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return html.escape(str(v))
    if isinstance(v, (int, float)):
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    return html.escape(str(v))


def verdict(entry: dict) -> str:
    v, r = entry.get("value"), entry.get("reference")
    if not isinstance(v, (int, float)) or not isinstance(r, (int, float)):
        return "not computed"
    lower = entry.get("better") == "lower"
    if (v <= r) if lower else (v >= r):
        return "as good as real"
    gap = (v - r) if lower else (r - v)
    return "close to real" if gap <= 0.25 * abs(r) + 0.02 else "worse than real"


# What each metric cannot see, measured by bench/metric_validation.py (reports/bench/metric_validation.md):
# which simulated GAN failures it did NOT rank worse than unseen real radiographs. Shown next to the number.
BLIND_SPOTS = {
    "swd": "",
    "c2st_accuracy": "",
    "c2st_auc": "",
    "ms_ssim_gap": "Measures variety only, not realism: real images brightened, zoomed in or overlaid with a "
                   "checkerboard keep the variety of real images and scored as well as real ones.",
    "histogram_js": "Compares grey levels only, not where they are: it ranked every simulated failure below real, "
                    "but the right pixels in the wrong places would score as real.",
    "histogram_emd_percent": "Sees only how far grey levels shift on average: noise, blur, checkerboards and noise "
                             "over the average radiograph scored as well as real images.",
    "precision": "Counts an image as realistic if it lands near any real radiograph: noise or blotches over the "
                 "average radiograph, and one picture repeated, scored as high as real ones (on real OPGs).",
    "recall": "Ranked every simulated failure below real, but widely scattered images can reach many real "
              "radiographs without looking like any (coverage is the robust version).",
    "density": "Realism only, says nothing about variety: one picture repeated scored close to real images "
               "(0.78 against 0.80 on one split of real OPGs).",
    "coverage": "",
    "fid": "ImageNet features of everyday photos: not validated on radiographs here.",
    "kid_x1e3": "ImageNet features of everyday photos: not validated on radiographs here.",
    "near_copy_share": "",
}


def overall_verdict(m: dict) -> str:
    """One verdict from the headline metrics only (those that ranked every simulated failure below
    real radiographs): the worst of their verdicts; "not computed" when none was."""
    words = [verdict(m[name]) for name in HEADLINE if isinstance(m.get(name), dict)]
    words = [w for w in words if w != "not computed"]
    if not words:
        return "not computed"
    for w in ("worse than real", "close to real"):
        if w in words:
            return w
    return "as good as real"


def _headline_html(m: dict) -> str:
    vd = overall_verdict(m)
    cls = {"as good as real": "good", "close to real": "close", "worse than real": "bad"}.get(vd, "")
    names = ", ".join(MEANINGS.get(n, (n, ""))[0].lower() for n in HEADLINE)
    return (f"<p class='note'><b>Overall: <span class='{cls}'>{html.escape(vd)}</span></b>. This verdict rests only "
            f"on the tests marked <b>headline</b> below ({html.escape(names)}): in our validation they ranked every "
            "simulated generator failure (noise, blur, noise over the average radiograph, blotchy texture, wrong "
            "scale, one picture repeated, checkerboard artefacts, a brightness shift) below real radiographs, on "
            "phantoms and on real OPGs. The other numbers can be fooled; what fools each is written next to it.</p>")


def _curves(live: Path) -> str | None:
    """Training curves (one small chart per DVCLive metric) as a base64 PNG, or None."""
    tsvs = sorted((live / "plots" / "metrics").rglob("*.tsv")) if (live / "plots" / "metrics").is_dir() else []
    series = []
    for t in tsvs:
        with open(t, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        name = t.stem
        if rows and "step" in rows[0] and name in rows[0]:
            try:
                series.append((name, [float(r["step"]) for r in rows], [float(r[name]) for r in rows]))
            except ValueError:
                continue
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(series))
    rows_n = math.ceil(len(series) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 2.8 * rows_n), squeeze=False)
    for ax, (name, x, y) in zip(axes.flat, series):
        ax.plot(x, y, lw=1.5)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(series):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _audit_rows(audit: dict) -> list[tuple[str, str]]:
    rows = []

    def walk(node, prefix, depth):
        if isinstance(node, dict) and depth < 3:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        elif isinstance(node, (int, float, str, bool)) and len(str(node)) < 100:
            rows.append((prefix, _fmt(node)))
    walk(audit, "", 0)
    return rows[:40]


CSS = """body{font-family:Georgia,serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.8em}h2{border-bottom:2px solid #345;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #bbb;padding:.35em .6em;vertical-align:top;
font-size:.92em}th{background:#eef}.pair{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
.pair figure{margin:0}figcaption{font-weight:bold;margin-bottom:.3em}img{image-rendering:auto;border:1px solid #999}
.good{color:#060}.close{color:#a60}.bad{color:#b00}.note{background:#f6f6ea;padding:.6em 1em;border-left:4px solid #cc9}
.flag{color:#b00;font-weight:bold}"""


def render(metrics: dict, layout: Layout, nearest_csv: Path | None, audit: dict | None, n_show: int = 8) -> str:
    split_csv = layout.split_csv
    split = read_split(split_csv) if split_csv.exists() else {}
    nearest_rows = []
    if nearest_csv and Path(nearest_csv).exists():
        with open(nearest_csv, newline="", encoding="utf-8") as f:
            nearest_rows = list(csv.DictReader(f))
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Synthetic radiograph quality</title>",
           f"<style>{CSS}</style></head><body>",
           "<h1>How good are the synthetic panoramic radiographs?</h1>",
           "<p class='note'>The images marked <b>synthetic</b> were drawn by a neural network (a GAN) trained on "
           "real radiographs; they show no real patient. Each number below compares them with <b>real "
           "radiographs the network never saw</b> (held out). Next to each number is the <b>reference</b>: what a "
           "second set of real radiographs (the training images) scores on the same test, i.e. the best a "
           "generator could hope for. A synthetic value close to its reference is good.</p>"]
    if audit:
        out.append("<h2>Data audit (what went into training)</h2><table><tr><th>item</th><th>value</th></tr>")
        out += [f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in _audit_rows(audit)]
        out.append("</table>")
    for variant, m in metrics.items():
        if not isinstance(m, dict):
            continue
        out.append(f"<h2>Variant <code>{html.escape(variant)}</code></h2>")
        info = m.get("images", {})
        if info:
            used = info.get("used_for_distribution_metrics", {})
            out.append(f"<p>{_fmt(info.get('synthetic'))} synthetic images; {_fmt(info.get('heldout'))} held-out real "
                       f"({html.escape('/'.join(info.get('heldout_splits', [])))}) and {_fmt(info.get('train'))} "
                       "training radiographs. The metrics compare " + (
                           f"{_fmt(used.get('synthetic'))} synthetic and {_fmt(used.get('train'))} training images "
                           f"(sets of one size) with {_fmt(used.get('heldout'))} held-out ones; " if used else "") +
                       "[lo-hi] is a 95% interval (bootstrap over images): with a few dozen images it is wide, "
                       "and two figures whose intervals overlap may not differ.</p>")
        out += _pictures(layout, variant, split, info.get("heldout_splits", ["test"]), nearest_rows, n_show)
        out.append("<h3>Metrics</h3>" + _headline_html(m))
        out.append("<table><tr><th>test</th><th>what it means</th><th>synthetic</th>"
                   "<th>real-vs-real reference</th><th>better</th><th>verdict</th><th>blind spot</th></tr>")
        for name in METRICS:
            e = m.get(name)
            if not isinstance(e, dict):
                continue
            title, meaning = MEANINGS.get(name, (name, ""))
            vd = verdict(e)
            cls = {"as good as real": "good", "close to real": "close", "worse than real": "bad"}.get(vd, "")
            tag = "<br><b>headline</b>" if name in HEADLINE else ""
            spread = f"<br>&plusmn; {_fmt(e['spread'])} over embeddings" if isinstance(e.get("spread"), float) else ""
            spread = _interval(e.get("interval")) + spread
            ref_iv = _interval(e.get("reference_interval"))
            blind = BLIND_SPOTS.get(name, "") or ("None found in our validation." if name in HEADLINE else "")
            out.append(f"<tr><td><b>{html.escape(title)}</b><br><code>{name}</code>{tag}</td><td>{html.escape(meaning)}</td>"
                       f"<td>{_fmt(e.get('value'))}{spread}</td><td>{_fmt(e.get('reference'))}{ref_iv}</td>"
                       f"<td>{html.escape(str(e.get('better', '')))}</td><td class='{cls}'>{vd}</td>"
                       f"<td>{html.escape(blind)}</td></tr>")
        out.append("</table>")
        if isinstance(m.get("full_size"), dict):
            out += _full_size_section(layout, variant, split, info.get("heldout_splits", ["test"]), m["full_size"])
        curves = _curves(layout.model(variant) / "live")
        out.append("<h3>Training curves</h3>")
        out.append(f"<img alt='training curves of {html.escape(variant)}' src='{curves}'>" if curves
                   else "<p>No training log found.</p>")
    out += reader_study_section(layout)
    out.append("</body></html>")
    return "\n".join(out)


def reader_study_section(layout: Layout) -> list[str]:
    """The dentists' verdict (``reports/reader_study/scores.json`` of the reader_score stage), if any."""
    path = layout.reader_study_reports / "scores.json"
    if not path.exists():
        return []
    s = json.loads(path.read_text())
    out = [f"<h2>Reader study: can dentists tell them apart? (<code>{html.escape(str(s.get('name')))}</code>)</h2>"]
    p = s.get("pooled")
    if not p:
        return out + [f"<p>{s.get('images')} images ({s.get('images_per_class')} real held-out + as many synthetic, "
                      f"variant <code>{html.escape(str(s.get('variant')))}</code>); no answers scored yet.</p>"]
    lo, hi = p["ci95"]
    pub = s.get("published", {})
    out.append(f"<p class='note'>Readers told real from synthetic in <b>{p['accuracy']:.1%}</b> (95% CI {lo:.1%} to "
               f"{hi:.1%}) of {p['answers']} answers, chance 50%; published: {pub.get('accuracy', 0.685):.1%} for "
               f"{html.escape(str(pub.get('model', 'a diffusion model (PanoDiff-SR)')))}. {s['readers']} reader(s), "
               f"{s.get('images')} images (variant <code>{html.escape(str(s.get('variant')))}</code>). Closer to 50% "
               "is better: the synthetic images pass for real.</p>")
    out.append("<table><tr><th>reader</th><th>answers</th><th>accuracy (95% CI)</th><th>p vs chance</th>"
               "<th>synthetic called synthetic</th><th>real called real</th><th>median s / image</th></tr>")
    for rd, v in sorted(s.get("per_reader", {}).items()) + [("all (pooled)", p)]:
        sens, spec = v["sensitivity"], v["specificity"]
        out.append(f"<tr><td>{html.escape(rd)}</td><td>{v['answers']}</td><td>{v['accuracy']:.1%} ({v['ci95'][0]:.1%}"
                   f" to {v['ci95'][1]:.1%})</td><td>{v['p_value_vs_chance']:.3g}</td><td>{sens['k']} of {sens['n']}</td>"
                   f"<td>{spec['k']} of {spec['n']}</td><td>{_fmt(v.get('median_seconds'))}</td></tr>")
    out.append("</table><p>Accuracy by the readers' confidence: " + "; ".join(
        f"{c}: {e['value']:.0%} of {e['n']}" for c, e in p["by_confidence"].items() if e["n"]) + "</p>")
    fooled = s.get("synthetic_most_often_taken_for_real", [])[:4]
    syn_dir = layout.synthetic(str(s.get("variant"))) / "png16"
    cells = [f"<td><img alt='synthetic {html.escape(f['file'])}' src='{image_data_uri(_tile([pngio.read_png16(syn_dir / f['file'])], 1))}'>"
             f"<br>{f['taken_for_real']} of {f['answers']} said real</td>" for f in fooled if (syn_dir / f["file"]).exists()]
    if cells:
        out.append("<h3>Synthetic images most often taken for real</h3><table><tr>" + "".join(cells) + "</tr></table>")
    return out


def _pictures(layout: Layout, variant: str, split: dict, heldout_splits: list[str], nearest_rows: list[dict],
              n_show: int) -> list[str]:
    images_dir = layout.variant(variant) / "images"
    syn_dir = layout.synthetic(variant) / "png16"
    held = [images_dir / f"{i}.png" for s in heldout_splits for i in split.get(s, [])]
    held = [p for p in sorted(held) if p.exists()][:n_show]
    syn = sorted(syn_dir.glob("*.png"))[:n_show] if syn_dir.is_dir() else []
    out = []
    if held and syn:
        cols = 2
        out.append("<div class='pair'>")
        out.append(f"<figure><figcaption>Real (held out, never seen by the network)</figcaption>"
                   f"<img alt='real held-out radiographs' src='{image_data_uri(_tile([pngio.read_png16(p) for p in held], cols))}'>"
                   "</figure>")
        out.append(f"<figure><figcaption>Synthetic</figcaption>"
                   f"<img alt='synthetic radiographs' src='{image_data_uri(_tile([pngio.read_png16(p) for p in syn], cols))}'>"
                   "</figure></div>")
    else:
        out.append("<p>Images not available.</p>")
    rows = sorted((r for r in nearest_rows if r["variant"] == variant), key=lambda r: float(r["distance"]))[:4]
    if rows:
        out.append("<h3>Closest to a training image (memorisation check)</h3><p>Each synthetic image is matched to "
                   "the most similar training radiograph (tolerating small shifts, rotation, brightness). Images "
                   "closer than the threshold are flagged as near-copies and left out of any release.</p>"
                   "<table><tr><th>synthetic</th><th>nearest training image</th><th>distance / threshold</th></tr>")
        for r in rows:
            sp, tp = syn_dir / r["file"], images_dir / f"{r['nearest_train_id']}.png"
            if not (sp.exists() and tp.exists()):
                continue
            flag = "<span class='flag'>near-copy: excluded</span>" if is_flagged(r["flagged"]) else "distinct"
            out.append(f"<tr><td><img alt='synthetic {html.escape(r['file'])}' src='{image_data_uri(_tile([pngio.read_png16(sp)], 1))}'></td>"
                       f"<td><img alt='training image' src='{image_data_uri(_tile([pngio.read_png16(tp)], 1))}'></td>"
                       f"<td>{float(r['distance']):.3g} / {float(r['threshold']):.3g}<br>{flag}</td></tr>")
        out.append("</table>")
    return out


FULL_SIZE_MEANINGS = {
    "patch_c2st_accuracy": ("Classifier on full-resolution patches", "How often a small network tells synthetic from real "
                            "patches at the delivered pixels (enamel, canals, bone texture); 0.5 = cannot tell."),
    "patch_precision": ("Realistic patches", "Share of synthetic patches that land among real ones."),
    "patch_recall": ("Patch variety", "Share of real patches some synthetic patch resembles."),
    "patch_density": ("Patch density", "How crowded real patches are around the synthetic ones."),
    "patch_coverage": ("Patch coverage", "Share of real patches with a synthetic patch nearby."),
}


def _crop(img: np.ndarray, side: int) -> np.ndarray:
    """A 1:1 crop, ``side`` px, centred on the lower teeth (a little below the middle)."""
    h, w = img.shape
    side = min(side, h, w)
    y = min(max(0, int(h * 0.58) - side // 2), h - side)
    x = max(0, w // 2 - side // 2)
    return img[y:y + side, x:x + side]


def _full_size_section(layout: Layout, variant: str, split: dict, heldout_splits: list[str], fs: dict,
                       n: int = 3, side: int = 192) -> list[str]:
    out = [f"<h3>At the delivered size ({html.escape(str(fs.get('size')))})</h3>",
           "<p class='note'>The GAN draws a small image; the super-resolution stage (learned from real training "
           "radiographs only) adds the fine detail. These tests read "
           f"{_fmt(fs.get('patches_per_class'))} random {_fmt(fs.get('patch'))}-pixel patches per set at full "
           "resolution; the crops below are 1:1 (one image pixel per screen pixel).</p>",
           "<table><tr><th>test</th><th>what it means</th><th>synthetic</th><th>real-vs-real reference</th>"
           "<th>better</th><th>verdict</th></tr>"]
    for name, (title, meaning) in FULL_SIZE_MEANINGS.items():
        e = fs.get(name)
        if not isinstance(e, dict):
            continue
        vd = verdict(e)
        cls = {"as good as real": "good", "close to real": "close", "worse than real": "bad"}.get(vd, "")
        out.append(f"<tr><td><b>{html.escape(title)}</b><br><code>{name}</code></td><td>{html.escape(meaning)}</td>"
                   f"<td>{_fmt(e.get('value'))}{_interval(e.get('interval'))}</td>"
                   f"<td>{_fmt(e.get('reference'))}{_interval(e.get('reference_interval'))}</td>"
                   f"<td>{e.get('better', '')}</td><td class='{cls}'>{vd}</td></tr>")
    sl = fs.get("swd_levels", {})
    if sl:
        levels = "; ".join(f"{sz}: {v:.3g} (ref {r:.3g})" for sz, v, r in zip(sl["level_sizes"], sl["value"], sl["reference"]))
        out.append(f"<tr><td><b>Texture per scale</b><br><code>swd_levels</code></td><td>Sliced Wasserstein distance of "
                   f"7x7 patches at each pyramid level, finest first.</td><td colspan='4'>{html.escape(levels)}</td></tr>")
    c = fs.get("consistency_mae", {})
    if c:
        out.append(f"<tr><td><b>Consistency</b><br><code>consistency_mae</code></td><td>Mean absolute difference "
                   f"(grey range 0-1) between the delivered image scaled back down and the GAN's image: the layout "
                   f"stays the GAN's.</td><td colspan='4'>{_fmt(c.get('value'))}</td></tr>")
    out.append("</table>")
    held = sorted(p for s_ in heldout_splits for i in split.get(s_, [])
                  if (p := layout.variant(variant) / "images_full" / f"{i}.png").exists())[:n]
    syn = sorted((layout.synthetic(variant) / "png16").glob("*.png"))[:n]
    if held and syn:
        row = lambda paths: np.hstack([np.pad(_to8(_crop(pngio.read_float01(p), side)), 4, constant_values=255) for p in paths])
        out.append("<div class='pair'>"
                   f"<figure><figcaption>Real (held out), 1:1 crops</figcaption><img alt='real 1:1 crops' "
                   f"src='{image_data_uri(row(held))}'></figure>"
                   f"<figure><figcaption>Synthetic, 1:1 crops</figcaption><img alt='synthetic 1:1 crops' "
                   f"src='{image_data_uri(row(syn))}'></figure></div>")
    return out


def write_report(layout: Layout, out_html: Path) -> Path:
    """``layout``'s metrics, evaluation tables, images, training curves and audit summary -> ``out_html``."""
    metrics = json.loads(layout.metrics_json.read_text())
    audit = json.loads(layout.audit_json.read_text()) if layout.audit_json.exists() else None
    atomic.write_text(out_html, render(metrics, layout, layout.eval / "nearest.csv", audit))
    return Path(out_html)
