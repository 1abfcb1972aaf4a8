"""``btcore cpcv``: combinatorial purged cross-validation of a grid
(:func:`btcore.cpcv`), its splits and the summary of its out-of-sample paths."""
from __future__ import annotations

import functools

from btcore.cli.inputs import Inputs


def cpcv_command(args, inputs: Inputs, frame_text):
    """``(run, report)`` of ``btcore cpcv`` for :func:`btcore.cli.commands.run_command`:
    :func:`btcore.cpcv` with the command's flags, and the printout (the splits, the
    paths' summary, the most chosen sets) with tables drawn by ``frame_text``."""
    import btcore

    def report(result, elapsed):
        params = [p.name for p in inputs.spec.params]
        splits = result.splits
        shown = [c for c in ("split", "asset", "train_groups", "test_groups", *params,
                             "is_score", "is_sharpe_ratio", "oos_sharpe_ratio", "oos_rank",
                             "logit") if c in splits.columns]
        settings = result.settings
        print(f"{len(splits)} split rows: {settings['n_groups']} groups, "
              f"{settings['n_test_groups']} tested per split, purge {settings['purge']}, "
              f"embargo {settings['embargo']}; chosen by {settings['objective']} "
              f"({settings['select']}):")
        print(frame_text(splits[shown].set_index("split"), columns=args.columns))
        print("\nout-of-sample paths (Sharpe ratio) and PBO over the splits:")
        print(frame_text(result.summary, columns=args.columns))
        print("\nmost chosen sets:")
        print(frame_text(result.chosen_counts.head(args.top), columns=args.columns))
        stats = result.stats
        print(f"\n{stats['splits']} splits, {stats['paths']} paths, {stats['backtests']:,} "
              f"group backtests in {elapsed:.2f} s total on {stats['executor']} "
              f"x{stats['workers']}")
    return functools.partial(
        btcore.cpcv, inputs.grid, inputs.spec, inputs.data, n_groups=args.n_groups,
        n_test_groups=args.n_test_groups, purge=args.purge, embargo=args.embargo,
        objective=args.objective, select=args.select, assets=inputs.assets), report
