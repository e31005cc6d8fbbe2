"""Classical single-changepoint detection in a track's step sizes (the baseline beside the
trajectory network's changepoints).

Model: the squared 2D displacements r²_i of a Brownian segment are exponential with mean
μ = 4DΔt + noise terms (:func:`binary_segmentation` applies the test recursively for several
changepoints). For every split c (first step of the second segment) the log
likelihood ratio of "two means" against "one mean" is

    LR(c) = n ln μ̂ − c ln μ̂₁ − (n − c) ln μ̂₂      (μ̂ = sample means of r²),

computed for all c at once from cumulative sums. The changepoint is the c of largest LR among
splits leaving ``min_segment`` steps on each side, reported when 2·LR exceeds ``threshold``
(the statistic is asymptotically χ²-like with a maximum over c; tune the threshold on data that
are not reported). It detects changes of D only, not changes of α or motion model at equal
step size.
"""

from __future__ import annotations

import numpy as np


def likelihood_ratio_profile(r2: np.ndarray, min_segment: int = 5) -> np.ndarray:
    """2·LR(c) for c = 0..n−1 (``-inf`` where a side has fewer than ``min_segment`` steps);
    ``r2`` ``(n,)`` squared step lengths (any unit)."""
    r2 = np.asarray(r2, float)
    n = r2.size
    out = np.full(n, -np.inf)
    if n < 2 * min_segment:
        return out
    eps = max(np.mean(r2), 1e-300) * 1e-12
    cs = np.concatenate([[0.0], np.cumsum(r2)])
    c = np.arange(min_segment, n - min_segment + 1)
    m1 = cs[c] / c + eps
    m2 = (cs[n] - cs[c]) / (n - c) + eps
    m = cs[n] / n + eps
    out[c] = 2 * (n * np.log(m) - c * np.log(m1) - (n - c) * np.log(m2))
    return out


def single_changepoint(disp: np.ndarray, mask: np.ndarray | None = None,
                       threshold: float = 20.0, min_segment: int = 5) -> list[int]:
    """The changepoint of a track ``disp`` ``(n, 2)`` (step index c: displacement c is the first
    of the new segment), ``[]`` when 2·LR stays below ``threshold``. Masked steps (gaps) are
    dropped for the statistic and the index is mapped back to the step grid."""
    disp = np.asarray(disp, float)
    idx = np.arange(len(disp)) if mask is None else np.flatnonzero(mask)
    r2 = np.sum(disp[idx] ** 2, axis=1)
    prof = likelihood_ratio_profile(r2, min_segment)
    if not np.isfinite(prof).any():
        return []
    k = int(np.argmax(prof))
    return [int(idx[k])] if prof[k] > threshold else []


def binary_segmentation(disp: np.ndarray, threshold: float = 20.0, min_segment: int = 5,
                        max_changepoints: int = 10) -> list[int]:
    """Several changepoints of a track ``disp`` ``(n, 2)`` by binary segmentation: split at
    the most likely single changepoint (:func:`single_changepoint`) while 2·LR exceeds
    ``threshold``, then recurse into both sides. Returns ascending step indices (displacement
    c is the first of a new segment)."""
    disp = np.asarray(disp, float)
    found, todo = [], [(0, len(disp))]
    while todo and len(found) < max_changepoints:
        a, b = todo.pop()
        cp = single_changepoint(disp[a:b], threshold=threshold, min_segment=min_segment)
        if cp:
            c = a + cp[0]
            found.append(c)
            todo += [(a, c), (c, b)]
    return sorted(found)
