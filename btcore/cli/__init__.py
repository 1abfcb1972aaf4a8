"""Command line: sweeps, walk-forward, Monte Carlo, portfolios, estimates, a benchmark.

``btcore sweep`` with no arguments runs the seed article's 135-combination
mean-reversion grid on the bundled 20-stock sample (2,700 backtests) and prints
the best rows. ``btcore walk-forward``, ``btcore monte-carlo``, ``btcore
portfolio`` and ``btcore estimate`` run the other workflows of the Python API on
the same inputs; ``btcore strategies`` lists the registered strategies with their
parameters and options; ``btcore bench`` measures serial and threads on the
sample. ``python -m btcore`` is the same program. See ``docs/cli.md``.

Modules: :mod:`~btcore.cli.parser` (argparse), :mod:`~btcore.cli.inputs` (grid tokens,
``--data``, ``--out``, ``--plot``, ``--option``, ...), :mod:`~btcore.cli.commands`
(one function per command); :func:`main` here.

Errors in the arguments or inputs print one ``btcore: error: ...`` line (any
detail follows on indented lines) and exit with status 2, without a traceback,
before any work starts.
"""
from __future__ import annotations

import os
import sys

from btcore.cli.commands import COMMANDS, list_strategies
from btcore.cli.inputs import (CLUSTER_EXECUTORS, GRID_FORMS, MAX_RANGE_VALUES,
                               PLOT_FORMATS, SEED_GRID, TABLE_FORMATS, USAGE_ERROR, CLIError,
                               print_error)
from btcore.cli.parser import build_parser

__all__ = ["main", "CLIError", "SEED_GRID", "USAGE_ERROR", "GRID_FORMS", "TABLE_FORMATS",
           "PLOT_FORMATS", "MAX_RANGE_VALUES", "CLUSTER_EXECUTORS"]


def _quiet_stdout() -> None:
    """After a closed pipe (``btcore ... | head``): send what is left to /dev/null, so
    the interpreter's final flush prints nothing either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def _run(argv) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else 0
    if args.command == "strategies":
        return list_strategies(args.names)
    return COMMANDS[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status: 0 on success, 2 on a usage or input error."""
    try:
        status = _run(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:  # the reader (head, less) has gone: stop quietly
        _quiet_stdout()
        return 0
    except (CLIError, ValueError, TypeError, ImportError, ConnectionError) as err:
        # ValueError / TypeError: bad inputs, refused before any work by the library;
        # ImportError: a strategy module, or an executor's optional backend, is missing;
        # ConnectionError: a cluster --address that cannot be reached
        print_error(err)
        return USAGE_ERROR
    except KeyboardInterrupt as stop:
        detail = f"; {stop}" if str(stop) else ""
        print(f"btcore: interrupted{detail}", file=sys.stderr)
        return 130
    except RuntimeError as err:  # the executor lost its workers past the retries
        from btcore.executors import BrokenExecutorError
        if not isinstance(err, BrokenExecutorError):
            raise
        print_error(err)
        return 1
