"""The transformer linker behind the :class:`~smlmnet.link.base.Linker` interface.

Localizations are cut into overlapping windows of ``W`` frames (stride ``s`` ≤ W − 2G + 1, so
every edge of up to ``G`` frames is scored in at least one window where *all* competitors of
both of its ends are present too); a window wider than ``tile_um`` is split into spatial tiles
with a halo of one cut-off distance (an edge is scored by the tile whose core holds its
child). Each window gets the neighbour table of training
(:func:`~smlmnet.link.transformer.graph.window_neighbours`, built once per block of windows
and restricted to each window and tile) and windows are run through the
network in flat batches of at most ``batch_tokens`` tokens (memory bounded, cost linear in the
number of localizations), exactly as in training (same features, same normalization). Each
edge's probability is the mean over the windows that see it with full context; the tracks are
the global assignment on −log p costs with the "no link" cost −log(threshold) (the project's
sparse LAP solver, or greedy), so every localization gets at most one parent and one child,
and an edge may bridge up to ``G − 1`` missing frames (gap edges).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from smlmnet.data import contracts as C
from smlmnet.link.assignment import solve_sparse_assignment
from smlmnet.link.base import Linker, check_localizations
from smlmnet.link.prefetch import prefetch
from smlmnet.link.transformer.graph import restrict_neighbours, window_neighbours
from smlmnet.link.transformer.net import LinkerNet, edge_probabilities
from smlmnet.link.transformer.targets import PHOTONS, UNCERTAINTY

log = logging.getLogger(__name__)

#: values used when a table lacks the optional columns
DEFAULT_PHOTONS = 1000.0
DEFAULT_UNCERTAINTY_NM = 20.0


def check_table(locs: pd.DataFrame) -> None:
    """Raise ``ValueError`` with a clear message for tables the linker cannot use: missing
    ``frame``/``x [nm]``/``y [nm]``, NaN or infinite values (positions, photons,
    uncertainty), negative or non-integer frames, frames not sorted in increasing order."""
    check_localizations(locs)
    fr = locs[C.FRAME].to_numpy()
    if len(fr) and not np.all(np.asarray(fr, float) == np.round(np.asarray(fr, float))):
        raise ValueError("frames must be integers")
    if len(fr) > 1 and np.any(np.diff(np.asarray(fr, np.int64)) < 0):
        raise ValueError("localizations are not sorted by frame; sort them first, e.g. "
                         "locs.sort_values('frame', kind='stable')")
    for col in (PHOTONS, UNCERTAINTY):
        if col in locs.columns:
            v = locs[col].to_numpy(float)
            if not np.isfinite(v).all():
                raise ValueError(f"column {col!r} has NaN or infinite values")
            if (v <= 0).any():
                raise ValueError(f"column {col!r} must be > 0")


def _edge_frame(parts: list, n: int) -> pd.DataFrame:
    """Concatenate ``(i, j, p)`` parts into the edge table."""
    parts = [p for p in parts if p[0].size] or [(np.zeros(0, np.int64), np.zeros(0, np.int64),
                                                 np.zeros(0))]
    i, j, p = (np.concatenate(col) for col in zip(*parts))
    return pd.DataFrame({"i": i, "j": j, "p": p})


def _window_blocks(bounds: np.ndarray, block_rows: int):
    """``(first, last)`` window ranges whose rows (``bounds``: ``(2, n_windows)`` first and
    end row of each window) span about ``block_rows`` rows: one neighbour table is built per
    block and restricted to each of its windows and tiles."""
    n = bounds.shape[1]
    first = 0
    while first < n:
        last = int(np.searchsorted(bounds[1], bounds[0][first] + block_rows, "right"))
        last = min(n, max(last, first + 1))
        yield first, last
        first = last


def _average_final(open_edges: list, frames: np.ndarray, n: int, next_start: int,
                   starts: np.ndarray, n_valid_windows, keep_above: float):
    """Split the scored ``(i, j, p)`` triples into final edges (parent frame before
    ``next_start``: no later window scores them), averaged over their windows and kept when
    ``p > keep_above``, and the still-open triples."""
    if not open_edges:
        return (np.zeros(0, np.int64),) * 2 + (np.zeros(0),), []
    gi = np.concatenate([o[0] for o in open_edges])
    gj = np.concatenate([o[1] for o in open_edges])
    gp = np.concatenate([o[2] for o in open_edges])
    done = frames[gi] < next_start
    rest = [(gi[~done], gj[~done], gp[~done])] if (~done).any() else []
    gi, gj, gp = gi[done], gj[done], gp[done]
    key, inv = np.unique(gi * n + gj, return_inverse=True)
    total = np.bincount(inv, weights=gp)
    i, j = key // n, key % n
    count = n_valid_windows(starts, frames[i], frames[j])
    p = np.clip(total / np.maximum(count, 1), 0.0, 1.0)
    keep = p > keep_above
    return (i[keep], j[keep], p[keep]), rest


class TransformerLinker(Linker):
    """Learned linker (see the module docstring).

    Args:
        net: a trained :class:`LinkerNet`.
        threshold: edges with a probability below it are never taken (tuned on validation
            tables; stored in the model folder).
        stride: frames between window starts (default and maximum ``W − 2G + 1``).
        greedy: take edges most probable first instead of the optimal assignment.
        tile_um: windows wider than this are split into square tiles of this side (plus a
            halo of one cut-off), so coordinates stay in the training range.
        batch_tokens: tokens per network call (memory: ``batch_tokens × K × d_model``).
        min_prob: per-window edge probabilities below this are dropped (memory).
        block_rows: the neighbour table is built once per block of consecutive windows
            spanning about this many localizations and restricted to each window and tile
            (the same table as a window's own, except that a halo token loses, rather than
            replaces, neighbours beyond its tile). Windows overlap, so this is about 3× less
            neighbour-search time than one table per tile on the linking benchmark's
            10⁵-localization stream; memory ``block_rows × K × 8`` bytes.
        prefetch_tiles: neighbour tables built ahead in a background thread (0: none; the
            edges are the same either way), so KD-tree queries overlap with the network on
            a second core.
        workers: batches run through the network at once, each in its own thread with
            torch's intra-op thread count (``None``: the CPUs this process may use divided
            by ``torch.get_num_threads()``, at most 4; 1: the plain loop). Torch releases the
            GIL inside its kernels, so on 2 cores with 1 torch thread two workers link
            1.1–1.5× faster (1.2× on the linking benchmark's 10⁵-localization stream).
            Batches are averaged in submission order, so the edges are identical for any
            value.
        close_gaps_frames: after the assignment, a track end and a track start that are
            ``G + 1`` to ``G + close_gaps_frames`` frames apart may be joined (longer dark
            periods than the network's gap edges; 0 disables): cost ``d² / (Δt · s²)`` with
            ``s²`` the mean squared step per frame of the two tracks (each shrunk towards the
            median step of all tracks with weight 3), taken when below ``close_gaps_cost``
            and only where unambiguous: the expected number of unrelated track starts in the
            acceptance disk, ``ρ_starts · π · cost · Δt · s²``, must stay below
            ``close_gaps_crowding``. Joins are one-to-one (sparse LAP). The defaults were
            chosen on the linking benchmark's tuning seed (never on its report seeds).
        close_gaps_min_gap: joins need more than this many frames between end and start
            (default ``G``: only gaps longer than the network's edges; 0 also re-joins track
            pieces the network left apart across 1…G frames, e.g. a link it found ambiguous
            that no other track took).
        adaptive_threshold: ``{"per_birth_share": k, "min": lo, "max": hi, "power": q}``
            (``power`` optional, default 1) or ``None``: the decoding threshold of each
            movie becomes ``clip(k · b^q, lo, hi)`` (:func:`adaptive_decoding_threshold`),
            with ``b`` the movie's *birth share*, the share of its localizations (away from
            the first and last ``G`` frames) whose incoming edge probabilities sum below
            0.5, i.e. that the network itself gives no parent (track starts, false positives,
            returns from longer dark periods). The no-link cost then follows the movie's own rate of
            births and ends instead of the training mix's (``threshold`` is unused; the
            last value is kept in ``last_threshold`` and ``last_birth_share``). With
            ``q = 2`` it scales as the chance that a pair is *not* a link because one
            track ends at the parent and another starts at the child (≈ b · b).
        device: torch device.
        info: the model folder's ``model.yaml`` (kept for provenance).
    """

    name = "transformer"

    def __init__(self, net: LinkerNet, threshold: float = 0.5, stride: int | None = None,
                 greedy: bool = False, tile_um: float = 20.0, batch_tokens: int = 1024,
                 min_prob: float = 1e-3, close_gaps_frames: int = 4,
                 close_gaps_cost: float = 3.0, close_gaps_crowding: float = 0.03,
                 close_gaps_min_gap: int | None = None, prefetch_tiles: int = 32,
                 block_rows: int = 16384,
                 adaptive_threshold: dict | None = None, workers: int | None = None,
                 device: str = "cpu", info: dict | None = None) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must lie in (0, 1); got {threshold}")
        if adaptive_threshold is not None:
            a = {"power": 1.0, **{k: float(v) for k, v in dict(adaptive_threshold).items()}}
            if set(a) != {"per_birth_share", "min", "max", "power"} or not (
                    0 < a["min"] <= a["max"] < 1 and a["per_birth_share"] > 0
                    and a["power"] > 0):
                raise ValueError("adaptive_threshold needs per_birth_share > 0, 0 < min <= "
                                 f"max < 1 and power > 0 (optional); got {adaptive_threshold}")
            adaptive_threshold = a
        self.adaptive_threshold = adaptive_threshold
        self.last_threshold = self.last_birth_share = None
        self.net = net.eval().to(device)
        W, G = net.window, net.max_gap
        max_stride = W - 2 * G + 1
        if max_stride < 1:
            raise ValueError(f"window {W} is too short for max_gap {G} (need W >= 2G)")
        self.stride = max_stride if stride is None else int(stride)
        if not 1 <= self.stride <= max_stride:
            raise ValueError(f"stride must lie in [1, {max_stride}] for W={W}, G={G}")
        self.threshold = float(threshold)
        self.greedy = bool(greedy)
        self.tile_nm = float(tile_um) * 1000.0
        self.batch_tokens = int(batch_tokens)
        self.min_prob = float(min_prob)
        self.prefetch_tiles = int(prefetch_tiles)
        if int(block_rows) < 1:
            raise ValueError(f"block_rows must be >= 1; got {block_rows}")
        self.block_rows = int(block_rows)
        if workers is not None and int(workers) < 1:
            raise ValueError(f"workers must be >= 1 or None; got {workers}")
        self.workers = None if workers is None else int(workers)
        self.close_gaps_frames = int(close_gaps_frames)
        self.close_gaps_cost = float(close_gaps_cost)
        self.close_gaps_crowding = float(close_gaps_crowding)
        self.close_gaps_min_gap = None if close_gaps_min_gap is None else int(close_gaps_min_gap)
        self.device = device
        self.info = info or {}
        if greedy:
            self.name = "transformer (greedy)"

    # ------------------------------------------------------------------ windows and tiles
    def _starts(self, f0: int, f1: int) -> np.ndarray:
        W, s = self.net.window, self.stride
        if f1 - f0 + 1 <= W:
            return np.array([f0], np.int64)
        n = int(np.ceil((f1 - f0 + 1 - W) / s)) + 1
        return f0 + s * np.arange(n, dtype=np.int64)

    def _tiles(self, rows: np.ndarray, xy: np.ndarray):
        """One window's rows as (tile rows, core mask, centre): one tile unless the window is
        wider than ``tile_um``; then square cores of that side with a halo of one cut-off
        (an edge is kept from the tile whose core holds its child)."""
        p = xy[rows]
        lo, hi = p.min(0), p.max(0)
        c = self.tile_nm
        if (hi - lo).max() <= c:
            yield rows, np.ones(rows.size, bool), 0.5 * (lo + hi)
            return
        h = self.net.cutoff_nm
        g = np.floor((p - lo) / c).astype(np.int64)
        for gx in range(int(g[:, 0].max()) + 1):
            for gy in range(int(g[:, 1].max()) + 1):
                core = (g[:, 0] == gx) & (g[:, 1] == gy)
                if not core.any():
                    continue
                x0, y0 = lo[0] + gx * c, lo[1] + gy * c
                inside = ((p[:, 0] >= x0 - h) & (p[:, 0] < x0 + c + h) & (p[:, 1] >= y0 - h)
                          & (p[:, 1] < y0 + c + h))
                sel = np.flatnonzero(inside)
                yield rows[sel], core[sel], np.array([x0 + c / 2, y0 + c / 2])

    def n_workers(self) -> int:
        """Network batches in flight at once (see ``workers``)."""
        if self.workers is not None:
            return self.workers
        if self.device != "cpu":
            return 1
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        return max(1, min(4, cpus // max(1, torch.get_num_threads())))

    @torch.inference_mode()
    def _run_batch(self, tiles, frames, xy, ph, sig, first_last):
        """Run tiles (flattened, neighbour tables shifted) through the net; return
        (i, j, p) of the edges whose child is in the tile's core and whose window sees both
        ends' competitors."""
        W, G = self.net.window, self.net.max_gap
        rows = np.concatenate([t[0] for t in tiles])
        sizes = np.array([t[0].size for t in tiles])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        x = np.concatenate([xy[t[0]] - t[2] for t in tiles]).astype(np.float32)
        w_tok = np.repeat([t[3] for t in tiles], sizes)
        fr = frames[rows] - w_tok
        core = np.concatenate([t[1] for t in tiles])
        nbr = np.concatenate([np.where(t[4] >= 0, t[4] + o, -1) for t, o in zip(tiles, offsets)])
        tt = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        res = self.net(tt(x), tt(fr), tt(ph[rows]), tt(sig[rows]), tt(nbr))
        prob = edge_probabilities(res, rows.size).cpu().numpy()
        li, lj = res["edge_index"].cpu().numpy().T
        ti, tj, w = frames[rows[li]], frames[rows[lj]], w_tok[lj]
        ok = core[lj] & (prob >= self.min_prob)
        ok &= (tj - G >= w) | (w == first_last[0])
        ok &= (ti + G <= w + W - 1) | (w == first_last[1])
        return rows[li[ok]], rows[lj[ok]], prob[ok]

    def _n_valid_windows(self, starts: np.ndarray, ti: np.ndarray, tj: np.ndarray) -> np.ndarray:
        """Number of windows that score edge (t_i, t_j) with full context."""
        W, G = self.net.window, self.net.max_gap
        s0, sl = starts[0], starts[-1]

        def valid(w, strict):
            ok = (w <= ti) & (w + W - 1 >= tj)
            if strict:
                return ok & (tj - G >= w) & (ti + G <= w + W - 1)
            return ok & ((tj - G >= w) | (w == s0)) & ((ti + G <= w + W - 1) | (w == sl))

        lo = np.maximum(tj - W + 1, ti + G - W + 1)
        hi = np.minimum(ti, tj - G)
        count = np.maximum(0, np.searchsorted(starts, hi, "right")
                           - np.searchsorted(starts, lo, "left"))
        count = count + (valid(s0, False) & ~valid(s0, True))
        if sl != s0:
            count = count + (valid(sl, False) & ~valid(sl, True))
        return count

    def edge_probabilities(self, locs: pd.DataFrame, keep_above: float = 0.0) -> pd.DataFrame:
        """Window-averaged probabilities of the candidate edges of a checked, frame-sorted
        table: columns ``i``, ``j`` (row positions, i earlier than j) and ``p``.

        Windows are streamed: an edge is final once the windows have moved past its parent's
        frame, and then only kept when ``p > keep_above`` (the linker passes its threshold), so
        the working memory is bounded by a few windows' edges plus the kept edges (about one
        per localization), not by all scored edges of the movie.
        """
        n = len(locs)
        if n < 2:
            return _edge_frame([], n)
        frames = locs[C.FRAME].to_numpy(np.int64)
        xy = locs[[C.X_NM, C.Y_NM]].to_numpy(np.float64)
        ph = (locs[PHOTONS].to_numpy(np.float32) if PHOTONS in locs.columns
              else np.full(n, DEFAULT_PHOTONS, np.float32))
        sig = (locs[UNCERTAINTY].to_numpy(np.float32) if UNCERTAINTY in locs.columns
               else np.full(n, DEFAULT_UNCERTAINTY_NM, np.float32))
        W = self.net.window
        starts = self._starts(int(frames[0]), int(frames[-1]))
        first_last = (starts[0], starts[-1])
        bounds = np.searchsorted(frames, np.stack([starts, starts + W]), "left")
        nb_kwargs = self.net.neighbour_kwargs()
        open_edges, final, pending, pending_tokens = [], [], [], 0
        in_flight: deque = deque()        # (future, next_start), in submission order
        workers = self.n_workers()
        pool = ThreadPoolExecutor(workers, thread_name_prefix="smlmnet-linker") if (
            workers > 1) else None

        def collect(result, next_start):
            open_edges.append(result)
            done, keep = _average_final(open_edges, frames, n, next_start, starts,
                                        self._n_valid_windows, keep_above)
            final.append(done)
            open_edges[:] = keep

        def flush(batch, next_start):
            args = (batch, frames, xy, ph, sig, first_last)
            if pool is None:
                collect(self._run_batch(*args), next_start)
                return
            in_flight.append((pool.submit(self._run_batch, *args), next_start))
            while len(in_flight) > workers:
                future, start = in_flight.popleft()
                collect(future.result(), start)

        def tiles():          # (rows, core, centre, window start, neighbour table)
            for first, last in _window_blocks(bounds, self.block_rows):
                a0, a1 = bounds[0][first], bounds[1][last - 1]
                table = window_neighbours(frames[a0:a1], xy[a0:a1], **nb_kwargs)
                scratch = np.full(a1 - a0, -1, np.int64)
                for w, a, b in zip(starts[first:last], bounds[0][first:last],
                                   bounds[1][first:last]):
                    if b - a < 2:
                        continue
                    for rows, core, centre in self._tiles(np.arange(a, b), xy):
                        nbr = restrict_neighbours(table, rows - a0, scratch)
                        yield rows, core, centre, int(w), nbr

        try:
            # neighbour tables are built ahead in a thread while the net runs
            for tile in prefetch(tiles(), self.prefetch_tiles):
                if pending and pending_tokens + tile[0].size > self.batch_tokens:
                    flush(pending, tile[3])    # windows from this one on are still to come
                    pending, pending_tokens = [], 0
                pending.append(tile)
                pending_tokens += tile[0].size
            if pending:
                flush(pending, np.iinfo(np.int64).max)
            while in_flight:
                future, start = in_flight.popleft()
                collect(future.result(), start)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return _edge_frame(final, n)

    def tracks_from_edges(self, n: int, edges: pd.DataFrame, threshold: float | None = None,
                          greedy: bool | None = None) -> np.ndarray:
        """Track label of each of ``n`` rows from edge probabilities (global assignment on
        −log p with the no-link cost −log(threshold))."""
        th = self.threshold if threshold is None else float(threshold)
        greedy = self.greedy if greedy is None else greedy
        p = edges["p"].to_numpy(float)
        keep = p > th
        i, j = edges["i"].to_numpy()[keep], edges["j"].to_numpy()[keep]
        cost = -np.log(np.clip(p[keep], 1e-12, 1.0))
        si, sj = solve_sparse_assignment(i, j, cost, n, n, -np.log(th), greedy)
        graph = coo_matrix((np.ones(si.size), (si, sj)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        return labels.astype(np.int64)

    def link(self, locs: pd.DataFrame) -> pd.DataFrame:
        """Copy of ``locs`` (frame-sorted, index reset) with a ``track_id`` column."""
        check_table(locs)
        out = locs.reset_index(drop=True).copy()
        if len(out) == 0:
            out[C.TRACK_ID] = pd.Series(dtype="int64")
            return out
        frames = out[C.FRAME].to_numpy(np.int64)
        if self.adaptive_threshold is None:
            edges = self.edge_probabilities(out, keep_above=self.threshold)
            th = self.threshold
        else:
            a = self.adaptive_threshold
            edges = self.edge_probabilities(out, keep_above=min(a["min"] / 2,
                                                                BIRTH_SHARE_MIN_P))
            self.last_birth_share = birth_share(frames, edges, self.net.max_gap)
            th = adaptive_decoding_threshold(self.last_birth_share, **a)
        self.last_threshold = th
        labels = self.tracks_from_edges(len(out), edges, threshold=th)
        if self.close_gaps_frames > 0:
            labels = self.close_gaps(frames, out[[C.X_NM, C.Y_NM]].to_numpy(float), labels)
        out[C.TRACK_ID] = labels
        return out

    def settings(self) -> dict:
        """Model, window, gap edges, decoding rule and the threshold and birth share of the
        last linked movie, and the gap closing (JSON-ready)."""
        return {"linker": self.name, "model": self.info.get("name"),
                "weights_sha256": self.info.get("weights_sha256"),
                "window_frames": self.net.window, "max_edge_frames": self.net.max_gap,
                "max_gap_frames": self.net.max_gap - 1,     # dark frames an edge bridges
                "cutoff_nm": self.net.cutoff_nm, "greedy": self.greedy,
                "threshold_rule": (dict(self.adaptive_threshold) if self.adaptive_threshold
                                   else {"fixed": self.threshold}),
                "threshold_used": self.last_threshold,
                "birth_share": self.last_birth_share,
                "gap_closing": {"frames": self.close_gaps_frames, "cost": self.close_gaps_cost,
                                "crowding": self.close_gaps_crowding,
                                "min_gap": self.close_gaps_min_gap}}

    def close_gaps(self, frames: np.ndarray, xy: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Join track ends to track starts across longer gaps than the network's (see
        ``close_gaps_frames``); returns new labels (tracks renumbered 0 … n−1)."""
        G = self.net.max_gap
        ids, inv = np.unique(labels, return_inverse=True)
        m = ids.size
        if m < 2:
            return inv.astype(np.int64)
        order = np.lexsort((frames, inv))
        t_o = inv[order]
        same = t_o[1:] == t_o[:-1]
        a, b = order[:-1][same], order[1:][same]
        step = ((xy[b] - xy[a]) ** 2).sum(1) / (frames[b] - frames[a])
        glob = float(np.median(step)) if step.size else 1e4
        n_steps = np.bincount(inv[a], minlength=m).astype(float)
        s2 = (np.bincount(inv[a], weights=step, minlength=m) + 3.0 * glob) / (n_steps + 3.0)
        first_pos = np.r_[0, np.flatnonzero(np.diff(t_o)) + 1]
        last_pos = np.r_[first_pos[1:] - 1, order.size - 1]
        start, end = order[first_pos], order[last_pos]          # per track (ids order)
        span = np.ptp(xy, axis=0)
        rho = m / ((np.ptp(frames) + 1) * max(float(span[0] * span[1]), 1.0))
        c, lam = self.close_gaps_cost, self.close_gaps_crowding
        dt_max = G + self.close_gaps_frames
        radius = np.sqrt(c * dt_max * (s2 + s2.max()) / 2)
        g0 = G if self.close_gaps_min_gap is None else self.close_gaps_min_gap
        A, B = _gap_candidates(frames[end], frames[start], xy[end], xy[start], radius, g0,
                               dt_max)
        if not A.size:
            return inv.astype(np.int64)
        dt = frames[start[B]] - frames[end[A]]
        s2ab = 0.5 * (s2[A] + s2[B])
        d2 = ((xy[start[B]] - xy[end[A]]) ** 2).sum(1)
        cst = d2 / (np.maximum(dt, 1) * s2ab)
        ok = (B != A) & (dt > g0) & (dt <= dt_max) & (cst < c) & (
            rho * np.pi * c * dt * s2ab < lam)
        if not ok.any():
            return inv.astype(np.int64)
        si, sj = solve_sparse_assignment(A[ok], B[ok], cst[ok], m, m, c)
        graph = coo_matrix((np.ones(si.size), (si, sj)), shape=(m, m))
        _, merged = connected_components(graph, directed=False)
        return merged[inv].astype(np.int64)


#: edges at or below this probability are left out of the birth share, so the share of a
#: movie does not depend on which edges a decoding rule keeps (keep at least those above it)
BIRTH_SHARE_MIN_P = 1e-3


def birth_share(frames: np.ndarray, edges: pd.DataFrame, max_gap: int,
                min_p: float = BIRTH_SHARE_MIN_P) -> float:
    """Share of the localizations at least ``max_gap`` frames from both ends of the movie
    whose incoming edge probabilities (``edges``: columns ``i``, ``j``, ``p``; those above
    ``min_p`` counted) sum below 0.5: the network's own count of track starts and false
    positives per localization."""
    frames = np.asarray(frames, np.int64)
    edges = edges[edges["p"] > min_p]
    incoming = np.bincount(edges["j"].to_numpy(np.int64), weights=edges["p"].to_numpy(float),
                           minlength=frames.size)
    inner = (frames >= frames.min() + max_gap) & (frames <= frames.max() - max_gap) if (
        frames.size) else frames.astype(bool)
    if not inner.any():
        inner = np.ones(frames.size, bool)
    return float((incoming[inner] < 0.5).mean()) if frames.size else 0.0


def adaptive_decoding_threshold(birth_share: float, per_birth_share: float, min: float,
                                max: float, power: float = 1.0) -> float:
    """Decoding threshold of a movie from its birth share ``b``:
    ``clip(per_birth_share · b^power, min, max)``."""
    return float(np.clip(per_birth_share * float(birth_share) ** power, min, max))


def _gap_candidates(end_frame, start_frame, end_xy, start_xy, radius, min_gap: int,
                    max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (track A's end → track B's start) with ``min_gap < Δframe ≤ max_gap`` and the
    start within ``radius[A]`` of the end, sorted by (A, B). One KD-tree per start frame,
    queried only by the ends that frame can follow, so the work grows with the pairs that can
    pass, not with every pair within the largest radius."""
    starts_by_frame = pd.Series(np.arange(start_frame.size)).groupby(start_frame).indices
    trees: dict = {}
    A_parts, B_parts = [], []
    for f_end, ends in pd.Series(np.arange(end_frame.size)).groupby(end_frame).indices.items():
        for f in range(int(f_end) + min_gap + 1, int(f_end) + max_gap + 1):
            cand = starts_by_frame.get(f)
            if cand is None:
                continue
            if f not in trees:
                trees[f] = cKDTree(start_xy[cand])
            near = trees[f].query_ball_point(end_xy[ends], radius[ends])
            counts = np.fromiter((len(v) for v in near), np.int64, len(ends))
            if counts.any():
                A_parts.append(np.repeat(ends, counts))
                B_parts.append(cand[np.fromiter((b for v in near for b in v), np.int64,
                                                int(counts.sum()))])
    if not A_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    A, B = np.concatenate(A_parts), np.concatenate(B_parts)
    order = np.lexsort((B, A))
    return A[order], B[order]


def load_linker(folder: Path, info: dict, device: str = "cpu", **kwargs) -> TransformerLinker:
    """Registry loader of kind ``linker``: the network of ``model.yaml`` with its weights and
    tuned threshold (``kwargs`` override :class:`TransformerLinker` arguments)."""
    from smlmnet.models.registry import build_net, load_weights

    net = build_net(info["net"])
    net.load_state_dict(load_weights(Path(folder), info, device))
    thresholds = info.get("thresholds") or {}
    kwargs.setdefault("threshold", float(thresholds.get("threshold", 0.5)))
    kwargs.setdefault("adaptive_threshold", thresholds.get("adaptive"))
    for key, value in (info.get("gap_closing") or {}).items():
        kwargs.setdefault(f"close_gaps_{key}", value)
    return TransformerLinker(net, device=device, info=info, **kwargs)
