"""Pure-Python reference implementation of the backtest semantics.

This module is the slow, readable specification used by the tests to check the
fast Numba kernel. It follows ``docs/semantics.md`` (the shared accounting with
its out-of-money rule, the metrics, and the mean_reversion rule), using plain Python
loops over floats and ``math.fsum`` so that every step can be read and checked
by hand. numpy is used only to read the input arrays and return the z-scores.
"""
import math

import numpy as np

METRIC_KEYS = (
    "total_return", "final_value", "sharpe_ratio", "sortino_ratio",
    "annual_volatility", "max_drawdown", "cagr", "calmar_ratio",
    "num_trades", "num_round_trips", "exposure", "win_rate",
)


def _mean(values):
    return math.fsum(values) / len(values)


def _std_ddof1(values):
    """Two-pass sample standard deviation (ddof=1)."""
    mean = _mean(values)
    return math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (len(values) - 1))


def zscore_reference(close, lookback_period):
    """Rolling z-score of ``close`` against the previous ``lookback_period`` closes.

    Parameters
    ----------
    close : np.ndarray
        1-D float64 closes; may start with NaNs (asset not yet listed).
    lookback_period : int
        Window length L >= 2; the window for bar t is closes t-L .. t-1.

    Returns
    -------
    np.ndarray
        float64 z-scores, 0.0 where fewer than L valid closes precede t or the
        window's std is <= 1e-12 * its mean.
    """
    prices = [float(x) for x in np.asarray(close, dtype=np.float64)]
    length = int(lookback_period)
    z_scores = np.zeros(len(prices), dtype=np.float64)
    valid = [i for i, price in enumerate(prices) if not math.isnan(price)]
    if not valid:
        return z_scores
    first = valid[0]
    for t in range(len(prices)):
        if t - first < length:
            continue
        window = prices[t - length:t]
        mean = math.fsum(window) / length
        variance = math.fsum((x - mean) ** 2 for x in window) / (length - 1)
        std = math.sqrt(variance)
        if std <= 1e-12 * mean:
            continue
        z_scores[t] = (prices[t] - mean) / std
    return z_scores


def sharpe_ratio_ref(returns, periods_per_year):
    """Annualized Sharpe ratio mean/std(ddof=1)*sqrt(ppy); 0.0 if std == 0."""
    returns = [float(r) for r in returns]
    std = _std_ddof1(returns)
    if std == 0:
        return 0.0
    return _mean(returns) / std * math.sqrt(periods_per_year)


def annual_volatility_ref(returns, periods_per_year):
    """Annualized volatility std(ddof=1)*sqrt(ppy) (empyrical)."""
    return _std_ddof1([float(r) for r in returns]) * math.sqrt(periods_per_year)


def sortino_ratio_ref(returns, periods_per_year):
    """Sortino ratio with required return 0 (empyrical).

    Downside risk is sqrt(mean(min(r, 0)**2)) * sqrt(ppy) over all returns;
    if it is 0 the result is +inf for a positive mean, nan for a zero mean.
    """
    returns = [float(r) for r in returns]
    mean = _mean(returns)
    downside = math.sqrt(_mean([min(r, 0.0) ** 2 for r in returns])) * math.sqrt(periods_per_year)
    if downside == 0:
        if mean > 0:
            return math.inf
        if mean < 0:
            return -math.inf
        return math.nan
    return mean * periods_per_year / downside


def max_drawdown_ref(equity, initial_capital):
    """Min over t of E_t / max(initial, E_0..E_t) - 1 (<= 0)."""
    peak = float(initial_capital)
    worst = 0.0
    for value in equity:
        peak = max(peak, float(value))
        worst = min(worst, float(value) / peak - 1.0)
    return worst


def cagr_ref(final_value, initial_capital, n_bars, periods_per_year):
    """Compound annual growth rate (empyrical annual_return); -1 if final == 0, nan if < 0."""
    if final_value == 0:
        return -1.0
    if final_value < 0:
        return math.nan
    years = n_bars / periods_per_year
    return (final_value / initial_capital) ** (1.0 / years) - 1.0


def calmar_ratio_ref(cagr, max_drawdown):
    """cagr / |max_drawdown| (empyrical); nan if no drawdown, inf or nan result."""
    if not max_drawdown < 0 or math.isnan(cagr):
        return math.nan
    ratio = cagr / abs(max_drawdown)
    return math.nan if math.isinf(ratio) else ratio


def return_metrics_ref(equity_curve, returns, initial_capital, periods_per_year):
    """The return-based metrics of an equity curve and its per-bar returns."""
    final_value = equity_curve[-1]
    max_drawdown = max_drawdown_ref(equity_curve, initial_capital)
    cagr = cagr_ref(final_value, initial_capital, len(equity_curve), periods_per_year)
    return {
        "total_return": final_value / initial_capital - 1,
        "final_value": final_value,
        "sharpe_ratio": sharpe_ratio_ref(returns, periods_per_year),
        "sortino_ratio": sortino_ratio_ref(returns, periods_per_year),
        "annual_volatility": annual_volatility_ref(returns, periods_per_year),
        "max_drawdown": max_drawdown,
        "cagr": cagr,
        "calmar_ratio": calmar_ratio_ref(cagr, max_drawdown),
    }


def simulate_reference(close, first_bar, last_bar, rule, *, initial_capital=1_000_000.0,
                       cost_bps=5.0, periods_per_year=252):
    """The shared accounting of ``docs/semantics.md`` for any signal rule.

    Parameters
    ----------
    close : np.ndarray
        1-D float64 closes, finite and > 0 on the traded bars.
    first_bar, last_bar : int
        Inclusive range of traded bars (last_bar - first_bar >= 1).
    rule : callable
        ``rule(t, position) -> target`` in {-1, 0, 1}; called once per traded bar
        until the account runs out of money.
    initial_capital, cost_bps, periods_per_year : float
        Run settings.

    Returns
    -------
    dict
        The metrics in ``METRIC_KEYS``, ``ruined``, and per-bar lists ``equity``,
        ``shares``, ``returns`` plus a ``trades`` list of round-trip dicts.
    """
    prices = [float(x) for x in np.asarray(close, dtype=np.float64)]
    fee = cost_bps / 1e4
    cash = float(initial_capital)
    shares = 0.0
    ruined = False
    previous_equity = float(initial_capital)
    equity_curve, shares_curve, returns, trades = [], [], [], []
    num_trades = 0
    bars_in_market = 0
    cash_before_entry = None

    def trade(delta, price):
        nonlocal cash, shares
        cash -= delta * price + abs(delta) * price * fee
        shares += delta

    for t in range(first_bar, last_bar + 1):
        c = prices[t]
        if ruined:  # out of money: nothing trades again, equity stays 0
            equity_curve.append(0.0)
            shares_curve.append(0.0)
            returns.append(0.0)
            continue
        position = (shares > 0) - (shares < 0)
        target = rule(t, position)
        assert target in (-1, 0, 1), target
        filled = False
        if target != position:
            if shares != 0:  # close first
                trade(-shares, c)
                trades[-1].update(exit_bar=t, exit_price=c, pnl=cash - cash_before_entry)
                filled = True
            if target != 0:
                size = float(math.floor(cash / (c * (1 + fee))))
                if size > 0:
                    cash_before_entry = cash
                    trade(target * size, c)
                    trades.append({"entry_bar": t, "exit_bar": None, "side": target,
                                   "shares": size, "entry_price": c, "exit_price": None,
                                   "pnl": None})
                    filled = True
        equity = cash + shares * c
        if equity <= 0:  # closed out at this close, then nothing is left
            if shares != 0:
                trade(-shares, c)
                trades[-1].update(exit_bar=t, exit_price=c, pnl=cash - cash_before_entry)
                filled = True
            ruined = True
            cash = shares = equity = 0.0
        num_trades += filled
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
        **return_metrics_ref(equity_curve, returns, initial_capital, periods_per_year),
        "num_trades": num_trades,
        "num_round_trips": len(closed),
        "exposure": bars_in_market / n_bars,
        "win_rate": wins / len(closed) if closed else math.nan,
        "ruined": ruined,
        "equity": equity_curve,
        "shares": shares_curve,
        "returns": returns,
        "trades": trades,
    }


def mean_reversion_rule(z, entry_threshold, exit_threshold, stop_loss_z, *, allow_short=True,
                        reenter_after_stop=True):
    """The mean-reversion rule as ``rule(t, position) -> target`` over z-scores ``z``.

    Flat: z < -entry -> long; z > entry -> short (if allowed). Long exits when
    |z| < exit or z < -stop; short when |z| < exit or z > stop (a stop exit). After
    a stop exit with ``reenter_after_stop=False``, no entry until |z| <= entry.
    """
    z_scores = [float(x) for x in np.asarray(z, dtype=np.float64)]
    stopped = False

    def rule(t, position):
        nonlocal stopped
        z_t = z_scores[t]
        if position == 0:
            if stopped:
                if abs(z_t) <= entry_threshold:
                    stopped = False
                return 0
            if z_t < -entry_threshold:
                return 1
            if z_t > entry_threshold and allow_short:
                return -1
            return 0
        is_stop_exit = (z_t < -stop_loss_z) if position > 0 else (z_t > stop_loss_z)
        if is_stop_exit:
            if not reenter_after_stop:
                stopped = True
            return 0
        if abs(z_t) < exit_threshold:
            return 0
        return position

    return rule


def backtest_reference(close, z, first_bar, last_bar, entry_threshold, exit_threshold,
                       stop_loss_z, *, allow_short=True, reenter_after_stop=True,
                       initial_capital=1_000_000.0, cost_bps=5.0, periods_per_year=252):
    """Mean reversion over the shared accounting (see :func:`simulate_reference`)."""
    rule = mean_reversion_rule(z, entry_threshold, exit_threshold, stop_loss_z,
                               allow_short=allow_short, reenter_after_stop=reenter_after_stop)
    return simulate_reference(close, first_bar, last_bar, rule, initial_capital=initial_capital,
                              cost_bps=cost_bps, periods_per_year=periods_per_year)


def spec_rule(spec, close, params, options):
    """Any strategy's rule as ``rule(t, position)``: its indicator and signal
    functions run as plain Python (to check the compiled kernel's accounting)."""
    names = dict(zip(spec.param_names, params))
    names.update(zip(spec.options, options))
    series = []
    for indicator in spec.indicators:
        out = np.full(len(close), np.nan)
        arguments = [kind(names[n]) for n, kind in
                     zip(indicator.names, spec.argument_kinds(indicator))]
        indicator.fn.py_func(np.asarray(close, dtype=np.float64), *arguments, out)
        series.append(out)
    params = np.asarray(params, dtype=np.float64)
    options = np.asarray(options, dtype=np.float64)
    state = 0

    def rule(t, position):
        nonlocal state
        values = np.array([s[t] for s in series])
        target, state = spec.signal_nb.py_func(values, float(close[t]), params, options,
                                               position, state)
        return int(target)

    return rule
