"""Near-duplicate grouping: the same radiograph re-encoded, resized or slightly cropped.

Exact duplicates (the same pixels) already share one image id at ingest. This module finds the
copies whose pixels differ: each image gets a small :class:`Fingerprint` (two band-pass thumbnails
of its trimmed content, made contrast- and size-invariant), pairs are short-listed by the cosine
similarity of the coarse fingerprints (Fourier magnitudes: blind to shifts) (a matrix product, in blocks, so 10,000 images stay cheap) and
confirmed on the fine thumbnails by normalised cross-correlation over small shifts and scales (a
crop of a few percent moves and stretches the content). Confirmed pairs are joined into groups.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.core import workpool

COARSE = (64, 32)   # (width, height) of the short-list thumbnail (its Fourier magnitude is used)
FINE = (384, 192)    # (width, height) of the confirming thumbnail
_SCALES = (1.0, 1.02, 1.04)  # zoom of one copy against the other (a crop of up to ~4 %)


@dataclass(frozen=True)
class Fingerprint:
    coarse: np.ndarray  # log Fourier magnitude of a 64x32 thumbnail: shift-invariant; zero mean, unit norm
    fine: np.ndarray    # (96, 192) float32 band-pass

    def rotated180(self) -> "Fingerprint":
        # a 180-degree turn leaves the Fourier magnitude as it is
        return Fingerprint(self.coarse, np.ascontiguousarray(self.fine[::-1, ::-1]))


def _normalise(img: np.ndarray) -> np.ndarray:
    v = img.astype(np.float32) - np.float32(img.mean())
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def fingerprint(img: np.ndarray) -> Fingerprint:
    """Fingerprint of a grey image (any dtype; float expected in [0, 1])."""
    img = img.astype(np.float32, copy=False)
    fine = cv2.resize(img, FINE, interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(fine, [1, 99])
    fine = np.clip((fine - lo) / max(float(hi - lo), 1e-6), 0, 1)
    band = cv2.GaussianBlur(fine, (0, 0), 1.0) - cv2.GaussianBlur(fine, (0, 0), 4.0)
    small = cv2.resize(cv2.GaussianBlur(band, (0, 0), 4.0), COARSE, interpolation=cv2.INTER_AREA)
    mag = np.log1p(np.abs(np.fft.fft2(small))[: COARSE[1] // 4, : COARSE[0] // 4].ravel()[1:])
    return Fingerprint(_normalise(mag), band.astype(np.float32))


def fine_similarity(a: Fingerprint, b: Fingerprint) -> float:
    """Best normalised cross-correlation of the centre of one fine thumbnail inside the other,
    over shifts of a few percent and zooms of 0-4 % in x and y (both ways round)."""
    best = -1.0
    w, h = FINE
    mx, my = w // 12, h // 12
    for src, dst in ((a.fine, b.fine), (b.fine, a.fine)):
        for sx in _SCALES:
            for sy in _SCALES:
                z = cv2.resize(src, (round(w * sx), round(h * sy)), interpolation=cv2.INTER_LINEAR)
                zh, zw = z.shape
                cy, cx = (zh - (h - 2 * my)) // 2, (zw - (w - 2 * mx)) // 2
                tmpl = z[cy:cy + h - 2 * my, cx:cx + w - 2 * mx]
                r = cv2.matchTemplate(dst, tmpl, cv2.TM_CCOEFF_NORMED)
                best = max(best, float(r.max()))
    return best


def candidate_pairs(coarse: np.ndarray, threshold: float, max_per_image: int = 8,
                    block: int = 1024) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, cosine)`` with ``i < j`` whose coarse fingerprints (rows of ``coarse``, unit
    norm) have a cosine similarity of at least ``threshold``; for each image only its
    ``max_per_image`` most similar others, so the fine checks grow linearly with the archive."""
    n = len(coarse)
    out = {}
    for s in range(0, n, block):
        sim = coarse[s:s + block] @ coarse.T
        for r in range(sim.shape[0]):
            sim[r, s + r] = -np.inf
        k = min(max_per_image, n - 1)
        if k <= 0:
            break
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        for r, js in enumerate(top):
            i = s + r
            for j in js:
                v = float(sim[r, j])
                if v >= threshold:
                    out[(min(i, int(j)), max(i, int(j)))] = v
    return [(i, j, v) for (i, j), v in sorted(out.items())]


def group(fingerprints: list[Fingerprint], coarse_threshold: float, fine_threshold: float,
          max_candidates: int = 8, workers: int = 1) -> tuple[list[int], list[tuple[int, int, float]]]:
    """Group near-duplicates: ``(label per image, confirmed pairs (i, j, fine similarity))``.

    Labels are the smallest member index of each group (an image alone is its own label). The fine
    checks (most of the time) run over ``workers`` processes."""
    n = len(fingerprints)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n == 0:
        return [], []
    coarse = np.stack([f.coarse.ravel() for f in fingerprints]).astype(np.float32)
    pairs = candidate_pairs(coarse, coarse_threshold, max_candidates)
    jobs = [(fingerprints[i], fingerprints[j]) for i, j, _ in pairs]
    confirmed = []
    for (i, j, _), s in zip(pairs, workpool.imap(fine_similarity, jobs, workers, progress=False)):
        if s >= fine_threshold:
            confirmed.append((i, j, s))
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(n)], confirmed
