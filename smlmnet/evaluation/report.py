"""Benchmark reports: a markdown table, a CSV and the command that produced them."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pandas as pd

from smlmnet.io.atomic import atomic_write_path
from smlmnet.io.provenance import reproduce_command


def machine() -> str:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    return f"{platform.machine()}, {cores} CPU cores, Python {platform.python_version()}"


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


def write_report(out_dir: str | Path, name: str, title: str, table: pd.DataFrame,
                 notes: list[str] = (), extra_tables: dict[str, pd.DataFrame] | None = None
                 ) -> Path:
    """Write ``<name>.md`` and ``<name>.csv`` (atomic, overwriting earlier runs of the same
    benchmark in this run folder) and return the markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}", "", f"Command: `{reproduce_command()}`", "",
             f"Machine: {machine()}.", ""]
    parts += [markdown_table(table), ""]
    for caption, t in (extra_tables or {}).items():
        parts += [f"### {caption}", "", markdown_table(t), ""]
    parts += list(notes)
    md = out_dir / f"{name}.md"
    with atomic_write_path(md, overwrite=True) as tmp:
        tmp.write_text("\n".join(parts) + "\n")
    with atomic_write_path(out_dir / f"{name}.csv", overwrite=True) as tmp:
        table.to_csv(tmp, index=False)
    print("\n".join(parts))
    return md
