"""Entry point: `python register.py --help` (see trainkit/registry.py)."""

import sys

from trainkit.registry import main

if __name__ == "__main__":
    sys.exit(main())
