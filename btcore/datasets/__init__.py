"""Bundled real sample data.

``sp500_20_stocks_1990_2022.csv.gz``: daily adjusted closes of 20 large US
stocks, 1990-01-02 to 2022-12-28 (8,313 bars, no gaps), taken from the
``sp500_dataset`` shipped inside skfolio (BSD 3-Clause, copyright the skfolio
developers; see ``LICENSE-skfolio.txt`` beside this file).
"""
from __future__ import annotations

import functools
from importlib import resources

import pandas as pd

from btcore.data import MarketData

SP500_FILE = "sp500_20_stocks_1990_2022.csv.gz"


@functools.lru_cache(maxsize=1)
def sp500_sample() -> MarketData:
    """Daily closes of 20 US large caps (AAPL ... XOM), 1990-2022, as MarketData.

    Returns
    -------
    MarketData
        8,313 bars x 20 assets; the default data of every btcore entry point.

    Examples
    --------
    >>> from btcore.datasets import sp500_sample
    >>> sp500_sample().n_assets
    20
    """
    with resources.files(__name__).joinpath(SP500_FILE).open("rb") as handle:
        frame = pd.read_csv(handle, compression="gzip", index_col="Date", parse_dates=True)
    return MarketData.from_pandas(frame)
