"""Sparse assignment between two sets with a 'no link' alternative.

Linking i → j costs ``cost_ij``; leaving both unlinked costs ``alternative`` (the birth plus
death cost of u-track/TrackMate's square LAP matrix). Minimizing the total is the same as
choosing links that maximize Σ (alternative − cost_ij), which this module solves exactly by
splitting the candidate graph into connected components and running a rectangular assignment
on each component that is not a single edge: dense Jonker–Volgenant (scipy's
``linear_sum_assignment``) on small components, sparse LAPJVsp (scipy's
``min_weight_full_bipartite_matching`` on the square "link / no link" graph of u-track) on large
ones, so a component of 10⁴–10⁵ nodes (low thresholds, crowded movies) costs time and memory in
proportion to its edges instead of a dense matrix.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

#: components with more (rows × columns) cells than this use the sparse solver
DENSE_MAX_CELLS = 250_000


def greedy_assignment(i: np.ndarray, j: np.ndarray, cost: np.ndarray, n_i: int,
                      n_j: int) -> np.ndarray:
    """Greedy one-to-one choice among candidate edges ``(i[k], j[k], cost[k])``: cheapest
    first (ties in input order), an edge is taken when neither end is taken yet.

    The one greedy matcher of the package: nearest-neighbour linking and the SMLM challenge's
    per-frame pairing (:func:`smlmnet.metrics.localization.match_per_frame`) both use it.

    Returns:
        Indices ``k`` of the chosen edges, in the order they were taken.
    """
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    order = np.argsort(np.asarray(cost, float), kind="stable")
    used_i, used_j = np.zeros(n_i, bool), np.zeros(n_j, bool)
    take = []
    for k in order:
        a, b = i[k], j[k]
        if not used_i[a] and not used_j[b]:
            used_i[a] = used_j[b] = True
            take.append(k)
    return np.asarray(take, np.int64)


def solve_sparse_assignment(i: np.ndarray, j: np.ndarray, cost: np.ndarray, n_i: int, n_j: int,
                            alternative: float, greedy: bool = False,
                            dense_max_cells: int = DENSE_MAX_CELLS) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Choose links among candidate edges ``(i[k], j[k], cost[k])``.

    Args:
        n_i, n_j: sizes of the two sets (indices are 0-based into them).
        alternative: cost of not linking a pair (edges with cost ≥ it are never taken).
        greedy: take edges cheapest first (:func:`greedy_assignment`) instead of the optimal
            assignment.
        dense_max_cells: components whose (sources × targets) exceed this are solved sparse
            (same optimum; ties may be broken differently).
    Returns:
        ``(i_linked, j_linked)``: each element of either set appears at most once.
    """
    i, j, cost = np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(cost, float)
    ok = cost < alternative
    i, j, cost = i[ok], j[ok], cost[ok]
    if i.size == 0:
        return i, j
    if greedy:
        take = greedy_assignment(i, j, cost, n_i, n_j)
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
            if ui.size * uj.size > dense_max_cells:
                rows, cols = _sparse_component(inv_i, inv_j, cost[group], ui.size, uj.size,
                                               alternative)
            else:
                gain = np.zeros((ui.size, uj.size))
                gain[inv_i, inv_j] = cost[group] - alternative  # negative = worth linking
                rows, cols = linear_sum_assignment(gain)
                good = gain[rows, cols] < 0
                rows, cols = rows[good], cols[good]
            out_i.append(ui[rows])
            out_j.append(uj[cols])
    return np.concatenate(out_i), np.concatenate(out_j)


def _sparse_component(a: np.ndarray, b: np.ndarray, cost: np.ndarray, n_a: int, n_b: int,
                      alternative: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal links ``(rows, cols)`` of one component (edges ``a[k] → b[k]``, each
    ``cost < alternative``; of a repeated pair the cheapest counts) as a full matching of
    u-track's square graph. Rows: the ``n_a`` sources, then one "no parent" dummy per target;
    columns: the ``n_b`` targets, then one "no child" dummy per source. A source → its dummy
    and a dummy → its target cost ``alternative / 2`` each; every candidate edge also appears
    transposed between the dummies at cost 0 (two linked elements free their dummies to pair
    up). Leaving a pair unlinked costs ``alternative``, linking it ``cost``: the dense
    objective."""
    # a sparse matrix would add up repeated pairs: keep each pair's cheapest edge
    order = np.argsort(cost, kind="stable")
    _, first = np.unique(a[order] * n_b + b[order], return_index=True)
    a, b, cost = a[order[first]], b[order[first]], cost[order[first]]
    src = np.arange(n_a)
    dst = np.arange(n_b)
    half = 0.5 * float(alternative)
    r = np.concatenate([a, src, n_a + dst, n_a + b])
    c = np.concatenate([b, n_b + src, dst, n_b + a])
    w = np.concatenate([cost, np.full(n_a, half), np.full(n_b, half), np.zeros(a.size)])
    w = w + (1.0 - min(0.0, float(w.min())))     # LAPJVsp needs non-zero weights
    n = n_a + n_b
    rows, cols = min_weight_full_bipartite_matching(coo_matrix((w, (r, c)), shape=(n, n)).tocsr())
    link = (rows < n_a) & (cols < n_b)
    return rows[link], cols[link]
