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


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    JSON messages, NUL-terminated, on file descriptors 3 and 4), standard library only.

    One page (a tab) attached in flat mode; ``send`` waits for the answer, events are kept in
    ``events``. Use as a context manager; downloads land in ``downloads``."""

    def __init__(self, downloads: Path, width: int = 1280, height: int = 900):
        import json as _json
        import os

        self._json, self._os = _json, os
        self.downloads = Path(downloads)
        self.downloads.mkdir(parents=True, exist_ok=True)
        self._profile = tempfile.TemporaryDirectory()
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}", "about:blank"]
        devnull = os.open(os.devnull, os.O_RDWR)
        self.pid = os.posix_spawn(args[0], args, dict(os.environ), file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2),
            (os.POSIX_SPAWN_DUP2, to_child_r, 3), (os.POSIX_SPAWN_DUP2, from_child_w, 4)])
        for fd in (to_child_r, from_child_w, devnull):
            os.close(fd)
        self._buf, self._id, self.events, self.session = b"", 0, [], None
        self.width, self.height = width, height

    def __enter__(self) -> "DevTools":
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, browser=True)["sessionId"]
        self.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.downloads.resolve()),
                                                  "eventsEnabled": True}, browser=True)
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        return self

    def __exit__(self, *exc) -> None:
        import signal
        import time

        try:
            self.send("Browser.close", browser=True, timeout=10)
        except (OSError, RuntimeError, TimeoutError, ConnectionError):  # a browser that is gone already
            pass
        try:
            end = time.monotonic() + 10
            while self._os.waitpid(self.pid, self._os.WNOHANG) == (0, 0):
                if time.monotonic() > end:
                    self._os.kill(self.pid, signal.SIGKILL)
                    self._os.waitpid(self.pid, 0)
                    break
                time.sleep(0.1)
        except ChildProcessError:
            pass
        finally:
            for fd in (self._to_child, self._from_child):
                self._os.close(fd)
            self._profile.cleanup()

    def _read(self, timeout: float) -> dict:
        import select

        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_child], [], [], timeout)
            if not ready:
                raise TimeoutError("no message from Chromium")
            chunk = self._os.read(self._from_child, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return self._json.loads(msg)

    def send(self, method: str, params: dict | None = None, browser: bool = False, timeout: float = 60) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if not browser and self.session:
            msg["sessionId"] = self.session
        self._os.write(self._to_child, self._json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30, where=lambda p: True) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method and where(e.get("params", {})):
                return self.events.pop(i)["params"]
        while True:
            e = self._read(timeout)
            if e.get("method") == method and where(e.get("params", {})):
                return e["params"]
            self.events.append(e)

    def open(self, path: Path) -> None:
        self.events.clear()
        self.send("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self.wait_event("Page.loadEventFired")

    def js(self, expression: str, await_promise: bool = False):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": await_promise})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def key(self, key: str) -> None:
        """One key press as a user types it (``key``: a character or Enter/Escape)."""
        codes = {"Enter": 13, "Escape": 27}
        vk = codes.get(key, ord(key.upper()) if len(key) == 1 else 0)
        base = {"key": key, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk,
                "code": key if key in codes else (f"Digit{key}" if key.isdigit() else f"Key{key.upper()}")}
        text = {"Enter": "\r"}.get(key, key if len(key) == 1 else "")
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **base, **({"text": text} if text else {})})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def type(self, text: str) -> None:
        self.send("Input.insertText", {"text": text})

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element ``selector``."""
        box = self.js(f"(() => {{ const r = document.querySelector({self._json.dumps(selector)}).getBoundingClientRect();"
                      " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1})

    def screenshot(self, png: Path) -> Path:
        import base64

        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        Path(png).write_bytes(base64.b64decode(data))
        return Path(png)
