"""The trajectory network behind a table interface: tracks in physical units in, one row of
α, K and motion-model probabilities per track out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from smlmnet.data import contracts as C
from smlmnet.diffusion.trajnet.net import TrajectoryNet
from smlmnet.simulate.andi1 import MODELS
from smlmnet.simulate.andi2 import STATES

K_COLUMN = "K [um^2/s^alpha]"
MODEL_COLUMN = "model"


def load_trajectory_estimator(folder, info: dict, device: str = "cpu",
                              **kwargs) -> TrajectoryEstimator:
    """Registry loader of kind ``trajectory``: a model folder → :class:`TrajectoryEstimator`."""
    from smlmnet.models.registry import build_net, load_weights

    net = build_net(info["net"])
    net.load_state_dict(load_weights(Path(folder), info, device))
    return TrajectoryEstimator(net, classes=info.get("model_classes", list(MODELS)),
                               info=info, device=device, **kwargs)


def pick_changepoints(prob: np.ndarray, threshold: float, min_distance: int = 10) -> list[int]:
    """Changepoints from a per-step probability ``(L,)`` (NaN/padded steps ignored): steps
    whose probability exceeds ``threshold`` and is the largest within ±``min_distance``
    steps (ties: the first). Returns step indices, ascending (a changepoint at step c means
    the motion changes at frame c: displacement c is the first of the new segment)."""
    p = np.nan_to_num(np.asarray(prob, float), nan=0.0)
    if p.size == 0:
        return []
    from scipy.ndimage import maximum_filter1d

    peak = (p >= threshold) & (p == maximum_filter1d(p, 2 * min_distance + 1, mode="constant"))
    out, last = [], -10 ** 9
    for i in np.flatnonzero(peak):
        if i - last > min_distance:
            out.append(int(i))
            last = i
    return out


def segment_state(p_mean: np.ndarray, state_thresholds: dict | None = None) -> int:
    """State index of a segment from its mean step probabilities ``(n_states,)``.

    Without ``state_thresholds``: the most probable state. With ``{"immobile": t_i,
    "confined": t_c}``: immobile if p_immobile ≥ t_i, else confined if p_confined ≥ t_c, else
    the more probable of free and directed. The thresholds are tuned for the AnDi 2 state F1 on
    labelled tuning tracks (:func:`smlmnet.evaluation.andi2.tune_learned_thresholds`): the
    network's confined probability is low even on confined steps (the class is rare and hard),
    so the argmax rarely or never calls it."""
    if state_thresholds is None:
        return int(np.argmax(p_mean))
    if p_mean[STATES.index("immobile")] >= state_thresholds["immobile"]:
        return STATES.index("immobile")
    if p_mean[STATES.index("confined")] >= state_thresholds["confined"]:
        return STATES.index("confined")
    free, directed = STATES.index("free"), STATES.index("directed")
    return directed if len(p_mean) > directed and p_mean[directed] > p_mean[free] else free


def segments_from_steps(step_alpha: np.ndarray, step_log_k: np.ndarray, cps: list[int],
                        step_state: np.ndarray | None = None,
                        state_thresholds: dict | None = None) -> list[dict]:
    """Per segment between changepoints (``cps``: first steps of new segments), from per-step
    outputs ``(n,)`` (NaN steps ignored): ``start``/``stop`` (steps, stop exclusive),
    ``alpha`` (median of the step α), ``K`` (exp of the median step ln K, input units²/frame^α)
    and, with ``step_state`` ``(n, n_states)`` probabilities, ``state`` (from the mean
    probabilities by :func:`segment_state`; an immobile segment gets α = K = 0, the AnDi 2
    labels)."""
    bounds = [0] + [int(c) for c in cps] + [len(step_alpha)]
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        sa, sk = step_alpha[a:b], step_log_k[a:b]
        ok = np.isfinite(sa)
        seg = {"start": a, "stop": b,
               "alpha": float(np.median(sa[ok])) if ok.any() else np.nan,
               "K": float(np.exp(np.median(sk[ok]))) if ok.any() else np.nan}
        if step_state is not None:
            p = step_state[a:b][ok]
            seg["state"] = segment_state(p.mean(0), state_thresholds) if len(p) else -1
            if seg["state"] == STATES.index("immobile"):
                seg["alpha"], seg["K"] = 0.0, 0.0
        out.append(seg)
    return out


def tracks_to_arrays(tracks: pd.DataFrame, track_col: str = C.TRACK_ID):
    """Per track: (track id, displacements ``(F−1, 2)`` in µm on the frame grid from its first
    to its last frame, step mask ``(F−1,)``). A missing frame masks its two displacements."""
    out = []
    for tid, g in tracks.groupby(track_col, sort=True):
        g = g.sort_values(C.FRAME)
        f = g[C.FRAME].to_numpy().astype(np.int64)
        if len(np.unique(f)) != len(f):
            raise ValueError(f"track {tid} has several points in one frame")
        f = f - f[0]
        pos = np.zeros((f[-1] + 1, 2))
        present = np.zeros(f[-1] + 1, bool)
        pos[f, 0] = g[C.X_NM].to_numpy() / 1000.0
        pos[f, 1] = g[C.Y_NM].to_numpy() / 1000.0
        present[f] = True
        mask = present[1:] & present[:-1]
        disp = np.where(mask[:, None], np.diff(pos, axis=0), 0.0)
        out.append((tid, disp, mask))
    return out


class TrajectoryEstimator:
    """Per-track α, K and AnDi 1 model with a trained :class:`TrajectoryNet`.

    Args:
        net: the network. classes: names of its model logits. info: the model folder's
            ``model.yaml`` (kept for provenance). device: torch device.
        tokens_per_batch: displacements per forward pass (bounds memory; tracks are batched by
            length, padded and masked exactly as in training).
        cp_threshold: changepoint peak threshold (default: ``thresholds.changepoint`` of
            ``info``, else 0.5). state_thresholds: ``{"immobile", "confined"}`` of
            :func:`segment_state` (default: ``thresholds.state`` of ``info``, else argmax).
    """

    def __init__(self, net: TrajectoryNet, classes=MODELS, info: dict | None = None,
                 device: str = "cpu", tokens_per_batch: int = 65536,
                 cp_threshold: float | None = None, state_thresholds: dict | None = None):
        self.net = net.to(device).eval()
        thr = (info or {}).get("thresholds") or {}
        self.cp_threshold = float(cp_threshold if cp_threshold is not None
                                  else thr.get("changepoint", 0.5))
        self.state_thresholds = (state_thresholds if state_thresholds is not None
                                 else thr.get("state"))
        self.classes = list(classes)
        self.info = info or {}
        self.device = device
        self.tokens_per_batch = int(tokens_per_batch)

    @torch.no_grad()
    def predict_arrays(self, disp: list[np.ndarray], masks: list[np.ndarray] | None = None
                       ) -> dict[str, np.ndarray]:
        """Raw outputs for displacement arrays ``(n_i, 2)`` (one frame apart, any unit):
        ``alpha`` ``(N,)``, ``log_k`` ``(N,)`` (ln K in input units²/frame^α),
        ``probs`` ``(N, n_models)``; with per-step outputs also lists (one array per input)
        ``step_alpha``, ``step_log_k`` and ``step_cp`` (changepoint probability), and with a
        state head ``step_state`` (one ``(n_i, n_states)`` probability array per input)."""
        n = len(disp)
        masks = masks if masks is not None else [np.ones(len(d), bool) for d in disp]
        order = np.argsort([len(d) for d in disp], kind="stable")
        alpha, log_k = np.full(n, np.nan), np.full(n, np.nan)
        probs = np.full((n, self.net.n_models), np.nan)
        steps = {k: [None] * n for k in ("step_alpha", "step_log_k", "step_cp", "step_state")}
        start = 0
        while start < n:
            L = max(1, len(disp[order[start]]))
            stop = start + 1
            while stop < n and len(disp[order[stop]]) * (stop - start + 1) <= \
                    self.tokens_per_batch:
                stop += 1
            idx = order[start:stop]
            L = max(max(len(disp[i]) for i in idx), 1)
            x = np.zeros((len(idx), L, 2), np.float32)
            m = np.zeros((len(idx), L), bool)
            for r, i in enumerate(idx):
                x[r, :len(disp[i])] = disp[i]
                m[r, :len(disp[i])] = masks[i]
            out = self.net(torch.from_numpy(x).to(self.device),
                           torch.from_numpy(m).to(self.device))
            ok = m.sum(1) > 0
            a = out["alpha"].cpu().numpy()
            k = (out["log_k_rel"] + out["log_s2"]).cpu().numpy()
            p = torch.softmax(out["model_logits"], 1).cpu().numpy()
            alpha[idx[ok]], log_k[idx[ok]], probs[idx[ok]] = a[ok], k[ok], p[ok]
            if "step_alpha" in out:
                sa = out["step_alpha"].cpu().numpy()
                sk = (out["step_log_k_rel"] + out["log_s2"][:, None]).cpu().numpy()
                sc = torch.sigmoid(out["step_cp_logit"]).cpu().numpy()
                ss = (torch.softmax(out["step_state_logits"], -1).cpu().numpy()
                      if "step_state_logits" in out else None)
                for r, i in enumerate(idx):
                    n_i, valid = len(disp[i]), m[r, :len(disp[i])]
                    for key, v in (("step_alpha", sa), ("step_log_k", sk), ("step_cp", sc)):
                        steps[key][i] = np.where(valid, v[r, :n_i], np.nan)
                    if ss is not None:
                        steps["step_state"][i] = np.where(valid[:, None], ss[r, :n_i], np.nan)
            start = stop
        res = {"alpha": alpha, "log_k": log_k, "probs": probs}
        if self.net.per_step:
            if not getattr(self.net, "n_states", 0):
                steps.pop("step_state")
            res.update(steps)
        return res

    def segments(self, res: dict, i: int) -> tuple[list[int], list[dict]]:
        """Changepoints (peak picking at the model's threshold) and segments
        (:func:`segments_from_steps`) of input ``i`` of a :meth:`predict_arrays` result."""
        cps = pick_changepoints(res["step_cp"][i], self.cp_threshold)
        st = res.get("step_state")
        return cps, segments_from_steps(res["step_alpha"][i], res["step_log_k"][i], cps,
                                        None if st is None else st[i], self.state_thresholds)

    def predict(self, tracks: pd.DataFrame, frame_time_s: float,
                track_col: str = C.TRACK_ID) -> pd.DataFrame:
        """One row per track of ``tracks`` (columns ``track_id``, ``frame``, ``x [nm]``,
        ``y [nm]``; see :mod:`smlmnet.data.contracts`): ``track_id``, ``n_points``,
        ``alpha``, ``K [um^2/s^alpha]`` (MSD = 4Kτ^α, τ in s), ``model`` (most probable AnDi 1
        model) and ``p_<model>`` for each class. ``frame_time_s``: Δt between frames, s.
        A track with fewer than 2 consecutive frames gets NaN."""
        if frame_time_s <= 0:
            raise ValueError(f"frame_time_s must be > 0; got {frame_time_s}")
        arrays = tracks_to_arrays(tracks, track_col)
        res = self.predict_arrays([d for _, d, _ in arrays], [m for _, _, m in arrays])
        a = res["alpha"]
        K = np.exp(res["log_k"] - a * np.log(frame_time_s))   # µm²/frame^α → µm²/s^α
        best = np.nanargmax(np.nan_to_num(res["probs"], nan=-1.0), axis=1) if len(a) else []
        table = pd.DataFrame({
            track_col: [t for t, _, _ in arrays],
            "n_points": tracks.groupby(track_col, sort=True).size().to_numpy(),
            C.ALPHA: a, K_COLUMN: K,
            MODEL_COLUMN: [self.classes[b] if np.isfinite(a[i]) else None
                           for i, b in enumerate(best)]})
        for j, c in enumerate(self.classes):
            table[f"p_{c}"] = res["probs"][:, j]
        if self.net.per_step:
            first = tracks.groupby(track_col, sort=True)[C.FRAME].min().to_numpy()
            segs = [self.segments(res, i) for i in range(len(arrays))]
            join = lambda xs, f: ";".join(f(x) for x in xs)  # noqa: E731
            table["changepoints"] = [join(c, lambda x, f0=f0: str(int(f0 + x)))
                                     for f0, (c, _) in zip(first, segs)]
            table["n_changepoints"] = [len(c) for c, _ in segs]
            table["segment_alpha"] = [join(g, lambda x: f"{x['alpha']:.4g}") for _, g in segs]
            table["segment_K [um^2/s^alpha]"] = [
                join(g, lambda x: f"{x['K'] / frame_time_s ** x['alpha']:.4g}")
                for _, g in segs]
            if "step_state" in res:
                table["segment_state"] = [join(g, lambda x: STATES[x["state"]]
                                               if x["state"] >= 0 else "") for _, g in segs]
                table["state"] = [max(g, key=lambda x: x["stop"] - x["start"])["state"]
                                  for _, g in segs]
                table["state"] = [STATES[v] if v >= 0 else None for v in table["state"]]
        return table

    def predict_steps(self, tracks: pd.DataFrame, frame_time_s: float,
                      track_col: str = C.TRACK_ID) -> pd.DataFrame:
        """Per-step table (networks with per-step outputs): one row per displacement
        (frame → frame + 1) of every track: ``track_id``, ``frame`` (start of the step),
        ``alpha``, ``K [um^2/s^alpha]`` (of the segment holding the step) and
        ``changepoint_probability``, with a state head also ``state`` (most probable) and
        ``p_<state>``; missing steps (gaps) have NaN."""
        if not self.net.per_step:
            raise ValueError("this trajectory model has no per-step outputs")
        arrays = tracks_to_arrays(tracks, track_col)
        res = self.predict_arrays([d for _, d, _ in arrays], [m for _, _, m in arrays])
        first = tracks.groupby(track_col, sort=True)[C.FRAME].min().to_numpy()
        parts = []
        for i, ((tid, d, _), f0, sa, sk, sc) in enumerate(zip(
                arrays, first, res["step_alpha"], res["step_log_k"], res["step_cp"])):
            part = pd.DataFrame({
                track_col: tid, C.FRAME: f0 + np.arange(len(d)), C.ALPHA: sa,
                K_COLUMN: np.exp(sk - sa * np.log(frame_time_s)),
                "changepoint_probability": sc})
            if "step_state" in res:
                p = res["step_state"][i]
                best = np.argmax(np.nan_to_num(p, nan=-1.0), axis=1)
                part["state"] = [STATES[b] if np.isfinite(p[j]).all() else None
                                 for j, b in enumerate(best)]
                for j, name in enumerate(STATES):
                    part[f"p_{name}"] = p[:, j]
            parts.append(part)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
