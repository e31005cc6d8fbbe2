"""Peak memory and speed of the streaming simulation against the movie length.

Each case runs ``simulate_to_folder`` (what ``smlmnet simulate`` uses) on the
``sptpalm_membrane`` preset (128 × 128 px, EMCCD, blinking, motion blur) in a fresh
subprocess, writing under a temporary folder that is deleted afterwards, and reports the peak
resident memory of that process (``ru_maxrss``) and the frames simulated and written per second.
Acceptance: the peak of the longest movie is within 2× that of 10³ frames.

    python benchmarks/bench_sim_memory.py                      # 1e3 and 1e5 frames
    python benchmarks/bench_sim_memory.py --frames 1000 10000  # other lengths
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, resource, shutil, sys, tempfile, time
    from smlmnet.simulate import load_config, simulate_to_folder
    n, chunk, tmp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    cfg = load_config("sptpalm_membrane", [f"n_frames={n}"])
    d = tempfile.mkdtemp(dir=tmp, prefix="bench_sim_memory_")
    try:
        t0 = time.perf_counter()
        ds = simulate_to_folder(cfg, d + "/ds", chunk_frames=None if chunk == "auto"
                                else int(chunk))
        elapsed = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (ds.folder).iterdir())
    finally:
        shutil.rmtree(d, ignore_errors=True)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"n_frames": n, "seconds": elapsed, "frames_per_s": n / elapsed,
                      "cpu_seconds": ru.ru_utime + ru.ru_stime,
                      "peak_rss_mb": ru.ru_maxrss / 1024,
                      "dataset_mb": size / 2**20,
                      "n_tracks_visible": ds.metadata["n_tracks_visible"]}))
""")


def run_case(n_frames: int, chunk: str, tmp: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n_frames), chunk, tmp],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def environment() -> dict:
    import numpy
    import pandas
    import scipy
    import tifffile

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "unknown"
    return {"python": platform.python_version(), "numpy": numpy.__version__,
            "scipy": scipy.__version__, "pandas": pandas.__version__,
            "tifffile": tifffile.__version__, "cpu": cpu, "threads": os.cpu_count(),
            "commit": commit}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--chunk-frames", default="auto")
    parser.add_argument("--tmp", default=tempfile.gettempdir(),
                        help="where the datasets are written (and deleted)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    for n in args.frames:
        row = run_case(n, args.chunk_frames, args.tmp)
        rows.append(row)
        print(f"{n:>7d} frames: peak RSS {row['peak_rss_mb']:7.1f} MB, "
              f"{row['frames_per_s']:6.1f} frames/s ({row['seconds']:.1f} s wall, "
              f"{row['cpu_seconds']:.1f} s CPU), dataset "
              f"{row['dataset_mb']:.0f} MB", flush=True)
    ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(f"peak RSS ratio {args.frames[-1]} / {args.frames[0]} frames: {ratio:.3f} "
          f"({'PASS' if ratio <= 2 else 'FAIL'}: acceptance <= 2)")
    env = environment()
    print(json.dumps(env))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "ratio": ratio, "env": env},
                                              indent=2))
    return 0 if ratio <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
