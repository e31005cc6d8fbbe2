"""Benchmark reports: a markdown table, a CSV and a JSON record of where they come from (the
command that reproduces them, commit, versions, machine; :mod:`.provenance`) and the resolved
configuration."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from smlmnet.io.atomic import atomic_write_path
from smlmnet.io.provenance import provenance, provenance_markdown

logger = logging.getLogger(__name__)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "–"
        return f"{v:.4g}"
    return str(v)


def markdown_table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _plain(config):
    if config is None:
        return None
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(config, (DictConfig, ListConfig)):
            return OmegaConf.to_container(config, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return config


def write_report(out_dir: str | Path, name: str, title: str, table: pd.DataFrame,
                 notes: list[str] = (), extra_tables: dict[str, pd.DataFrame] | None = None,
                 config=None, argv: list[str] | None = None) -> Path:
    """Write ``<name>.md``, ``<name>.csv`` and ``<name>.json`` (atomic, overwriting earlier
    runs of the same benchmark in this run folder) and return the markdown path.

    The markdown starts with the provenance (command, commit, versions, CPU, cores, torch
    threads); the JSON holds the provenance, the resolved ``config`` and the table.
    ``argv`` is the command line to record (default ``sys.argv``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prov = provenance(argv)
    parts = [f"# {title}", "", *provenance_markdown(prov), markdown_table(table), ""]
    for caption, t in (extra_tables or {}).items():
        parts += [f"### {caption}", "", markdown_table(t), ""]
    parts += list(notes)
    md = out_dir / f"{name}.md"
    with atomic_write_path(md, overwrite=True) as tmp:
        tmp.write_text("\n".join(parts) + "\n")
    with atomic_write_path(out_dir / f"{name}.csv", overwrite=True) as tmp:
        table.to_csv(tmp, index=False)
    record = {"title": title, "provenance": prov, "config": _plain(config),
              "table": json.loads(table.to_json(orient="records", force_ascii=False)),
              "extra_tables": {k: json.loads(t.to_json(orient="records", force_ascii=False))
                               for k, t in (extra_tables or {}).items()}}
    with atomic_write_path(out_dir / f"{name}.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    logger.info("wrote %s (+ .csv, .json)", md)
    return md
