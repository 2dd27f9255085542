"""Entry point: `python export_onnx.py --help` (see trainkit/onnx_export.py)."""

from trainkit.exits import leave_now
from trainkit.onnx_export import main

if __name__ == "__main__":
    leave_now(main())  # sys.exit(main()), without the teardown (trainkit/exits.py)
