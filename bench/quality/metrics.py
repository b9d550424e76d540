"""Sample-quality metrics of the quality harness (numpy, POT, scipy).

Between a generated and a reference set of distributions, with a distance D
between two distributions (the definitions of model/eval/metrics.h, so the
numbers match the server's Evaluate):

  1-NNA  leave-one-out 1-nearest-neighbour accuracy on the union of both sets
         (0.5: indistinguishable; ties count as wrong), and on each side;
  MMD    mean over reference items of the distance to the nearest generated one;
  COV    fraction of reference items that are the nearest reference item of
         some generated item.

Point clouds (uniform weights): D = Chamfer (mean squared distance to the
nearest point, both ways, summed) and D = EMD (squared 2-Wasserstein, exact,
POT's ot.emd2). Gaussians: D = squared Bures–Wasserstein distance.

Spatial niches: the per-centre-type composition distance: every generated
neighbour is typed by a 1-nearest-neighbour classifier on the real training
cells (in log1p space), the neighbour-type histogram of the niches generated
for each centre type is compared with that of the real held-out niches by the
total-variation distance, and the distances are averaged over the centre
types.
"""

import numpy as np


def one_nna_mmd_cov(d_gg, d_rr, d_gr):
    d_gg = np.array(d_gg, dtype=np.float64)
    d_rr = np.array(d_rr, dtype=np.float64)
    np.fill_diagonal(d_gg, np.inf)
    np.fill_diagonal(d_rr, np.inf)
    g, r = d_gr.shape
    right_g = int((d_gg.min(1) < d_gr.min(1)).sum())
    right_r = int((d_rr.min(1) < d_gr.min(0)).sum())
    return {
        "1nna": (right_g + right_r) / (g + r),
        # Each side's accuracy. Samples that each stray far in a direction
        # of their own (outlying points) are nearer to the compact data than
        # to each other: 1-NNA ~0.5 made of ~0 on the generated side and 1
        # on the real side, where a good generator is ~0.5 on both; MMD then
        # shows the distance.
        "1nna_generated": right_g / g,
        "1nna_real": right_r / r,
        "mmd": float(d_gr.min(0).mean()),
        "cov": len(np.unique(d_gr.argmin(1))) / r,
    }


def _sq_dist(x, y):
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0)


def pairwise_emd(a, b, symmetric=False):
    """Squared 2-Wasserstein distances [A, B] between uniformly weighted
    clouds: a linear assignment when all clouds have one size (the optimal
    plan is then a permutation), POT's exact network simplex otherwise.
    symmetric: a and b are the same list (only one triangle is solved)."""
    sizes = {len(c) for c in a} | {len(c) for c in b}
    out = np.zeros((len(a), len(b)))
    if len(sizes) == 1:
        from scipy.optimize import linear_sum_assignment
        stacked = np.stack(b)  # [B, n, d]
        bb = (stacked * stacked).sum(2)
        for i, x in enumerate(a):
            first = i + 1 if symmetric else 0
            cost = np.maximum((x * x).sum(1)[None, :, None] + bb[first:, None, :]
                              - 2 * np.einsum("id,bjd->bij", x, stacked[first:]), 0)
            for j in range(first, len(b)):
                m = cost[j - first]
                r, c = linear_sum_assignment(m)
                out[i, j] = m[r, c].mean()
    else:
        import ot
        for i, x in enumerate(a):
            wx = np.full(len(x), 1.0 / len(x))
            for j in range(i + 1 if symmetric else 0, len(b)):
                y = b[j]
                out[i, j] = ot.emd2(wx, np.full(len(y), 1.0 / len(y)), _sq_dist(x, y))
    if symmetric:
        out = out + out.T
    return out


def pairwise_chamfer(a, b):
    """Chamfer distances [A, B]: all points of b at once per cloud of a."""
    bp = np.concatenate(b).astype(np.float64)
    owner = np.repeat(np.arange(len(b)), [len(y) for y in b])
    starts = np.concatenate([[0], np.cumsum([len(y) for y in b])[:-1]])
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        d = _sq_dist(x.astype(np.float64), bp)  # [n, P]
        # x -> y: per cloud y, the min over its points, averaged over x's points.
        mins_x = np.minimum.reduceat(d, starts, axis=1).mean(0)  # [B]
        # y -> x: per point of y, the min over x, averaged per cloud y.
        col = d.min(0)
        mins_y = np.bincount(owner, weights=col) / np.bincount(owner)
        out[i] = mins_x + mins_y
    return out


def pointcloud_metrics(generated, reference, emd=True, cache=None):
    """Chamfer (and EMD) metrics; `cache` (a dict) keeps the reference set's
    own distances between calls with the same reference."""
    g = [np.asarray(c, np.float64) for c in generated]
    r = [np.asarray(c, np.float64) for c in reference]
    cache = {} if cache is None else cache
    if "chamfer_rr" not in cache:
        cache["chamfer_rr"] = pairwise_chamfer(r, r)
    res = {"chamfer": one_nna_mmd_cov(pairwise_chamfer(g, g), cache["chamfer_rr"],
                                      pairwise_chamfer(g, r))}
    if emd:
        if "emd_rr" not in cache:
            cache["emd_rr"] = pairwise_emd(r, r, True)
        res["emd"] = one_nna_mmd_cov(pairwise_emd(g, g, True), cache["emd_rr"],
                                     pairwise_emd(g, r))
    return res


def _sqrtm_psd(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.maximum(w, 0))[..., None, :]) @ np.swapaxes(v, -1, -2)


def pairwise_bures(m1, s1, m2, s2):
    """Squared Bures–Wasserstein distances [A, B]."""
    r1 = _sqrtm_psd(s1)  # [A, d, d]
    tr1 = np.trace(s1, axis1=1, axis2=2)
    tr2 = np.trace(s2, axis1=1, axis2=2)
    out = np.zeros((len(m1), len(m2)))
    for i in range(len(m1)):
        inner = r1[i][None] @ s2 @ r1[i][None]  # [B, d, d]
        w = np.linalg.eigvalsh((inner + np.swapaxes(inner, 1, 2)) / 2)
        cross = np.sqrt(np.maximum(w, 0)).sum(1)
        out[i] = ((m1[i][None] - m2) ** 2).sum(1) + tr1[i] + tr2 - 2 * cross
    return np.maximum(out, 0)


def gaussian_metrics(gen_means, gen_covs, ref_means, ref_covs):
    return {"bures": one_nna_mmd_cov(pairwise_bures(gen_means, gen_covs, gen_means, gen_covs),
                                     pairwise_bures(ref_means, ref_covs, ref_means, ref_covs),
                                     pairwise_bures(gen_means, gen_covs, ref_means, ref_covs))}


class CellTyper:
    """1-nearest-neighbour cell-type classifier on real cells, in log1p space."""

    def __init__(self, counts, types):
        self.x = np.log1p(np.maximum(np.asarray(counts, np.float64), 0))
        self.types = np.asarray(types)
        self.xx = (self.x * self.x).sum(1)

    def __call__(self, counts):
        q = np.log1p(np.maximum(np.asarray(counts, np.float64), 0))
        out = np.empty(len(q), dtype=self.types.dtype)
        for s in range(0, len(q), 2048):
            block = q[s:s + 2048]
            d = (block * block).sum(1)[:, None] + self.xx[None] - 2 * block @ self.x.T
            out[s:s + 2048] = self.types[d.argmin(1)]
        return out


def composition(neighbour_types, num_types):
    """Histogram of neighbour types over niches ([niches, k] type indices)."""
    h = np.bincount(np.asarray(neighbour_types).ravel(), minlength=num_types).astype(float)
    return h / max(h.sum(), 1)


def composition_distance(gen_by_type, real_by_type, num_types):
    """Mean over centre types of the TV distance between neighbour-type
    histograms; gen_by_type / real_by_type: {centre type: [niches, k] types}."""
    tv = []
    for t in sorted(real_by_type):
        if t not in gen_by_type or len(real_by_type[t]) == 0:
            continue
        p = composition(gen_by_type[t], num_types)
        q = composition(real_by_type[t], num_types)
        tv.append(0.5 * np.abs(p - q).sum())
    return float(np.mean(tv))
