"""Near-duplicate grouping: the same radiograph re-exported (resized, cropped, re-encoded, re-windowed,
slightly turned, marked or mirrored).

Exact duplicates (the same pixels) already share one image id at ingest. This module finds the copies
whose pixels differ, in two stages:

1. **Candidates** (cheap, all pairs), two lists joined:
   - *layout*: every image's rank-equalised working copy (blind to gamma, brightness, contrast and
     bit depth), blurred, sampled on a 16x8 grid inside a central window. A copy cropped by up to
     10 % per side sees the same anatomy at up to 1.25x the scale, off centre by up to 5 %: each
     image stores the window at 3 x 3 widths and heights (the *gallery*) and is queried with one
     window (and its mirror image, for flipped copies). The cosine of every query against every
     gallery row is one matrix product (in blocks); each image keeps its ``max_candidates`` best
     partners above ``candidate_threshold``. Cost: N^2 x 2 x 9 x 128 multiply-adds (100,000
     images: 2.3 x 10^13, minutes of BLAS).
   - *keypoint words*: 12 fixed bits of each ORB descriptor (3 tables) make a word; an image is a
     bag of words (square-rooted counts). Blind to crops, shifts and small turns; it tells apart
     look-alike OPGs whose layouts are the same (measured on phantoms drawn from one anatomy
     model: layout scores of 0.99 for every pair). Each image keeps its ``max_candidates`` best
     partners (upright or mirrored). A sparse product in blocks: N^2 x about 1,200 x 1,200 / 12,288
     multiply-adds, twice (upright, mirrored) (100,000 images: about 2 x 10^12).
   The confirmations thus grow linearly with the archive (at most 2 x ``max_candidates`` per image).
2. **Confirmation** (per candidate pair): ORB keypoints of the two working copies (spread over a grid,
   so burned-in text cannot take them all) are matched (Hamming, ratio test) and a similarity
   transform (scale, rotation, shift) is fitted with RANSAC; it must be a plausible re-export (scale
   0.7-1.45 between the working copies, rotation within ``MAX_ROTATION``) with at least ``MIN_INLIERS``
   inliers. The second image's thumbnail is then warped onto the first's; the *similarity* is the mean
   of the inlier share (RANSAC inliers / ratio-test matches) and the normalised cross-correlation of
   the finest detail (difference of Gaussians, 0.5-1 px) of the two thumbnails over their overlap. A
   re-export of one radiograph scores 0.6-1; two patients' OPGs mostly do not register at all, and
   look-alikes that do (phantoms drawn from one anatomy model) share the layout but neither the
   detail nor most keypoints. Tried the other way round (mirrored keypoints), a match is a flipped
   copy (``kind = "flipped"``).

Cost per image: one fingerprint (a resize to the working copy, one ORB detection, two descriptor
sets; tens of ms for a 2900x1400 OPG on one core, see reports/bench/duplicates.md) and at most
2 x ``max_candidates`` confirmations (two 400x400 Hamming matchings and RANSAC each, a few ms):
linear in the archive. Memory per image: about 71 kB (800 keypoints x 46 bytes and a 128-high uint8
thumbnail), 7 GB for 100,000 images.

Confirmed pairs are joined into groups (union-find).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy import sparse

from pipeline.core import workpool

WORK_HEIGHT = 320          # working copy (keypoints) height; width follows the aspect, at most 3.5x
THUMB_HEIGHT = 128         # confirming thumbnail height (uint8)
N_FEATURES = 400           # ORB keypoints per working copy (and as many for its mirror image)
FEATURE_GRID = (8, 4)      # keypoints spread over these cells (columns, rows)
LAYOUT_GRID = (16, 8)      # layout descriptor samples (columns, rows)
QUERY_WINDOW = 0.72        # the query's window: this share of the width and of the height, centred
GALLERY_SCALES = (1.0, 0.9, 0.8)  # gallery windows: QUERY_WINDOW x these, in width and in height
RATIO = 0.8                # Lowe's ratio test for keypoint matches
MIN_INLIERS = 12           # RANSAC inliers a confirmed pair needs at least
MAX_ROTATION = 8.0         # degrees between the two copies (after turning 180 where the audit does)
SCALE_RANGE = (0.7, 1.45)  # scale between working copies (crops of up to 10 % per side: 0.8-1.25)
KINDS = ("copy", "flipped")
WORD_BITS = 12             # keypoint words: 12 fixed bits of an ORB descriptor, in WORD_TABLES tables
WORD_TABLES = 3
_WORD_BITS = np.stack([np.sort(np.random.default_rng([99, t]).choice(256, WORD_BITS, replace=False))
                       for t in range(WORD_TABLES)])  # fixed (the same in every run and process)


@dataclass(frozen=True)
class Fingerprint:
    size: tuple[int, int]      # (width, height) of the working copy
    pts: np.ndarray            # (n, 2) float32 keypoint positions in the working copy
    des: np.ndarray            # (n, 32) uint8 ORB descriptors
    pts_m: np.ndarray          # the same for the mirror image (positions in the mirrored frame)
    des_m: np.ndarray
    thumb: np.ndarray          # (THUMB_HEIGHT, w) uint8, rank-equalised
    query: np.ndarray          # (2, d) float32 unit rows: layout query, its mirror
    gallery: np.ndarray        # (len(GALLERY_SCALES)**2, d) float32 unit rows
    words: np.ndarray          # (n, WORD_TABLES) uint16 keypoint words (of des), offset per table
    words_m: np.ndarray        # the same of des_m

    def rotated180(self) -> "Fingerprint":
        """The fingerprint of the image turned 180 degrees (ORB descriptors are rotation invariant:
        only the positions move)."""
        w, h = self.size
        turn = np.array([w - 1, h - 1], np.float32)
        thumb = np.ascontiguousarray(self.thumb[::-1, ::-1])
        q, g = _layout(thumb)
        return replace(self, pts=turn - self.pts, pts_m=turn - self.pts_m, thumb=thumb, query=q, gallery=g)


def _equalised(img: np.ndarray) -> np.ndarray:
    """Working copy: WORK_HEIGHT high, uint8, histogram-equalised (any monotone change of the
    intensities (gamma, window, brightness, contrast, bit depth) gives about the same copy)."""
    img = img.astype(np.float32, copy=False)
    h, w = img.shape
    ww = max(16, min(round(w * WORK_HEIGHT / h), round(3.5 * WORK_HEIGHT)))
    while img.shape[0] >= 4 * WORK_HEIGHT:  # Gaussian halvings first: cheaper than one big area resize
        img = cv2.pyrDown(img)
    interp = cv2.INTER_AREA if img.shape[0] > WORK_HEIGHT else cv2.INTER_LINEAR
    work = cv2.resize(img, (ww, WORK_HEIGHT), interpolation=interp)
    lo, hi = np.percentile(work[::3, ::3], [0.5, 99.5])
    u8 = np.round(np.clip((work - lo) / max(float(hi - lo), 1e-6), 0, 1) * 255).astype(np.uint8)
    return cv2.equalizeHist(u8)


def _unit(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float32) - np.float32(v.mean())
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _window(img: np.ndarray, fx: float, fy: float) -> np.ndarray:
    h, w = img.shape
    cw, ch = w * fx, h * fy
    x0, y0 = (w - cw) / 2, (h - ch) / 2
    # the window resampled onto the grid (a blur of about one grid cell first, done by the caller)
    gx, gy = LAYOUT_GRID
    m = np.array([[cw / gx, 0, x0 + cw / gx / 2 - 0.5], [0, ch / gy, y0 + ch / gy / 2 - 0.5]], np.float32)
    return cv2.warpAffine(img, m, (gx, gy), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def _layout(eq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query rows: upright, mirrored; gallery rows) of an equalised copy (any size)."""
    h, w = eq.shape
    f = eq.astype(np.float32)
    f = cv2.GaussianBlur(f, (0, 0), 0.5 * QUERY_WINDOW * w / LAYOUT_GRID[0] * 0.8)
    q = _window(f, QUERY_WINDOW, QUERY_WINDOW)
    query = np.stack([_unit(q).ravel(), _unit(q[:, ::-1]).ravel()])
    gallery = np.stack([_unit(_window(f, QUERY_WINDOW * sx, QUERY_WINDOW * sy)).ravel()
                        for sx in GALLERY_SCALES for sy in GALLERY_SCALES])
    return query, gallery


_ORB = None


def _orb():
    global _ORB
    if _ORB is None:
        _ORB = cv2.ORB_create(nfeatures=N_FEATURES * 2, scaleFactor=1.2, nlevels=6, edgeThreshold=15,
                              patchSize=31, fastThreshold=8)
    return _ORB


def _keypoints(eq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ORB keypoints spread over FEATURE_GRID cells (the strongest of each cell, topped up with the
    strongest of the rest): positions and descriptors, then the same keypoints in the mirror image
    (FAST corners and their scales are mirror-symmetric; the descriptors are not, so they are computed
    again there)."""
    orb = _orb()
    kps = orb.detect(eq, None)
    empty = np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    if not kps:
        return *empty, *empty
    h, w = eq.shape
    gx, gy = FEATURE_GRID
    pts = np.array([k.pt for k in kps], np.float32)
    resp = np.array([k.response for k in kps], np.float32)
    cell = np.minimum(gx - 1, (pts[:, 0] * gx / w).astype(int)) + gx * np.minimum(gy - 1, (pts[:, 1] * gy / h).astype(int))
    order = np.lexsort((-resp, cell))           # by cell, strongest first
    first = np.searchsorted(cell[order], cell[order], side="left")
    rank = np.arange(len(order)) - first        # rank within its cell
    per = max(1, N_FEATURES // (gx * gy))
    chosen = order[rank < per]
    if len(chosen) < N_FEATURES:
        rest = order[rank >= per]
        chosen = np.concatenate([chosen, rest[np.argsort(-resp[rest], kind="stable")][: N_FEATURES - len(chosen)]])
    keep = [kps[i] for i in chosen]
    keep, des = orb.compute(eq, keep)
    if des is None or not keep:
        return *empty, *empty
    mirror = np.ascontiguousarray(eq[:, ::-1])
    flipped = [cv2.KeyPoint(w - 1 - k.pt[0], k.pt[1], k.size, (180.0 - k.angle) % 360, k.response, k.octave)
               for k in keep]
    flipped, des_m = orb.compute(mirror, flipped)
    pts_m = np.array([k.pt for k in flipped], np.float32) if flipped else empty[0]
    return np.array([k.pt for k in keep], np.float32), des, pts_m, des_m if des_m is not None else empty[1]


def fingerprint(img: np.ndarray) -> Fingerprint:
    """Fingerprint of a grey image (any dtype; float expected in [0, 1])."""
    eq = _equalised(img)
    h, w = eq.shape
    pts, des, pts_m, des_m = _keypoints(eq)
    tw = max(8, round(w * THUMB_HEIGHT / h))
    thumb = cv2.resize(eq, (tw, THUMB_HEIGHT), interpolation=cv2.INTER_AREA)
    q, g = _layout(thumb)
    return Fingerprint((w, h), pts, des, pts_m, des_m, thumb, q, g, _words(des), _words(des_m))


def _words(des: np.ndarray) -> np.ndarray:
    """Each descriptor's word in every table (table t's words offset by t x 2^WORD_BITS)."""
    bits = np.unpackbits(des, axis=1) if len(des) else np.zeros((0, 256), np.uint8)
    weights = 1 << np.arange(WORD_BITS)
    codes = [(bits[:, b].astype(np.int64) * weights).sum(axis=1) + t * (1 << WORD_BITS)
             for t, b in enumerate(_WORD_BITS)]
    return np.stack(codes, axis=1).astype(np.uint16) if len(des) else np.zeros((0, WORD_TABLES), np.uint16)


# ------------------------------------------------------------------------------------ confirmation
@dataclass(frozen=True)
class Match:
    similarity: float  # mean of ``ncc`` and ``share``; 0 when no plausible alignment
    kind: str          # "copy" or "flipped"
    inliers: int       # RANSAC inliers
    share: float = 0.0  # inliers / keypoint matches that passed the ratio test
    ncc: float = 0.0   # fine band-pass NCC of the registered thumbnails
    scale: float = 1.0
    rotation: float = 0.0  # degrees


_NO_MATCH = Match(0.0, "copy", 0)


def _band(u8: np.ndarray) -> np.ndarray:
    """The finest detail of a thumbnail (difference of Gaussians 0.5 - 1 px): what two exports of one
    radiograph share and two look-alike OPGs (the same anatomy, registered) do not."""
    f = u8.astype(np.float32)
    return cv2.GaussianBlur(f, (0, 0), 0.5) - cv2.GaussianBlur(f, (0, 0), 1.0)


def _align(a: Fingerprint, pts_b: np.ndarray, des_b: np.ndarray) -> tuple[np.ndarray | None, int, int]:
    """(similarity transform from b's working copy onto a's, RANSAC inliers, ratio-test matches)."""
    if len(a.des) < 2 or len(des_b) < 2:
        return None, 0, 0
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    knn = bf.knnMatch(des_b, a.des, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < MIN_INLIERS:
        return None, 0, len(good)
    src = pts_b[[m.queryIdx for m in good]]
    dst = a.pts[[m.trainIdx for m in good]]
    M, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0,
                                         maxIters=500, confidence=0.995, refineIters=10)
    if M is None:
        return None, 0, len(good)
    return M, int(inl.sum()), len(good)


def _ncc_aligned(a: Fingerprint, thumb_b: np.ndarray, M: np.ndarray) -> float:
    """NCC of the band-passed thumbnails with ``thumb_b`` warped by ``M`` (working-copy coordinates)
    onto ``a``'s, over their overlap."""
    s = THUMB_HEIGHT / WORK_HEIGHT
    Mt = M.astype(np.float64).copy()
    # the same scale for both working copies: the linear part stays, the shift scales (pixel centres)
    Mt[:, 2] = s * Mt[:, 2] + 0.5 * (1 - s) * (Mt[:, :2].sum(axis=1) - 1)
    th, tw = a.thumb.shape
    warped = cv2.warpAffine(_band(thumb_b), Mt, (tw, th), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.warpAffine(np.ones(thumb_b.shape, np.uint8), Mt, (tw, th), flags=cv2.INTER_NEAREST)
    mask = cv2.erode(mask, np.ones((7, 7), np.uint8))
    if mask.sum() < 0.2 * th * tw:
        return 0.0
    m = mask.astype(bool)
    x, y = _band(a.thumb)[m], warped[m]
    x, y = x - x.mean(), y - y.mean()
    d = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / d) if d > 0 else 0.0


def _try(a: Fingerprint, b: Fingerprint, flipped: bool) -> Match:
    pts, des = (b.pts_m, b.des_m) if flipped else (b.pts, b.des)
    M, n, n_good = _align(a, pts, des)
    if M is None or n < MIN_INLIERS:
        return _NO_MATCH
    scale = math.hypot(M[0, 0], M[1, 0])
    rot = math.degrees(math.atan2(M[1, 0], M[0, 0]))
    if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1] or abs(rot) > MAX_ROTATION:
        return _NO_MATCH
    thumb = np.ascontiguousarray(b.thumb[:, ::-1]) if flipped else b.thumb
    ncc = _ncc_aligned(a, thumb, M)
    share = n / n_good
    return Match(0.5 * (max(ncc, 0.0) + share), "flipped" if flipped else "copy", n, share, ncc, scale, rot)


def confirm(a: Fingerprint, b: Fingerprint) -> Match:
    """The better of ``b`` registered onto ``a`` as it is and mirrored."""
    m0 = _try(a, b, False)
    if m0.similarity >= 0.9:  # (an OPG is nearly symmetric: its own mirror image may register too)
        return m0
    m1 = _try(a, b, True)
    return m1 if m1.similarity > m0.similarity else m0


# -------------------------------------------------------------------------------------- candidates
def candidate_pairs(queries: np.ndarray, galleries: np.ndarray, threshold: float, max_per_image: int = 8,
                    block: int = 512, dense_limit: int = 4096) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, score)`` with ``i < j``: for each image its ``max_per_image`` best partners whose
    layout score reaches ``threshold``. ``queries``: (n, q, d) unit rows; ``galleries``: (n, g, d); the
    score of (i, j) is the best cosine of any query row of one against any gallery row of the other
    (both ways round). Up to ``dense_limit`` images the (n, n) scores are held at once; above, blocks
    of ``block`` query images are scored against the whole gallery (memory: block x n) and each image
    keeps the partners that score best as *its* queries see them (the other direction is covered when
    the partner's own block runs)."""
    n = len(queries)
    if n < 2:
        return []
    nq, ng, d = queries.shape[1], galleries.shape[1], queries.shape[2]
    gal = galleries.reshape(n * ng, d)
    k = min(max_per_image, n - 1)
    dense = np.full((n, n), -np.inf, np.float32) if n <= dense_limit else None
    out: dict[tuple[int, int], float] = {}
    for s in range(0, n, block):
        q = queries[s:s + block].reshape(-1, d)
        sim = (q @ gal.T).reshape(-1, nq, n, ng).max(axis=(1, 3))  # (rows, n)
        sim[np.arange(sim.shape[0]), s + np.arange(sim.shape[0])] = -np.inf
        if dense is not None:
            dense[s:s + sim.shape[0]] = sim
            continue
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        for r, js in enumerate(top):
            for j in js:
                v = float(sim[r, j])
                if v >= threshold:
                    key = (min(s + r, int(j)), max(s + r, int(j)))
                    out[key] = max(out.get(key, -1.0), v)
    if dense is not None:  # symmetric scores, then each image's best partners
        sym = np.maximum(dense, dense.T)
        top = np.argpartition(-sym, k - 1, axis=1)[:, :k]
        for i, js in enumerate(top):
            for j in js:
                v = float(sym[i, j])
                if v >= threshold:
                    out[(min(i, int(j)), max(i, int(j)))] = v
    return sorted((i, j, v) for (i, j), v in out.items())


def _bag(words: list[np.ndarray]) -> sparse.csr_matrix:
    """Rows: square-rooted word counts, unit norm (a bag of keypoint words per image)."""
    n = len(words)
    rows = np.concatenate([np.full(w.size, i) for i, w in enumerate(words)]) if n else np.zeros(0, int)
    cols = np.concatenate([w.ravel().astype(np.int64) for w in words]) if n else np.zeros(0, int)
    m = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                          shape=(n, WORD_TABLES << WORD_BITS))
    m.sum_duplicates()
    m.data = np.sqrt(m.data)
    norm = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sparse.diags(1 / np.maximum(norm, 1e-9)).dot(m).tocsr()


def word_pairs(fingerprints: list[Fingerprint], max_per_image: int = 8,
               block: int = 512) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, score)`` with ``i < j``: for each image its ``max_per_image`` best partners by
    the cosine of their bags of keypoint words (upright or mirrored, the better): blind to crops,
    shifts and small turns, where the layout is not, and telling apart look-alike OPGs that the layout
    cannot (drawn from one anatomy model). A sparse product in blocks of ``block`` images."""
    n = len(fingerprints)
    if n < 2:
        return []
    up = _bag([f.words for f in fingerprints])
    mirror = _bag([f.words_m for f in fingerprints])
    k = min(max_per_image, n - 1)
    out: dict[tuple[int, int], float] = {}
    for s in range(0, n, block):
        e = min(n, s + block)
        sim = np.maximum((up[s:e] @ up.T).toarray(), (mirror[s:e] @ up.T).toarray())
        sim[np.arange(e - s), s + np.arange(e - s)] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        for r, js in enumerate(top):
            for j in js:
                key = (min(s + r, int(j)), max(s + r, int(j)))
                out[key] = max(out.get(key, -1.0), float(sim[r, j]))
    return sorted((i, j, v) for (i, j), v in out.items())


def layout_scores(fingerprints: list[Fingerprint]) -> np.ndarray:
    """(n, n) symmetric layout score of every pair (for benchmarks; the stage uses candidate_pairs)."""
    q = np.stack([f.query for f in fingerprints])
    g = np.stack([f.gallery for f in fingerprints])
    n = len(fingerprints)
    sim = (q.reshape(-1, q.shape[2]) @ g.reshape(n * g.shape[1], -1).T).reshape(n, q.shape[1], n, g.shape[1])
    sim = sim.max(axis=(1, 3))
    sym = np.maximum(sim, sim.T)
    np.fill_diagonal(sym, -np.inf)
    return sym


def _confirm_job(a: Fingerprint, b: Fingerprint) -> Match:
    return confirm(a, b)


def group(fingerprints: list[Fingerprint], candidate_threshold: float, threshold: float,
          max_candidates: int = 8, workers: int = 1) -> tuple[list[int], list[tuple[int, int, Match]]]:
    """Group near-duplicates: ``(label per image, confirmed pairs (i, j, match))``.

    Labels are the smallest member index of each group (an image alone is its own label). The
    confirmations run over ``workers`` processes."""
    n = len(fingerprints)
    if n == 0:
        return [], []
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    q = np.stack([f.query for f in fingerprints])
    g = np.stack([f.gallery for f in fingerprints])
    pairs = candidate_pairs(q, g, candidate_threshold, max_candidates)
    seen = {(i, j) for i, j, _ in pairs}  # and each image's best partners by keypoint words
    pairs += [p for p in word_pairs(fingerprints, max_candidates) if (p[0], p[1]) not in seen]
    pairs.sort()
    jobs = [(fingerprints[i], fingerprints[j]) for i, j, _ in pairs]
    confirmed = []
    for (i, j, _), m in zip(pairs, workpool.imap(_confirm_job, jobs, workers, progress=False)):
        if m.similarity >= threshold:
            confirmed.append((i, j, m))
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(n)], confirmed


def fine_similarity(a: Fingerprint, b: Fingerprint) -> float:
    """The confirmed similarity of ``b`` to ``a`` (:func:`confirm`), 0 when they do not register."""
    return confirm(a, b).similarity
