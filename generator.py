#!/usr/bin/env python3
"""Render, lint, run and submit Azure ML v2 jobs for distributed PyTorch training.

    python generator.py --nodes 2 --gpus 4      render the default job into rendered/
    python generator.py lint rendered/           check YAML (ours or hand-written)
    python generator.py --help                   everything else
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from jobgen.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
