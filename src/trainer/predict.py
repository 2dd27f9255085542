"""Entry point: `python predict.py --help` (see trainkit/predict.py)."""

import sys

from trainkit.predict import main

if __name__ == "__main__":
    sys.exit(main())
