"""Peak memory and speed of the transformer linker against the number of localizations.

Each case links a synthetic sptPALM-like table (constant density: 100 localizations per frame
in a 30 µm field, Brownian tracks of 50 frames with 10 % missed detections, so 10⁶
localizations are 10⁴ frames) in a fresh subprocess and reports, for the transformer and the
LAP on the same table, the peak resident memory of that process (``ru_maxrss``), the memory
that linking added on top of the loaded table (peak minus the resident memory just before
linking), bytes per localization, and localizations per second. The transformer streams its
windows and keeps only the edges above its threshold, so the added memory must grow linearly
with the table (kept edges, assignment, output columns: measured 200–300 bytes per
localization between 10⁵ and 10⁶), not with the scored edges (tens of edges per token).

    python benchmarks/bench_linker_memory.py                        # 1e5, 3e5 and 1e6
    python benchmarks/bench_linker_memory.py --n 100000 --linkers transformer
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np, torch
    torch.set_num_threads(1)
    from smlmnet.evaluation.linking import synthetic_localizations
    from smlmnet.link import LAPLinker
    from smlmnet.models import registry
    n, which = int(sys.argv[1]), sys.argv[2]
    per_frame = 100
    locs = synthetic_localizations(np.random.default_rng(0), n, max(1, n // per_frame), 50,
                                   2000.0, 30000.0, 20.0, 0.9)
    locs = locs.drop(columns=["track_id"]).sort_values("frame", kind="stable")
    locs = locs.reset_index(drop=True)
    # LAP with the scaling benchmark's settings (500 nm, gaps of up to 2 frames)
    linker = LAPLinker(500.0, 2) if which == "lap" else registry.load("linker_transformer")
    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    before = rss_mb()
    t0 = time.perf_counter()
    out = linker.link(locs)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"linker": which, "localizations": len(locs), "seconds": elapsed,
                      "localizations_per_s": len(locs) / elapsed, "peak_rss_mb": peak,
                      "rss_before_link_mb": before, "added_mb": peak - before,
                      "added_bytes_per_localization": (peak - before) * 2**20 / len(locs),
                      "tracks": int(out["track_id"].nunique())}))
""")


def run_case(n: int, linker: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), linker], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100000, 300000, 1000000])
    ap.add_argument("--linkers", nargs="+", default=["lap", "transformer"])
    ap.add_argument("-o", "--out", default="benchmarks/results/linker_memory")
    args = ap.parse_args(argv)
    from smlmnet.io.provenance import provenance

    rows = []
    for n in args.n:
        for linker in args.linkers:
            row = run_case(n, linker)
            print(json.dumps(row), flush=True)
            rows.append(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(["benchmarks/bench_linker_memory.py"]
                      + (argv if argv is not None else sys.argv[1:]))
    (out / "linker_memory.json").write_text(json.dumps({"rows": rows, "provenance": prov},
                                                       indent=2))
    cols = ["linker", "localizations", "seconds", "localizations_per_s", "peak_rss_mb",
            "added_mb", "added_bytes_per_localization", "tracks"]
    lines = ["# Transformer linker: memory and speed against the table size", "",
             f"Command: `{prov['command']}`", "",
             f"Commit: `{prov['commit']}`. Machine: {platform.processor() or 'cpu'}, "
             f"{os.cpu_count()} CPU cores, torch threads 1.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])
                                       for c in cols) + " |")
    lines += ["", __doc__.split("\n\n")[1].replace("\n", " ")]
    (out / "linker_memory.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
