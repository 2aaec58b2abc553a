"""The reader study's secret: a passphrase, the key derived from it, and the masked labels.

The page holds per image only an opaque key (a random token), the picture and one *masked* bit
``m = label XOR (HMAC-SHA256(K, key)[0] & 1)`` (label 1 = synthetic), with
``K = PBKDF2-HMAC-SHA256(passphrase, salt, iterations)``. Without the passphrase the masked bits
are independent of the labels (a one-time pad keyed by the passphrase), so nothing in the source
tells a real image from a synthetic one. The passphrase (about 80 random bits from the operating
system, or ``$DENTSYNTH_READER_PASSPHRASE``) is written beside the key, never into the page or
params.yaml. At the end of a session the study lead types it into the page, which derives K (Web
Crypto), checks it against a check value and only then shows the reader's accuracy; the check value
lets a guess be verified, so the passphrase must be strong (80 bits, 200,000 PBKDF2 rounds).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

LABELS = ("real", "synthetic")   # bit 0, bit 1
CHECK_MESSAGE = b"dentsynth-reader-study-check"
PASSPHRASE_ENV = "DENTSYNTH_READER_PASSPHRASE"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"   # no 0/o, 1/l/i: read aloud and typed without mistakes


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
