"""``python -m btcore``: the command line (:mod:`btcore.cli`).

The main guard matters: executors that spawn processes (a local Dask cluster)
re-import ``__main__`` in every worker, which must not run the command again.
"""
import sys

from btcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
