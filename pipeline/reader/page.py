"""The reader-study page: one self-contained HTML file (no network: a Content-Security-Policy forbids
every fetch; images are PNG data URIs). The reader answers *real* or *synthetic* with a confidence
1-5 and an optional comment, by keyboard or mouse; each image is timed; nothing is told until the
end, where the answers download as CSV / JSON. The page's HTML, CSS and script are package data
(``pipeline/reader/assets/``); the study's data is embedded as JSON."""
from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib import resources
from string import Template


@cache
def _asset(name: str) -> str:
    return resources.files("pipeline.reader").joinpath("assets", name).read_text(encoding="utf-8")


def render_page(study: dict) -> str:
    """The self-contained page of ``study`` (from :func:`pipeline.reader.study.build_study`)."""
    data = json.dumps(study, separators=(",", ":")).replace("</", "<\\/")
    conf = "".join(f"<button id='c-{c}'>{c}</button>" for c in range(1, 6))
    return Template(_asset("page.html")).substitute(
        name=html.escape(study["name"]), n=study["n"], conf=conf, data=data,
        css=_asset("page.css").removesuffix("\n"), js=_asset("page.js"))


def page_data(page: str) -> dict:
    """The study data embedded in a page (what a reader's browser sees)."""
    m = re.search(r'<script type="application/json" id="study">(.*?)</script>', page, re.S)
    if not m:
        raise ValueError("not a reader-study page")
    return json.loads(m.group(1).replace("<\\/", "</"))
