"""Entry point: `python register.py --help` (see trainkit/registry.py)."""

from trainkit.exits import leave_now
from trainkit.registry import main

if __name__ == "__main__":
    leave_now(main())  # sys.exit(main()), without the teardown (trainkit/exits.py)
