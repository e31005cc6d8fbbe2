"""Transformer that scores links between localizations of windows of frames.

A batch is a flat set of ``T`` tokens (the localizations of several windows, concatenated)
with a neighbour table ``(T, K)`` (:func:`smlmnet.link.transformer.graph.window_neighbours`:
only tokens of the same window and within the physical cut-off are neighbours, so the cost is
linear in ``T``). Each token carries its position relative to its window centre (nm,
Fourier-embedded), its frame offset in the window (learned embedding), log photons and log
localization uncertainty. A pre-norm transformer encoder attends over the neighbour table with
a learned per-head, per-layer bias over (distance bin, frame difference). Association logits
are produced for every *candidate edge* (i → j) with ``0 < t_j − t_i ≤ max_gap`` found in
either token's neighbour table (gap edges: up to ``max_gap − 1`` dark or missed frames are
bridged) by a factorized pair MLP over both tokens and the pair's displacement features.

Normalization (:func:`edge_log_probs`): a *parental* softmax over each child's incoming
candidate edges plus a "no parent" option (logit 0) and the mirrored *child* softmax over each
parent's outgoing edges plus "no child"; an edge's probability is the geometric mean of the two.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

#: upper edges (nm) of the distance bins of the attention bias
DEFAULT_DISTANCE_BINS = (25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 550.0, 700.0, 900.0,
                         1150.0, 1500.0, 2000.0)


def fourier_features(x: torch.Tensor, wavelengths: torch.Tensor) -> torch.Tensor:
    """``(..., D)`` → ``(..., 2·D·K)``: sin and cos of ``2π x / λ_k`` for ``K`` wavelengths."""
    phase = 2 * math.pi * x[..., None] / wavelengths
    return torch.cat([phase.sin(), phase.cos()], dim=-1).flatten(-2)


class NeighbourAttentionLayer(nn.Module):
    """Pre-norm transformer layer; each token attends to its ``K`` neighbours with a learned
    bias per head over (distance bin, frame difference)."""

    def __init__(self, d_model: int, n_heads: int, ff: int, n_bias: int) -> None:
        super().__init__()
        self.h, self.dk = n_heads, d_model // n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Linear(ff, d_model))
        self.bias = nn.Parameter(torch.zeros(n_bias, n_heads))

    #: tokens per attention chunk: the gathered keys/values of a chunk (``chunk × K × 2D``
    #: floats) stay in cache, which is several times faster on a CPU than one big gather
    chunk_tokens = 128

    def forward(self, h: torch.Tensor, nbr: torch.Tensor, bin_index: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        """h ``(T, D)``; nbr ``(T, K)`` (−1 replaced by 0 and masked by ``valid``)."""
        T, D = h.shape
        qkv = self.qkv(self.norm1(h))
        q = qkv[:, :D].reshape(T, self.h, self.dk)
        kv = qkv[:, D:]                                  # (T, 2D): keys and values, one gather
        bias = self.bias[bin_index].masked_fill(~valid[..., None], float("-inf"))  # (T, K, H)
        att = torch.cat([self._attend(q[s], kv, nbr[s], bias[s])
                         for s in (slice(a, a + self.chunk_tokens)
                                   for a in range(0, T, self.chunk_tokens))]) if T else q
        h = h + self.proj(att.reshape(T, D))
        return h + self.ff(self.norm2(h))

    def _attend(self, q, kv, nbr, bias):
        """Attention of a chunk of ``t`` queries ``(t, H, dk)`` over their ``K`` neighbours'
        keys/values (rows of ``kv`` ``(T, 2D)``: keys, then values) with additive bias
        ``(t, K, H)``."""
        t, K = nbr.shape
        g = kv.index_select(0, nbr.reshape(-1)).view(t, K, 2, self.h, self.dk)
        kk, vv = g[:, :, 0].transpose(1, 2), g[:, :, 1].transpose(1, 2)   # (t, H, K, dk)
        mask = bias.permute(0, 2, 1)[:, :, None, :]                 # (t, H, 1, K)
        return F.scaled_dot_product_attention(q[:, :, None], kk, vv, attn_mask=mask)[:, :, 0]


class LinkerNet(nn.Module):
    """Association network (pure tensors in, tensors out).

    Args:
        window: frames per window W (frame offsets lie in ``[0, W)``).
        max_gap: G, largest frame difference of a candidate edge (≥ 1; 3 bridges 2 dark
            frames).
        d_model, n_layers, n_heads, ff: encoder width, depth, heads, feed-forward width.
        pair_hidden: width of the pair MLP.
        cutoff_nm: neighbour and edge cut-off distance (nm).
        k_same, k_near, k_far: neighbours per frame (same frame / within G frames / farther),
            see :func:`~smlmnet.link.transformer.graph.window_neighbours`.
        n_fourier: wavelengths of the positional Fourier features (log-spaced 300 nm–30 µm).
        distance_bins_nm: upper bin edges of the attention bias (the last bin is open).
    """

    def __init__(self, window: int = 8, max_gap: int = 3, d_model: int = 64, n_layers: int = 2,
                 n_heads: int = 4, ff: int = 128, pair_hidden: int = 64,
                 cutoff_nm: float = 1500.0, k_same: int = 3, k_near: int = 4, k_far: int = 1,
                 n_fourier: int = 8, distance_bins_nm: tuple = DEFAULT_DISTANCE_BINS) -> None:
        super().__init__()
        if not 1 <= max_gap < window:
            raise ValueError(f"need 1 <= max_gap < window; got max_gap={max_gap}, "
                             f"window={window}")
        if d_model % n_heads:
            raise ValueError("d_model must be a multiple of n_heads")
        self._config = dict(window=int(window), max_gap=int(max_gap), d_model=int(d_model),
                            n_layers=int(n_layers), n_heads=int(n_heads), ff=int(ff),
                            pair_hidden=int(pair_hidden), cutoff_nm=float(cutoff_nm),
                            k_same=int(k_same), k_near=int(k_near), k_far=int(k_far),
                            n_fourier=int(n_fourier),
                            distance_bins_nm=[float(b) for b in distance_bins_nm])
        self.window, self.max_gap, self.cutoff_nm = int(window), int(max_gap), float(cutoff_nm)
        self.k_same, self.k_near, self.k_far = int(k_same), int(k_near), int(k_far)
        self.register_buffer("wavelengths", torch.logspace(math.log10(300.0),
                                                           math.log10(30000.0), n_fourier),
                             persistent=False)
        self.register_buffer("pair_wavelengths", torch.logspace(math.log10(50.0),
                                                                math.log10(5000.0), 6),
                             persistent=False)
        self.register_buffer("bins", torch.tensor(list(distance_bins_nm), dtype=torch.float32),
                             persistent=False)
        n_bias = (len(distance_bins_nm) + 1) * (2 * window - 1)
        self.embed = nn.Linear(4 * n_fourier + 2, d_model)
        self.frame_embed = nn.Embedding(window, d_model)
        self.layers = nn.ModuleList(NeighbourAttentionLayer(d_model, n_heads, ff, n_bias)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        n_pair = 4 + max_gap + 2 + 12 + 1
        self.pair_src = nn.Linear(d_model, pair_hidden)
        self.pair_dst = nn.Linear(d_model, pair_hidden)
        self.pair_feat = nn.Linear(n_pair, pair_hidden)
        self.pair_out = nn.Sequential(nn.ReLU(), nn.Linear(pair_hidden, pair_hidden), nn.ReLU(),
                                      nn.Linear(pair_hidden, 1))

    #: edges per pair-MLP chunk (the chunk's hidden activations stay in cache)
    chunk_edges = 2048

    def _pair_logits(self, hs, hd, xy, frame, sigma, ls, i, j):
        """Logits ``(e,)`` of edges ``i → j`` from the projected token states ``hs``/``hd``
        ``(T, P)`` and the pair's displacement features."""
        G = self.max_gap
        d = xy[j] - xy[i]
        r = d.norm(dim=-1)
        s2 = sigma[i] ** 2 + sigma[j] ** 2
        feats = torch.cat([
            d / 1000.0, r[:, None] / 1000.0, torch.log1p(r / 100.0)[:, None],
            F.one_hot((frame[j] - frame[i] - 1).clamp(0, G - 1), G).float(),
            ls[i][:, None], ls[j][:, None],
            fourier_features(r[:, None], self.pair_wavelengths),
            torch.log1p(r**2 / s2)[:, None]], dim=-1)
        z = torch.addmm(hs[i] + hd[j], feats, self.pair_feat.weight.t()) + self.pair_feat.bias
        return self.pair_out(z)[:, 0]

    def config(self) -> dict:
        """Constructor arguments (for model folders and checkpoints)."""
        return dict(self._config)

    def neighbour_kwargs(self) -> dict:
        """Arguments of :func:`~smlmnet.link.transformer.graph.window_neighbours`."""
        return dict(window=self.window, max_gap=self.max_gap, cutoff_nm=self.cutoff_nm,
                    k_same=self.k_same, k_near=self.k_near, k_far=self.k_far)

    def forward(self, xy: torch.Tensor, frame: torch.Tensor, photons: torch.Tensor,
                sigma: torch.Tensor, nbr: torch.Tensor) -> dict[str, torch.Tensor]:
        """Score the candidate edges of a flat batch of ``T`` tokens.

        Args:
            xy: ``(T, 2)`` positions in nm relative to the token's window centre.
            frame: ``(T,)`` int frame offsets in ``[0, W)``.
            photons: ``(T,)`` photons per localization (> 0).
            sigma: ``(T,)`` localization uncertainty, nm (> 0).
            nbr: ``(T, K)`` int64 neighbour indices into the batch (−1: none), column 0 the
                token itself.

        Returns:
            ``edge_index`` ``(E, 2)`` (i, j) with ``0 < t_j − t_i ≤ max_gap`` (unique),
            ``edge_logit`` ``(E,)``.
        """
        T = xy.shape[0]
        W, G = self.window, self.max_gap
        frame = frame.clamp(0, W - 1)
        lp = torch.log(photons.clamp_min(1.0) / 1000.0)
        ls = torch.log(sigma.clamp_min(1.0) / 30.0)
        tok = torch.cat([fourier_features(xy, self.wavelengths), lp[:, None], ls[:, None]], -1)
        h = self.embed(tok) + self.frame_embed(frame)
        valid = nbr >= 0
        nb = nbr.clamp_min(0)
        dist = (xy[nb] - xy[:, None]).norm(dim=-1)               # (T, K)
        dt = frame[nb] - frame[:, None]
        bin_index = torch.bucketize(dist, self.bins) * (2 * W - 1) + (dt + W - 1)
        for layer in self.layers:
            h = layer(h, nb, bin_index, valid)
        h = self.norm(h)
        # candidate edges from both ends' tables: forward (i = token) and backward (j = token)
        src = torch.arange(T, device=xy.device)[:, None].expand_as(nb)
        fwd = valid & (dt > 0) & (dt <= G)
        bwd = valid & (dt < 0) & (dt >= -G)
        i = torch.cat([src[fwd], nb[bwd]])
        j = torch.cat([nb[fwd], src[bwd]])
        key = torch.unique(i * T + j)
        i, j = key // max(T, 1), key % max(T, 1)
        hs, hd = self.pair_src(h), self.pair_dst(h)
        logit = torch.cat([self._pair_logits(hs, hd, xy, frame, sigma, ls, i[c], j[c])
                           for c in (slice(a, a + self.chunk_edges)
                                     for a in range(0, i.numel(), self.chunk_edges))]
                          ) if i.numel() else h.new_zeros(0)
        return {"edge_index": torch.stack([i, j], 1), "edge_logit": logit}


def _group_logsumexp(logit: torch.Tensor, group: torch.Tensor, n: int) -> torch.Tensor:
    """``(n,)`` log(1 + Σ_{e in group g} exp(logit_e)) (the 1 is the "none" option)."""
    m = torch.zeros(n, dtype=logit.dtype, device=logit.device)
    m = m.scatter_reduce(0, group, logit.detach(), reduce="amax", include_self=True)
    s = torch.exp(-m)
    s = s.index_add(0, group, torch.exp(logit - m[group]))
    return m + torch.log(s)


def edge_log_probs(out: dict[str, torch.Tensor], n_tokens: int) -> dict[str, torch.Tensor]:
    """Parental and child log-softmaxes of the edge logits.

    Returns:
        ``log_parent`` ``(E,)``: log P(parent of j = i) among j's incoming edges and "no
        parent"; ``log_child`` ``(E,)``: log P(child of i = j) among i's outgoing edges and
        "no child"; ``lse_parent``, ``lse_child`` ``(T,)`` (log of the normalizers; the "none"
        option of token t has log-probability ``−lse[t]``).
    """
    i, j = out["edge_index"].unbind(1)
    lse_p = _group_logsumexp(out["edge_logit"], j, n_tokens)
    lse_c = _group_logsumexp(out["edge_logit"], i, n_tokens)
    return {"log_parent": out["edge_logit"] - lse_p[j], "log_child": out["edge_logit"] - lse_c[i],
            "lse_parent": lse_p, "lse_child": lse_c}


def edge_probabilities(out: dict[str, torch.Tensor], n_tokens: int) -> torch.Tensor:
    """``(E,)`` probability of each candidate edge: the geometric mean of its parental and
    child softmax probabilities."""
    lp = edge_log_probs(out, n_tokens)
    return torch.exp(0.5 * (lp["log_parent"] + lp["log_child"]))
