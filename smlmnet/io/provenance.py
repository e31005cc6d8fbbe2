"""Where an output comes from: the command that reproduces it, the commit, package versions
and the machine. Every benchmark runner (``evaluate.py`` through
:mod:`smlmnet.evaluation.report`), every ``benchmarks/*.py`` script, every model folder and
every ``analyze`` summary records these with the functions of this module, and only these."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

#: packages whose versions every result records (when installed)
CORE_PACKAGES = ("smlmnet", "numpy", "scipy", "pandas", "torch", "lightning", "hydra-core")
#: peers that benchmarks may run side by side; recorded when installed
PEER_PACKAGES = ("trackpy", "laptrack", "picassosr", "andi-datasets", "deeptrack")

_REPO = Path(__file__).resolve().parents[2]  # smlmnet/io/provenance.py → the checkout


def reproduce_command(argv: list[str] | None = None) -> str:
    """The shell command that reproduces this run: ``python <script> <args>``, the script
    relative to the repository root when it lies inside it (``evaluate.py``,
    ``benchmarks/bench_render_vs_andi.py``), arguments quoted for the shell."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]) if argv else Path("python")
    if script.name == "smlmnet":  # the console script
        return " ".join(shlex.quote(a) for a in ["smlmnet", *argv[1:]])
    try:
        script_txt = str(script.resolve().relative_to(_REPO))
    except ValueError:
        script_txt = str(script)
    return "python " + " ".join(shlex.quote(a) for a in [script_txt, *argv[1:]])


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=_REPO, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str:
    """``git rev-parse HEAD`` of the checkout smlmnet runs from, with ``+dirty`` when tracked
    files outside ``benchmarks/results/`` have uncommitted changes; ``unknown`` outside a git
    checkout. Stored results are outputs, not inputs: a benchmark that writes into its tracked
    results folder (Hydra's ``.hydra/`` files are written first) must not mark itself dirty."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 ":(exclude)benchmarks/results")
    return commit + ("+dirty" if dirty else "")


def package_versions(packages=CORE_PACKAGES + PEER_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (distribution names); those not installed are left
    out."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "smlmnet":
                from smlmnet import __version__

                out[name] = __version__
    return out


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def torch_threads() -> int | None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return int(torch.get_num_threads())


def provenance(argv: list[str] | None = None) -> dict:
    """Everything a result records about where it comes from."""
    return {"command": reproduce_command(argv), "commit": git_commit(),
            "versions": package_versions(), "cpu": cpu_model(), "cpu_cores": cpu_cores(),
            "torch_threads": torch_threads(), "platform": platform.platform()}


def provenance_markdown(prov: dict) -> list[str]:
    """Markdown lines (command, commit, versions, machine) for the top of a result note."""
    versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
    return [f"Command: `{prov['command']}`", "",
            f"Commit: `{prov['commit']}`. Versions: {versions}.", "",
            f"Machine: {prov['cpu']}, {prov['cpu_cores']} CPU cores, torch threads "
            f"{prov['torch_threads']}, {prov['platform']}.", ""]
