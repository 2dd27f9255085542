"""Entry point: `python export_onnx.py --help` (see trainkit/onnx_export.py)."""

import sys

from trainkit.onnx_export import main

if __name__ == "__main__":
    sys.exit(main())
