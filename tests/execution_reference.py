"""Pure-Python reference of the execution rules (docs/semantics.md sections 9-13).

Rules 1-6 (the shared accounting) are in ``tests/reference.py``; this module adds
the execution settings on top of them: fill timing (close / next open / next
close), price stops on OHLC candles (stop-loss, take-profit, trailing stop, with
gaps and same-bar ordering), sizing (size fraction, fractional shares, volatility
targeting with a leverage cap), slippage, a fixed fee per fill, borrow on shorts
and a risk-free rate in Sharpe and Sortino.

It is written as one plain loop over the bars that follows the event order of
the semantics literally, so that each step can be read and checked by hand. With
every setting at its default it computes exactly the same floats, in the same
order, as :func:`reference.simulate_reference`, so the two agree bit for bit.
"""
import math

import numpy as np

from reference import METRIC_KEYS, _mean, _std_ddof1, return_metrics_ref, sortino_ratio_ref

FILL_MODES = ("close", "next_open", "next_close")
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "out_of_money", "end")
__all__ = ["EXIT_REASONS", "FILL_MODES", "METRIC_KEYS", "excess_returns",
           "execution_metrics_ref", "simulate_execution_reference", "stop_exit_ref",
           "volatility_fraction_ref"]


def excess_returns(returns, risk_free_rate, periods_per_year):
    """e_t = r_t - rf / ppy (with rf = 0 every e_t is r_t, bit for bit)."""
    per_bar = risk_free_rate / periods_per_year
    return [float(r) - per_bar for r in returns]


def execution_metrics_ref(equity_curve, returns, initial_capital, periods_per_year,
                          risk_free_rate=0.0):
    """:func:`reference.return_metrics_ref` with Sharpe and Sortino on excess returns.

    Every other metric (returns, volatility, drawdown, cagr, calmar) uses r_t.
    std(e) is computed as std(r): equal in exact arithmetic (a constant shift),
    and exactly 0 for a flat account, whose Sharpe is then 0 (a two-pass std of
    n copies of -rf/ppy can come out as 1e-20 and the ratio as -1e16).
    """
    metrics = return_metrics_ref(equity_curve, returns, initial_capital, periods_per_year)
    excess = excess_returns(returns, risk_free_rate, periods_per_year)
    std = _std_ddof1([float(r) for r in returns])
    metrics["sharpe_ratio"] = (0.0 if std == 0 else
                               _mean(excess) / std * math.sqrt(periods_per_year))
    metrics["sortino_ratio"] = sortino_ratio_ref(excess, periods_per_year)
    return metrics


def volatility_fraction_ref(closes, decision_bar, lookback, periods_per_year,
                            target_volatility, max_leverage):
    """The size fraction of volatility targeting, or None when there is no entry.

    sigma = std(ddof=1) of the ``lookback`` simple returns C_j / C_{j-1} - 1 for
    j = d - lookback .. d - 1 (d = ``decision_bar``), times sqrt(ppy); the fraction
    is min(max_leverage, target / sigma). None when a close the returns need is
    before bar 0 or NaN (warm-up of a late listing), or when sigma == 0.
    """
    first_close = decision_bar - lookback - 1
    if first_close < 0:
        return None
    window = closes[first_close:decision_bar]  # C_{d-L-1} .. C_{d-1}
    if any(math.isnan(price) for price in window):
        return None
    simple_returns = [window[i] / window[i - 1] - 1 for i in range(1, len(window))]
    sigma = _std_ddof1(simple_returns) * math.sqrt(periods_per_year)
    if sigma == 0:
        return None
    return min(max_leverage, target_volatility / sigma)


def stop_exit_ref(side, bar_open, bar_high, bar_low, stop_loss_level, take_profit_level,
                  trailing_level, gap_only=False):
    """Where and why a position exits on one bar's candle, before slippage.

    Parameters
    ----------
    side : int
        1 for a long, -1 for a short.
    bar_open, bar_high, bar_low : float
        The bar's candle.
    stop_loss_level, take_profit_level, trailing_level : float or None
        The levels (None = that stop is off).
    gap_only : bool
        Look at the open only (step a of fill="next_open").

    Returns
    -------
    tuple or None
        ``(base exit price, exit reason)``, or None when no level is reached.
    """
    def beyond(level, price, against):  # price at or beyond a level
        if level is None:
            return False
        return price <= level if (side > 0) == against else price >= level

    def stop_reached(price):
        """(level, reason) of the stop reached at `price` nearest the open, or None:
        the higher level for a long, the lower for a short; equal -> stop-loss."""
        stop_loss = trailing = None
        if beyond(stop_loss_level, price, True):
            stop_loss = (stop_loss_level, "stop_loss")
        if beyond(trailing_level, price, True):
            trailing = (trailing_level, "trailing_stop")
        if stop_loss and trailing:
            trailing_nearer = (trailing_level > stop_loss_level if side > 0
                               else trailing_level < stop_loss_level)
            return trailing if trailing_nearer else stop_loss
        return stop_loss or trailing

    # 1. gap: the open is already at or beyond a level -> exit at the open
    gap_stop = stop_reached(bar_open)
    if gap_stop is not None:
        return bar_open, gap_stop[1]
    if beyond(take_profit_level, bar_open, False):
        return bar_open, "take_profit"
    if gap_only:
        return None
    # 2. intrabar: the stop side first (the worse path is assumed), at the level
    intrabar_stop = stop_reached(bar_low if side > 0 else bar_high)
    if intrabar_stop is not None:
        return intrabar_stop
    if beyond(take_profit_level, bar_high if side > 0 else bar_low, False):
        return take_profit_level, "take_profit"
    return None


def _as_floats(values, fallback):
    if values is None:
        return fallback
    return [float(x) for x in np.asarray(values, dtype=np.float64)]


def simulate_execution_reference(open_, high, low, close, first_bar, last_bar, rule, *,
                                 initial_capital=1_000_000.0, cost_bps=5.0,
                                 periods_per_year=252, fill="close", stop_loss=math.nan,
                                 take_profit=math.nan, trailing_stop=math.nan,
                                 size_fraction=1.0, fractional_shares=False,
                                 target_volatility=math.nan, volatility_lookback=20,
                                 max_leverage=1.0, slippage_bps=0.0, fee_per_trade=0.0,
                                 borrow_bps=0.0, risk_free_rate=0.0):
    """The accounting of rules 1-6 with the execution settings of rules 7-10.

    Parameters
    ----------
    open_, high, low : np.ndarray or None
        1-D float64 candles; None means close-only data (open = high = low = close,
        so the stops act on closes).
    close : np.ndarray
        1-D float64 closes, finite and > 0 on the traded bars (NaN allowed before).
    first_bar, last_bar : int
        Inclusive range of traded bars.
    rule : callable
        ``rule(t, position) -> target`` in {-1, 0, 1}, called once per traded bar
        (stop bars included, where the target is ignored) until out of money, with
        the position after the bar's fills so far.
    initial_capital, cost_bps, periods_per_year, fill, stop_loss, take_profit, \
trailing_stop, size_fraction, fractional_shares, target_volatility, \
volatility_lookback, max_leverage, slippage_bps, fee_per_trade, borrow_bps, \
risk_free_rate
        The run settings of docs/semantics.md (NaN = that stop / targeting is off).

    Returns
    -------
    dict
        The metrics in ``METRIC_KEYS``, ``ruined``, ``num_round_trips``, per-bar
        lists ``equity``, ``shares``, ``returns``, and ``trades``: one dict per
        round trip with entry_bar, exit_bar (None while open at the end), side,
        shares, entry_price, exit_price (slipped), exit_reason, fees, borrow, pnl
        (exit_price and pnl None while open).
    """
    if fill not in FILL_MODES:
        raise ValueError(f"fill must be one of {FILL_MODES}, got {fill!r}")
    closes = _as_floats(close, None)
    opens = _as_floats(open_, closes)
    highs = _as_floats(high, closes)
    lows = _as_floats(low, closes)
    fee = cost_bps / 1e4
    slip = slippage_bps / 1e4
    borrow_rate = borrow_bps / 1e4
    fixed_fee = float(fee_per_trade)

    cash = float(initial_capital)
    shares = 0.0
    trip = None               # the open round trip's dict (also in `trades`)
    cash_before_entry = None  # cash just before the open trip's entry leg
    extreme = None            # peak (long) / trough (short) for the trailing stop
    stops_on_entry_bar = False  # True when the open trip filled at its entry bar's open
    pending = None            # (target, decision bar) of a next_* order
    ruined = False
    previous_equity = float(initial_capital)
    equity_curve, shares_curve, returns, trades = [], [], [], []
    num_trades = 0
    bars_in_market = 0
    filled_this_bar = False

    def position():
        return (shares > 0) - (shares < 0)

    def slipped(delta, base_price):
        return base_price * (1 + slip) if delta > 0 else base_price * (1 - slip)

    def execute(delta, base_price):
        """One fill of `delta` shares: cash, shares; returns (fill price, costs)."""
        nonlocal cash, shares, filled_this_bar
        price = slipped(delta, base_price)
        costs = abs(delta) * price * fee
        cash -= delta * price + abs(delta) * price * fee
        if fixed_fee > 0:
            cash -= fixed_fee
            costs += fixed_fee
        shares += delta
        filled_this_bar = True
        return price, costs

    def exit_position(t, base_price, reason):
        nonlocal trip
        price, costs = execute(-shares, base_price)
        trip.update(exit_bar=t, exit_price=price, exit_reason=reason,
                    fees=trip["fees"] + costs, pnl=cash - cash_before_entry)
        trip = None

    def enter_position(t, side, base_price, decision_bar, at_open):
        nonlocal trip, cash_before_entry, extreme, stops_on_entry_bar
        price = slipped(side, base_price)
        fraction = size_fraction
        if not math.isnan(target_volatility):
            fraction = volatility_fraction_ref(closes, decision_bar, volatility_lookback,
                                               periods_per_year, target_volatility,
                                               max_leverage)
            if fraction is None:
                return
        size = fraction * cash / (price * (1 + fee))
        if not fractional_shares:
            size = float(math.floor(size))
        if size <= 0:
            return
        cash_before_entry = cash
        price, costs = execute(side * size, base_price)
        trip = {"entry_bar": t, "exit_bar": None, "side": side, "shares": size,
                "entry_price": price, "exit_price": None, "exit_reason": "end",
                "fees": costs, "borrow": 0.0, "pnl": None}
        trades.append(trip)
        extreme = price
        stops_on_entry_bar = at_open

    def trade_to(t, target, base_price, decision_bar, at_open=False):
        """Exit leg first, then the entry leg sized from the cash left."""
        if shares != 0:
            exit_position(t, base_price, "signal")
        if target != 0:
            enter_position(t, target, base_price, decision_bar, at_open)

    def check_stops(t, gap_only=False):
        """Exit the open trip if its candle reaches a level; True when it exits."""
        if trip is None or not (trip["entry_bar"] < t or stops_on_entry_bar):
            return False
        side, entry = trip["side"], trip["entry_price"]
        stop_loss_level = take_profit_level = trailing_level = None
        if side > 0:
            if not math.isnan(stop_loss):
                stop_loss_level = entry * (1 - stop_loss)
            if not math.isnan(take_profit):
                take_profit_level = entry * (1 + take_profit)
            if not math.isnan(trailing_stop):
                trailing_level = extreme * (1 - trailing_stop)
        else:
            if not math.isnan(stop_loss):
                stop_loss_level = entry * (1 + stop_loss)
            if not math.isnan(take_profit):
                take_profit_level = entry * (1 - take_profit)
            if not math.isnan(trailing_stop):
                trailing_level = extreme * (1 + trailing_stop)
        hit = stop_exit_ref(side, opens[t], highs[t], lows[t], stop_loss_level,
                            take_profit_level, trailing_level, gap_only=gap_only)
        if hit is None:
            return False
        exit_position(t, hit[0], hit[1])
        return True

    def call_rule(t):
        target = rule(t, position())
        assert target in (-1, 0, 1), target
        return int(target)

    for t in range(first_bar, last_bar + 1):
        if ruined:  # out of money: nothing trades again, equity stays 0
            equity_curve.append(0.0)
            shares_curve.append(0.0)
            returns.append(0.0)
            continue
        c = closes[t]
        filled_this_bar = False
        if fill == "close":
            stopped = check_stops(t)                        # a. full stop check
            target = call_rule(t)                           # b. the rule at C_t
            if not stopped and target != position():
                trade_to(t, target, c, decision_bar=t)
        elif fill == "next_open":
            stopped = check_stops(t, gap_only=True)         # a. gap at the open
            if not stopped and pending is not None:         # b. the order at O_t
                trade_to(t, pending[0], opens[t], decision_bar=pending[1], at_open=True)
            pending = None
            if not stopped:                                 # c. full check of what is held
                stopped = check_stops(t)
            target = call_rule(t)                           # d. the rule at C_t
            if not stopped and target != position():
                pending = (target, t)
        else:  # next_close
            stopped = check_stops(t)                        # a. full stop check
            if not stopped and pending is not None:         # b. the order at C_t
                trade_to(t, pending[0], c, decision_bar=pending[1])
            pending = None
            target = call_rule(t)                           # c. the rule at C_t
            if not stopped and target != position():
                pending = (target, t)
        # e. borrow on a short held after the bar's fills
        if shares < 0 and borrow_rate > 0:
            charge = abs(shares) * c * borrow_rate / periods_per_year
            cash -= charge
            trip["borrow"] += charge
        # f. mark to market; out of money closes the account at C_t
        equity = cash + shares * c
        if equity <= 0:
            if shares != 0:
                exit_position(t, c, "out_of_money")
            ruined = True
            cash = shares = equity = 0.0
            pending = None
        # the trailing peak / trough: highs / lows of bars after the entry bar
        if trip is not None and trip["entry_bar"] < t:
            if trip["side"] > 0:
                extreme = max(extreme, highs[t])
            else:
                extreme = min(extreme, lows[t])
        num_trades += filled_this_bar
        returns.append(equity / previous_equity - 1)
        previous_equity = equity
        equity_curve.append(equity)
        shares_curve.append(shares)
        if shares != 0:
            bars_in_market += 1

    n_bars = last_bar - first_bar + 1
    closed = [trade for trade in trades if trade["exit_bar"] is not None]
    wins = sum(1 for trade in closed if trade["pnl"] > 0)
    return {
        **execution_metrics_ref(equity_curve, returns, initial_capital, periods_per_year,
                                risk_free_rate),
        "num_trades": num_trades,
        "exposure": bars_in_market / n_bars,
        "win_rate": wins / len(closed) if closed else math.nan,
        "ruined": ruined,
        "num_round_trips": len(closed),
        "equity": equity_curve,
        "shares": shares_curve,
        "returns": returns,
        "trades": trades,
    }
