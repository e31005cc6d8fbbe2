"""Ground truth of an externally rendered movie in smlmnet's contract, shared by the
generators (they run in their renderers' own environments: numpy only, no smlmnet).

``truth.csv``: ``frame`` (0-based), ``emitter``, ``x [nm]``, ``y [nm]`` (smlmnet convention:
nm from the image's top-left corner, centre of pixel 0 at 0.5 px) and, when known,
``photons [photon]``; ``render.json``: the renderer's settings and counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_truth(folder: Path, frame, emitter, x_px, y_px, pixel_nm: float, photons=None,
                info: dict | None = None, extra: dict | None = None) -> dict:
    """Write ``truth.csv`` (positions in smlmnet pixels → nm; ``extra``: more columns, name →
    one value per row) and ``render.json``; returns ``info`` with ``true_localizations`` and
    ``distinct_emitters`` added."""
    extra = dict(extra or {})
    cols = "frame,emitter,x [nm],y [nm]" + (",photons [photon]" if photons is not None else "")
    cols += "".join(f",{k}" for k in extra)
    with open(Path(folder) / "truth.csv", "w") as fh:
        fh.write(cols + "\n")
        ph = photons if photons is not None else [None] * len(frame)
        more = list(zip(*extra.values())) if extra else [()] * len(frame)
        for f, e, x, y, n, m in zip(frame, emitter, x_px, y_px, ph, more):
            fh.write(f"{f},{e},{x * pixel_nm:.3f},{y * pixel_nm:.3f}"
                     + (f",{int(n)}" if n is not None else "")
                     + "".join(f",{v:g}" for v in m) + "\n")
    info = dict(info or {})
    info.update({"true_localizations": int(len(frame)),
                 "distinct_emitters": int(len(np.unique(emitter)))})
    (Path(folder) / "render.json").write_text(json.dumps(info, indent=2))
    return info
