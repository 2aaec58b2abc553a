"""Headless Chromium screenshots of the HTML reports (tests only)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (.ci/run installs Debian's chromium)")


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 2000) -> Path:
    """Render ``html`` (a file) in headless Chromium and save a PNG screenshot."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", f"--screenshot={png}",
            "--virtual-time-budget=5000", Path(html).resolve().as_uri(),
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    if not png.exists() or png.stat().st_size == 0:
        raise AssertionError(f"Chromium wrote no screenshot of {html}")
    return png
