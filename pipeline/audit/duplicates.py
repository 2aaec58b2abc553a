"""Near-duplicate grouping: the same radiograph re-exported (resized, cropped, re-encoded, re-windowed,
slightly turned, marked or mirrored).

Exact duplicates (the same pixels) already share one image id at ingest. This module finds the copies
whose pixels differ, in two stages:

1. **Candidates**: an inverted file over keypoint words (:func:`candidates`). A word is ``bits`` fixed
   bits of an ORB descriptor, in WORD_TABLES tables; an image is the set of its words. Words held by
   more than ``max_postings`` images are stop words; the rest are weighted by inverse document
   frequency. Every image queries the index with its words and with those of its mirror image and
   keeps its ``max_candidates`` best partners per query, so the confirmations grow linearly with the
   archive (at most 2 x ``max_candidates`` per image).
2. **Confirmation** (per candidate pair): ORB keypoints of the two working copies (spread over a
   grid) are matched and a similarity transform fitted with RANSAC; it must be a plausible re-export
   (SCALE_RANGE, MAX_ROTATION, at least MIN_INLIERS inliers). The second thumbnail is warped onto the
   first; the *similarity* is the median, over BLOCK x BLOCK blocks of the overlap, of the normalised
   cross-correlation of the finest detail (difference of Gaussians). Tried the other way round
   (mirrored keypoints), a match is a flipped copy (``kind = "flipped"``).

Confirmed pairs are joined into groups (union-find). The scores of copies and look-alikes, the cost
per image and the memory: docs/stages/audit.md (figures: ``python -m bench.duplicates``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy import sparse

from pipeline.core import workpool

WORK_HEIGHT = 320          # working copy (keypoints) height; width follows the aspect, at most 3.5x
THUMB_HEIGHT = 192         # confirming thumbnail height (uint8)
N_FEATURES = 400           # ORB keypoints per working copy (and as many for its mirror image)
FEATURE_GRID = (8, 4)      # keypoints spread over these cells (columns, rows)
RATIO = 0.8                # Lowe's ratio test for keypoint matches ...
RATIO_RETRY = 0.9          # ... and a looser one where the strict matches fit no plausible re-export
MIN_INLIERS = 12           # RANSAC inliers a confirmed pair needs at least
MAX_ROTATION = 8.0         # degrees between the two copies (after turning 180 where the audit does)
# scale between the working copies (both WORK_HEIGHT high): a crop of up to 10 % per side (0.8-1.25)
# times the audit's border trim, which may differ between two exports of one radiograph by up to its
# max_trim_fraction (0.2) per side (a darkened, clipped copy loses its dark margins): 0.8 x 0.6 = 0.48
SCALE_RANGE = (0.48, 2.1)
KINDS = ("copy", "flipped")
BLOCK = 12                 # similarity: the fine detail's NCC in blocks of BLOCK x BLOCK thumbnail pixels ...
MIN_BLOCKS = 24            # ... of which the overlap must hold this many (else no similarity)
WORD_TABLES = 4            # keypoint words: fixed bits of each ORB descriptor, in this many tables
WORD_BITS_MIN = 20         # bits per word; one more per doubling of the archive ...
WORD_BITS_MAX = 26
MEAN_POSTING = 2           # ... so that a word's mean posting list stays this short (more bits from 5,243 images)


@dataclass(frozen=True)
class Fingerprint:
    size: tuple[int, int]      # (width, height) of the working copy
    pts: np.ndarray            # (n, 2) float32 keypoint positions in the working copy
    des: np.ndarray            # (n, 32) uint8 ORB descriptors
    pts_m: np.ndarray          # the same for the mirror image (positions in the mirrored frame)
    des_m: np.ndarray
    thumb: np.ndarray          # (THUMB_HEIGHT, w) uint8, rank-equalised
    height: int = THUMB_HEIGHT  # the image's own height (below THUMB_HEIGHT its thumbnail holds less detail)

    def rotated180(self) -> "Fingerprint":
        """The fingerprint of the image turned 180 degrees (ORB descriptors are rotation invariant:
        only the positions move)."""
        w, h = self.size
        turn = np.array([w - 1, h - 1], np.float32)
        thumb = np.ascontiguousarray(self.thumb[::-1, ::-1])
        return replace(self, pts=turn - self.pts, pts_m=turn - self.pts_m, thumb=thumb)


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
    return Fingerprint((w, h), pts, des, pts_m, des_m, thumb, int(img.shape[0]))


# ------------------------------------------------------------------------------------ confirmation
@dataclass(frozen=True)
class Match:
    similarity: float  # median block NCC of the registered thumbnails' finest detail; 0 when no plausible alignment
    kind: str          # "copy" or "flipped"
    inliers: int       # RANSAC inliers
    share: float = 0.0  # inliers / keypoint matches that passed the ratio test
    ncc: float = 0.0   # fine band-pass NCC of the registered thumbnails over the whole overlap (diagnostic)
    scale: float = 1.0
    rotation: float = 0.0  # degrees


_NO_MATCH = Match(0.0, "copy", 0)


def _band(u8: np.ndarray, f: float = 1.0) -> np.ndarray:
    """The finest detail of a thumbnail (difference of Gaussians 0.5 - 1 px, times ``f`` where the
    thumbnail is an enlargement of a smaller image): what two exports of one radiograph share and two
    look-alike OPGs (the same anatomy, registered) do not."""
    x = u8.astype(np.float32)
    return cv2.GaussianBlur(x, (0, 0), 0.5 * f) - cv2.GaussianBlur(x, (0, 0), 1.0 * f)


def _align(a: Fingerprint, pts_b: np.ndarray, des_b: np.ndarray,
           ratios: tuple[float, ...] = (RATIO, RATIO_RETRY)) -> tuple[np.ndarray | None, int, int]:
    """(similarity transform from b's working copy onto a's, RANSAC inliers, ratio-test matches): the
    first of ``ratios`` (Lowe's test, strict first) whose matches fit a plausible re-export (scale within
    SCALE_RANGE, rotation within MAX_ROTATION, at least MIN_INLIERS inliers); (None, 0, matches) if none."""
    if len(a.des) < 2 or len(des_b) < 2:
        return None, 0, 0
    knn = [m for m in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(des_b, a.des, k=2) if len(m) == 2]
    n_good = 0
    for ratio in ratios:
        good = [m[0] for m in knn if m[0].distance < ratio * m[1].distance]
        n_good = len(good)
        if n_good < MIN_INLIERS:
            continue
        src = pts_b[[m.queryIdx for m in good]]
        dst = a.pts[[m.trainIdx for m in good]]
        M, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0,
                                             maxIters=500, confidence=0.995, refineIters=10)
        if M is None or int(inl.sum()) < MIN_INLIERS:
            continue
        scale = math.hypot(M[0, 0], M[1, 0])
        rot = math.degrees(math.atan2(M[1, 0], M[0, 0]))
        if SCALE_RANGE[0] <= scale <= SCALE_RANGE[1] and abs(rot) <= MAX_ROTATION:
            return M, int(inl.sum()), n_good
    return None, 0, n_good


def _ncc_aligned(a: Fingerprint, thumb_b: np.ndarray, M: np.ndarray, f: float = 1.0) -> tuple[float, float]:
    """(global NCC, median block NCC) of the band-passed thumbnails with ``thumb_b`` warped by ``M``
    (working-copy coordinates) onto ``a``'s, over their overlap. The blocks are BLOCK x BLOCK pixels
    lying wholly inside the overlap; a block where either copy has no detail at all counts 0."""
    s = THUMB_HEIGHT / WORK_HEIGHT
    Mt = M.astype(np.float64).copy()
    # the same scale for both working copies: the linear part stays, the shift scales (pixel centres)
    Mt[:, 2] = s * Mt[:, 2] + 0.5 * (1 - s) * (Mt[:, :2].sum(axis=1) - 1)
    th, tw = a.thumb.shape
    warped = cv2.warpAffine(_band(thumb_b, f), Mt, (tw, th), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.warpAffine(np.ones(thumb_b.shape, np.uint8), Mt, (tw, th), flags=cv2.INTER_NEAREST)
    mask = cv2.erode(mask, np.ones((7, 7), np.uint8))
    if mask.sum() < 0.2 * th * tw:
        return 0.0, 0.0
    m = mask.astype(bool)
    band_a = _band(a.thumb, f)
    x, y = band_a[m], warped[m]
    x, y = x - x.mean(), y - y.mean()
    d = float(np.sqrt((x * x).sum() * (y * y).sum()))
    ncc = float((x * y).sum() / d) if d > 0 else 0.0
    # blocks: (rows, cols, BLOCK*BLOCK)
    bh, bw = th // BLOCK, tw // BLOCK
    def blocks(f: np.ndarray) -> np.ndarray:
        f = f[: bh * BLOCK, : bw * BLOCK].reshape(bh, BLOCK, bw, BLOCK).swapaxes(1, 2)
        return f.reshape(bh * bw, BLOCK * BLOCK)
    inside = blocks(mask.astype(np.float32)).min(axis=1) > 0
    if inside.sum() < MIN_BLOCKS:
        return ncc, 0.0
    xa, ya = blocks(band_a)[inside], blocks(warped)[inside]
    xa = xa - xa.mean(axis=1, keepdims=True)
    ya = ya - ya.mean(axis=1, keepdims=True)
    den = np.sqrt((xa * xa).sum(axis=1) * (ya * ya).sum(axis=1))
    local = np.where(den > 0, (xa * ya).sum(axis=1) / np.maximum(den, 1e-12), 0.0)
    return ncc, float(np.median(local))


def _try(a: Fingerprint, b: Fingerprint, flipped: bool) -> Match:
    pts, des = (b.pts_m, b.des_m) if flipped else (b.pts, b.des)
    M, n, n_good = _align(a, pts, des)
    if M is None:
        return _NO_MATCH
    scale = math.hypot(M[0, 0], M[1, 0])
    rot = math.degrees(math.atan2(M[1, 0], M[0, 0]))
    thumb = np.ascontiguousarray(b.thumb[:, ::-1]) if flipped else b.thumb
    # the detail both can hold: a copy smaller than the thumbnail is compared in a coarser band
    ncc, local = _ncc_aligned(a, thumb, M, max(1.0, THUMB_HEIGHT / max(1, min(a.height, b.height))))
    return Match(max(local, 0.0), "flipped" if flipped else "copy", n, n / n_good, ncc, scale, rot)


def confirm(a: Fingerprint, b: Fingerprint) -> Match:
    """The better of ``b`` registered onto ``a`` as it is and mirrored."""
    m0 = _try(a, b, False)
    if m0.similarity >= 0.9:  # (an OPG is nearly symmetric: its own mirror image may register too)
        return m0
    m1 = _try(a, b, True)
    return m1 if m1.similarity > m0.similarity else m0


# -------------------------------------------------------------------------------------- candidates
def _word_bits(n: int) -> int:
    """Bits per keypoint word for an archive of ``n`` images: WORD_BITS_MIN, more once the mean
    posting (n x N_FEATURES / 2^bits) would pass MEAN_POSTING, at most WORD_BITS_MAX."""
    need = math.ceil(math.log2(max(n, 1) * N_FEATURES / MEAN_POSTING))
    return int(min(WORD_BITS_MAX, max(WORD_BITS_MIN, need)))


def _word_positions(bits: int) -> np.ndarray:
    """(WORD_TABLES, bits) descriptor bit positions of each table's word (fixed per ``bits``: the same
    in every run and process)."""
    return np.stack([np.sort(np.random.default_rng([99, bits, t]).choice(256, bits, replace=False))
                     for t in range(WORD_TABLES)])


def words(des: np.ndarray, bits: int) -> np.ndarray:
    """The distinct keypoint words of one descriptor set: ``bits`` fixed bits of each ORB descriptor,
    in each of WORD_TABLES tables (table t's words offset by t x 2^bits), as sorted int64."""
    if not len(des):
        return np.zeros(0, np.int64)
    b = np.unpackbits(des, axis=1)
    weights = np.int64(1) << np.arange(bits, dtype=np.int64)
    codes = [(b[:, pos].astype(np.int64) * weights).sum(axis=1) + (np.int64(t) << bits)
             for t, pos in enumerate(_word_positions(bits))]
    return np.unique(np.concatenate(codes))


@dataclass(frozen=True)
class IndexStats:
    images: int
    bits: int             # bits per word (grows with the archive, see _word_bits)
    stop_words: int       # words dropped: in more than ``max_postings`` images
    postings: int         # (word, image) entries kept in the index
    visits: int           # postings read by all queries together (the candidate search's work)


def candidates(des: list[np.ndarray], des_m: list[np.ndarray], max_per_image: int = 8,
               max_postings: int = 64, block: int = 1024,
               bits: int | None = None) -> tuple[list[tuple[int, int, float]], IndexStats]:
    """Candidate pairs ``(i, j, score)``, ``i < j``, from an inverted file over keypoint words.

    Every image's words (``des``) are posted in the index; a word held by more than ``max_postings``
    images is a stop word and dropped (an OPG's common structure, not its identity), so no posting list
    is longer than ``max_postings``. The rest are weighted by their inverse document frequency,
    ``log((n + 1) / (df + 1))``, and each image is a unit vector of its words' weights. Each image
    queries the index twice, with its own words and with those of its mirror image (``des_m``: a
    flipped copy's mirror image is the original), reading only the posting lists of its own words:
    score = cosine. From each query it keeps its ``max_per_image`` best partners, so an image has at
    most 2 x ``max_per_image`` partners of its own. Work per image: the postings of its words, at
    most WORD_TABLES x N_FEATURES x ``max_postings`` (bounded, whatever the archive's size); with
    ``_word_bits`` the mean posting stays near MEAN_POSTING as the archive grows. ``bits`` overrides
    ``_word_bits`` (benchmarks: the words of a larger archive)."""
    n = len(des)
    bits = _word_bits(n) if bits is None else bits
    if n < 2:
        return [], IndexStats(n, bits, 0, 0, 0)
    up = [words(d, bits) for d in des]
    mi = [words(d, bits) for d in des_m]
    rows = np.repeat(np.arange(n), [len(w) for w in up])
    cols = np.concatenate(up)
    vocab, col = np.unique(cols, return_inverse=True)  # only the words that occur (the index's keys)
    df = np.bincount(col, minlength=len(vocab))
    keep = df <= max_postings
    idf = np.where(keep, np.log((n + 1) / (df + 1)), 0.0).astype(np.float32)
    index = sparse.csr_matrix((idf[col], (rows, col)), shape=(n, len(vocab)))
    index.eliminate_zeros()  # stop words (and words in every image: weight 0) leave the index
    norm = np.sqrt(np.asarray(index.multiply(index).sum(axis=1)).ravel())
    index = sparse.diags(1 / np.maximum(norm, 1e-9)).dot(index).tocsr()
    posted = index.T.tocsr()  # the inverted file: word -> (image, weight)
    lengths = np.diff(posted.indptr)

    def query(ws: list[np.ndarray]) -> tuple[sparse.csr_matrix, int]:
        qr = np.repeat(np.arange(n), [len(w) for w in ws])
        qc = np.searchsorted(vocab, np.concatenate(ws)) if qr.size else np.zeros(0, np.int64)
        hit = (qc < len(vocab))
        hit[hit] = vocab[qc[hit]] == np.concatenate(ws)[hit]
        qr, qc = qr[hit], qc[hit]
        q = sparse.csr_matrix((idf[qc], (qr, qc)), shape=(n, len(vocab)))
        q.eliminate_zeros()
        qn = np.sqrt(np.asarray(q.multiply(q).sum(axis=1)).ravel())
        q = sparse.diags(1 / np.maximum(qn, 1e-9)).dot(q).tocsr()
        return q, int(lengths[q.indices].sum())

    k = min(max_per_image, n - 1)
    out: dict[tuple[int, int], float] = {}
    visits = 0
    for ws in (up, mi):
        q, v = query(ws)
        visits += v
        for s in range(0, n, block):
            sim = (q[s:s + block] @ posted).tocsr()  # reads only the posting lists of the queries' words
            for r in range(sim.shape[0]):
                lo, hi = sim.indptr[r], sim.indptr[r + 1]
                js, vs = sim.indices[lo:hi], sim.data[lo:hi]
                own = js != s + r
                js, vs = js[own], vs[own]
                if len(js) > k:
                    top = np.argpartition(-vs, k - 1)[:k]
                    js, vs = js[top], vs[top]
                for j, val in zip(js.tolist(), vs.tolist()):
                    key = (min(s + r, j), max(s + r, j))
                    out[key] = max(out.get(key, -1.0), val)
    stats = IndexStats(n, bits, int((~keep).sum()), int(index.nnz), visits)
    return sorted((i, j, v) for (i, j), v in out.items()), stats


def group(fingerprints: list[Fingerprint], threshold: float, max_candidates: int = 8, max_postings: int = 64,
          workers: int = 1) -> tuple[list[int], list[tuple[int, int, Match]]]:
    """Group near-duplicates: ``(label per image, confirmed pairs (i, j, match))``.

    Candidates from the keypoint-word index (:func:`candidates`), each confirmed by registration.
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

    pairs, _ = candidates([f.des for f in fingerprints], [f.des_m for f in fingerprints], max_candidates,
                          max_postings)
    jobs = [(fingerprints[i], fingerprints[j]) for i, j, _ in pairs]
    confirmed = []
    for (i, j, _), m in zip(pairs, workpool.imap(confirm, jobs, workers, progress=False)):
        if m.similarity >= threshold:
            confirmed.append((i, j, m))
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(n)], confirmed


def fine_similarity(a: Fingerprint, b: Fingerprint) -> float:
    """The confirmed similarity of ``b`` to ``a`` (:func:`confirm`), 0 when they do not register."""
    return confirm(a, b).similarity
