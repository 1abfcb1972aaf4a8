"""``python -m btcore.cli``: the same program as ``btcore`` and ``python -m btcore``."""
import sys

from btcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
