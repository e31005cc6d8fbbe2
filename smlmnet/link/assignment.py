"""Sparse assignment between two sets with a 'no link' alternative.

Linking i → j costs ``cost_ij``; leaving both unlinked costs ``alternative`` (the birth plus
death cost of u-track/TrackMate's square LAP matrix). Minimizing the total is the same as
choosing links that maximize Σ (alternative − cost_ij), which this module solves exactly by
splitting the candidate graph into connected components and running a dense rectangular
assignment (Jonker–Volgenant via scipy) on each component that is not a single edge.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def solve_sparse_assignment(i: np.ndarray, j: np.ndarray, cost: np.ndarray, n_i: int, n_j: int,
                            alternative: float, greedy: bool = False) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Choose links among candidate edges ``(i[k], j[k], cost[k])``.

    Args:
        n_i, n_j: sizes of the two sets (indices are 0-based into them).
        alternative: cost of not linking a pair (edges with cost ≥ it are never taken).
        greedy: take edges cheapest first instead of the optimal assignment.
    Returns:
        ``(i_linked, j_linked)``: each element of either set appears at most once.
    """
    i, j, cost = np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(cost, float)
    ok = cost < alternative
    i, j, cost = i[ok], j[ok], cost[ok]
    if i.size == 0:
        return i, j
    if greedy:
        order = np.argsort(cost, kind="stable")
        used_i, used_j = np.zeros(n_i, bool), np.zeros(n_j, bool)
        take = []
        for k in order:
            if not used_i[i[k]] and not used_j[j[k]]:
                used_i[i[k]] = used_j[j[k]] = True
                take.append(k)
        take = np.asarray(take, np.int64)
        return i[take], j[take]
    # components of the bipartite candidate graph (nodes: i in [0, n_i), j in [n_i, n_i+n_j))
    graph = coo_matrix((np.ones(i.size), (i, j + n_i)), shape=(n_i + n_j, n_i + n_j))
    _, label = connected_components(graph, directed=False)
    comp = label[i]
    edges_per_comp = np.bincount(comp)
    single = edges_per_comp[comp] == 1
    out_i, out_j = [i[single]], [j[single]]
    multi = np.flatnonzero(~single)
    if multi.size:
        order = multi[np.argsort(comp[multi], kind="stable")]
        bounds = np.flatnonzero(np.diff(comp[order])) + 1
        for group in np.split(order, bounds):
            ui, inv_i = np.unique(i[group], return_inverse=True)
            uj, inv_j = np.unique(j[group], return_inverse=True)
            gain = np.zeros((ui.size, uj.size))
            gain[inv_i, inv_j] = cost[group] - alternative  # negative = worth linking
            rows, cols = linear_sum_assignment(gain)
            good = gain[rows, cols] < 0
            out_i.append(ui[rows[good]])
            out_j.append(uj[cols[good]])
    return np.concatenate(out_i), np.concatenate(out_j)
