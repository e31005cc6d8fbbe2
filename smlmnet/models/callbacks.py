"""Training callbacks shared by every learned stage."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class DataLedger(L.Callback):
    """Record which training items each process saw: one JSON file per rank,
    ``<dirpath>/rank<r>.json`` with the item seeds of every training batch (items carry a
    ``seed`` tensor, see :class:`~smlmnet.models.datasets.SimulatedMovieDataset`). Proves that
    DDP ranks see disjoint data and the same number of batches.

    Args:
        dirpath: output folder (created).
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.batches: list[list[int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append([int(s) for s in batch["seed"].tolist()])

    def on_train_end(self, trainer, pl_module) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"rank": trainer.global_rank,
                                    "world_size": trainer.world_size,
                                    "batches": self.batches}))
