"""Frame windows at a movie's ends, built the same way in training and inference.

A multi-frame localizer predicts the middle frame of a window of T (odd) frames. The first and
last frames of a movie have no neighbours on one side; inference fills them with copies of the
end frame (:func:`pad_movie_ends`), and training shows the network such windows
(:func:`movie_end_window`, ``edge_probability`` of the training data), so that it is trained on
the windows it is given at a movie's ends.
"""

from __future__ import annotations

import numpy as np
import torch


def pad_movie_ends(frames: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """``(T, H, W)`` frames with ``before`` copies of the first frame in front and ``after``
    copies of the last frame behind: how inference gives the first and last frames of a movie
    a full window (training sees such windows through ``edge_probability``)."""
    return torch.cat([frames[:1].expand(before, -1, -1), frames,
                      frames[-1:].expand(after, -1, -1)])


def movie_end_window(frames: np.ndarray, at_start: bool) -> np.ndarray:
    """The ``(T, H, W)`` window (T odd) as :func:`pad_movie_ends` builds it when its middle
    frame is the first (``at_start``) or the last frame of a movie: the frames on that side of
    the middle are copies of the middle frame."""
    half = frames.shape[0] // 2
    mid = frames[half:half + 1]
    if at_start:
        return np.concatenate([np.repeat(mid, half, axis=0), frames[half:]])
    return np.concatenate([frames[:half + 1], np.repeat(mid, half, axis=0)])
