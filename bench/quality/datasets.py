"""Development data sets of the quality harness, generated from a seed.

Each generator returns a training part and a held-out part drawn from the same
distribution (the held-out part is never seen in training):

  letters     2-D point clouds on the outlines of six letters (A C H K O S) in
              14 DejaVu fonts (python3-fonttools reads the glyphs), randomly
              rotated (±20°), scaled and shifted; labelled by the letter.
  shapes3d    3-D point clouds on four kinds of surfaces (ellipsoid, torus,
              cylinder, cone) with random sizes and rotations; unlabelled, so
              minibatch OT is on.
  cellstates  Gaussian cell states in 5 dimensions: four cell types, each a
              centre and an anisotropic base covariance; a state's mean is
              near its type's centre and its covariance a rotated, rescaled
              base covariance; unlabelled.
  tissue      spatial transcriptomics: cells on 2-D sections with three
              tissue domains, five cell types with domain-specific
              proportions, and 16 count-valued genes (negative binomial
              around per-type means, per-cell size factors). Training: two
              sections; held-out: a third. The niche composition (neighbour
              types given the centre's type) is known by construction.

Only numpy (and fontTools for the letters); run with /usr/bin/python3.
"""

import glob
import math
import os

import numpy as np

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
LETTERS = "ACHKOS"


# ------------------------------------------------------------------ letters

def _flatten_glyph(glyph_set, name, steps=8):
    """The glyph's outline as closed polylines (lists of [n, 2] arrays)."""
    from fontTools.pens.basePen import BasePen

    class Flatten(BasePen):
        def __init__(self, gs):
            super().__init__(gs)
            self.paths, self.cur = [], []

        def _moveTo(self, p):
            self.cur = [p]

        def _lineTo(self, p):
            self.cur.append(p)

        def _curveToOne(self, p1, p2, p3):
            p0 = self.cur[-1]
            for i in range(1, steps + 1):
                t = i / steps
                a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3
                self.cur.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
                                 a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))

        def _qCurveToOne(self, p1, p2):
            p0 = self.cur[-1]
            for i in range(1, steps + 1):
                t = i / steps
                a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t * t
                self.cur.append((a * p0[0] + b * p1[0] + c * p2[0],
                                 a * p0[1] + b * p1[1] + c * p2[1]))

        def _closePath(self):
            if self.cur:
                self.cur.append(self.cur[0])
                self.paths.append(np.asarray(self.cur, dtype=np.float64))
            self.cur = []

        _endPath = _closePath

    pen = Flatten(glyph_set)
    glyph_set[name].draw(pen)
    return pen.paths


def _outline_sampler(paths):
    """Segments (start, vector) and cumulative lengths of the polylines."""
    starts = np.concatenate([p[:-1] for p in paths])
    vecs = np.concatenate([np.diff(p, axis=0) for p in paths])
    lengths = np.linalg.norm(vecs, axis=1)
    keep = lengths > 0
    starts, vecs, lengths = starts[keep], vecs[keep], lengths[keep]
    return starts, vecs, np.cumsum(lengths)


_GLYPHS = {}


def _letter_outlines():
    """{letter: [outline per font]}, each outline normalised to [-1, 1]."""
    if _GLYPHS:
        return _GLYPHS
    try:
        from fontTools.ttLib import TTFont
    except ImportError as e:
        raise SystemExit("the letters data set needs fontTools: apt-get install python3-fonttools"
                         ) from e
    fonts = sorted(f for f in glob.glob(os.path.join(FONT_DIR, "DejaVu*.ttf"))
                   if "Math" not in f and "ExtraLight" not in f)
    if not fonts:
        raise SystemExit(f"no DejaVu fonts in {FONT_DIR}: apt-get install fonts-dejavu-core")
    for letter in LETTERS:
        _GLYPHS[letter] = []
    for path in fonts:
        font = TTFont(path)
        glyph_set, cmap = font.getGlyphSet(), font.getBestCmap()
        for letter in LETTERS:
            paths = _flatten_glyph(glyph_set, cmap[ord(letter)])
            pts = np.concatenate(paths)
            lo, hi = pts.min(0), pts.max(0)
            centre, half = (lo + hi) / 2, (hi - lo).max() / 2
            _GLYPHS[letter].append(_outline_sampler([(p - centre) / half for p in paths]))
    return _GLYPHS


def letters(seed, count, min_points=48, max_points=48):
    """`count` labelled 2-D clouds (classes take turns)."""
    rng = np.random.default_rng(seed)
    outlines = _letter_outlines()
    clouds, labels = [], []
    for i in range(count):
        letter = LETTERS[i % len(LETTERS)]
        starts, vecs, cum = outlines[letter][rng.integers(len(outlines[letter]))]
        n = int(rng.integers(min_points, max_points + 1))
        u = rng.uniform(0, cum[-1], n)
        seg = np.minimum(np.searchsorted(cum, u), len(cum) - 1)
        length = np.linalg.norm(vecs[seg], axis=1)
        frac = np.clip((u - (cum[seg] - length)) / length, 0, 1)
        pts = starts[seg] + frac[:, None] * vecs[seg]
        angle = rng.uniform(-math.pi / 9, math.pi / 9)
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        scale = rng.uniform(0.7, 1.0) * np.array([1.0, rng.uniform(0.85, 1.15)])
        pts = (pts * scale) @ rot.T + rng.uniform(-0.2, 0.2, 2)
        clouds.append(pts.astype(np.float32))
        labels.append(letter)
    return clouds, labels


# ----------------------------------------------------------------- shapes3d

def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def shapes3d(seed, count, min_points=48, max_points=48):
    """`count` unlabelled 3-D clouds: ellipsoids, tori, cylinders and cones in turn."""
    rng = np.random.default_rng(seed)
    clouds = []
    for i in range(count):
        kind = i % 4
        n = int(rng.integers(min_points, max_points + 1))
        size = rng.uniform(0.6, 1.0)
        if kind == 0:  # ellipsoid surface
            v = rng.normal(size=(n, 3))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            pts = v * np.array([1.0, rng.uniform(0.5, 1.0), rng.uniform(0.3, 0.7)])
        elif kind == 1:  # torus
            minor = rng.uniform(0.2, 0.35)
            u, w = rng.uniform(0, 2 * math.pi, n), rng.uniform(0, 2 * math.pi, n)
            pts = np.stack([(1 + minor * np.cos(w)) * np.cos(u), (1 + minor * np.cos(w)) * np.sin(u),
                            minor * np.sin(w)], 1) / (1 + minor)
        elif kind == 2:  # open cylinder
            radius = rng.uniform(0.4, 0.7)
            u = rng.uniform(0, 2 * math.pi, n)
            pts = np.stack([radius * np.cos(u), radius * np.sin(u), rng.uniform(-1, 1, n)], 1)
        else:  # cone (side), apex up
            h = np.sqrt(rng.uniform(0, 1, n))  # uniform on the surface
            u = rng.uniform(0, 2 * math.pi, n)
            radius = rng.uniform(0.5, 0.8)
            pts = np.stack([radius * h * np.cos(u), radius * h * np.sin(u), 1 - 2 * h], 1)
        pts = size * pts @ _random_rotation(rng).T + rng.uniform(-0.15, 0.15, 3)
        clouds.append(pts.astype(np.float32))
    return clouds


# --------------------------------------------------------------- cellstates

def _cellstate_types(dim=5, types=4):
    rng = np.random.default_rng(12345)  # the family's structure is fixed
    centres = rng.normal(0, 2.0, (types, dim))
    bases = []
    for _ in range(types):
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        lam = np.exp(rng.uniform(np.log(0.05), np.log(1.0), dim))
        bases.append(q @ np.diag(lam) @ q.T)
    return centres, np.stack(bases)


def cellstates(seed, count, dim=5):
    """`count` unlabelled Gaussians (means [C, d], covariances [C, d, d])."""
    rng = np.random.default_rng(seed)
    centres, bases = _cellstate_types(dim)
    means, covs = [], []
    for i in range(count):
        t = i % len(centres)
        means.append(centres[t] + rng.normal(0, 0.5, dim))
        # A small random rotation (exp of a skew matrix) and a log-normal scale.
        a = rng.normal(0, 0.25, (dim, dim))
        skew = (a - a.T) / 2
        rot = _expm_skew(skew)
        c = math.exp(rng.normal(0, 0.3)) * rot @ bases[t] @ rot.T
        covs.append((c + c.T) / 2)
    return np.asarray(means), np.asarray(covs)


def _expm_skew(skew):
    """exp of a skew-symmetric matrix (an orthogonal matrix), by scaling and squaring."""
    k = 8
    m = skew / 2 ** k
    e = np.eye(len(m)) + m + m @ m / 2 + m @ m @ m / 6
    for _ in range(k):
        e = e @ e
    q, r = np.linalg.qr(e)
    return q * np.sign(np.diag(r))


# ------------------------------------------------------------------- tissue

TISSUE_TYPES = ["T0", "T1", "T2", "T3", "T4"]
TISSUE_GENES = 16
# Cell-type proportions in each of the three domains.
_DOMAIN_MIX = np.array([[0.60, 0.20, 0.10, 0.05, 0.05],
                        [0.10, 0.50, 0.30, 0.05, 0.05],
                        [0.05, 0.10, 0.15, 0.40, 0.30]])


def _type_means():
    rng = np.random.default_rng(777)  # fixed expression programme per type
    base = np.exp(rng.normal(0.5, 0.7, TISSUE_GENES))
    means = np.tile(base, (len(TISSUE_TYPES), 1))
    for t in range(len(TISSUE_TYPES)):
        markers = rng.choice(TISSUE_GENES, 3, replace=False)
        means[t, markers] *= rng.uniform(4, 10, 3)
    return means


def tissue_section(seed, side=48):
    """One section: coords [n, 2], types [n] (indices), counts [n, G] (float32 integers)."""
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2).astype(float)
    coords = g + rng.uniform(-0.3, 0.3, g.shape)
    # Domains: nearest of three random seeds, with a wavy boundary.
    seeds = rng.uniform(0, side, (3, 2))
    warp = 3 * np.sin(coords[:, [1, 0]] / 6.0 + rng.uniform(0, 6, 2))
    dist = np.linalg.norm((coords + warp)[:, None, :] - seeds[None], axis=2)
    domain = dist.argmin(1)
    cum = np.cumsum(_DOMAIN_MIX[domain], axis=1)
    types = (rng.uniform(size=len(coords))[:, None] > cum).sum(1)
    means = _type_means()[types] * np.exp(rng.normal(0, 0.3, (len(coords), 1)))
    dispersion = 5.0  # negative binomial as a Poisson-gamma mixture
    lam = rng.gamma(dispersion, means / dispersion)
    counts = rng.poisson(lam).astype(np.float32)
    return coords.astype(np.float32), types, counts


def tissue(seed):
    """Training cells (two sections) and held-out cells (a third section)."""
    parts = [tissue_section(seed * 10 + s) for s in range(3)]
    train = {
        "coords": np.concatenate([p[0] for p in parts[:2]]),
        "types": np.concatenate([p[1] for p in parts[:2]]),
        "counts": np.concatenate([p[2] for p in parts[:2]]),
        "samples": np.concatenate([np.full(len(p[0]), f"s{i}") for i, p in enumerate(parts[:2])]),
    }
    held = {"coords": parts[2][0], "types": parts[2][1], "counts": parts[2][2],
            "samples": np.full(len(parts[2][0]), "s2")}
    return train, held


def niches(coords, samples, k):
    """Indices [n, k] of each cell's k nearest other cells of its own sample
    (every sample here has more than k cells)."""
    out = np.zeros((len(coords), k), dtype=np.int64)
    for s in np.unique(samples):
        idx = np.nonzero(samples == s)[0]
        c = coords[idx].astype(np.float64)
        d = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        # Ties broken by index, as a stable sort does.
        out[idx] = idx[np.argsort(d, axis=1, kind="stable")[:, :k]]
    return out
