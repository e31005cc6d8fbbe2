"""Where an output came from: the command line that reproduces it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def reproduce_command() -> str:
    """The command that started this process (``python train.py k=v ...`` for scripts,
    ``smlmnet sub ...`` for the console script), shell-quoted."""
    prog = Path(sys.argv[0]).name
    prefix = "" if prog == "smlmnet" else "python "
    return prefix + " ".join(shlex.quote(a) for a in [prog] + sys.argv[1:])
