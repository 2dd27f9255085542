"""Entry point: `python predict.py --help` (see trainkit/predict.py)."""

from trainkit.exits import leave_now
from trainkit.predict import main

if __name__ == "__main__":
    leave_now(main())  # sys.exit(main()), without the teardown (trainkit/exits.py)
