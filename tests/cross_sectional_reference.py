"""Pure-Python reference of the cross-sectional strategy (``docs/cross_sectional.md``).

Slow and readable: plain Python floats, explicit loops over bars and assets,
``sorted()`` with (trailing return, asset index) keys for the ranking, and the
metrics of ``tests/reference.py`` on the full per-bar return list. The tests
check ``btcore.kernels.cross_sectional`` against it.
"""
import math

from execution_reference import execution_metrics_ref
from reference import return_metrics_ref


def _marked(cash, shares, close, t):
    """cash + sum(shares * close_t) over held assets, in asset order."""
    total = cash
    for a, held in enumerate(shares):
        if held != 0.0:
            total += held * float(close[t][a])
    return total


def cross_sectional_reference(close, first_valid, first_bars, last_bar, *, lookback_period,
                              top_k, rebalance_every, gross_leverage, direction="reversal",
                              long_only=False, initial_capital=1_000_000.0, cost_bps=5.0,
                              periods_per_year=252, slippage_bps=0.0, fee_per_trade=0.0,
                              borrow_bps=0.0, risk_free_rate=0.0):
    """One parameter set. ``close`` is (n_bars, n_assets) (NaN before listing),
    ``first_valid`` each asset's listing bar, ``first_bars`` its first traded bar.
    Returns the metrics (plus ``turnover``, ``ruined``), equity and shares per bar.
    Costs beyond ``cost_bps``: each trade fills at close * (1 +- slippage) against
    its side and pays ``fee_per_trade`` once; a short pays |shares| * close *
    borrow_bps / 1e4 / ppy at every close (its trip's P&L too); Sharpe and Sortino
    use r - risk_free_rate / ppy."""
    n_assets = len(first_bars)
    fee = cost_bps / 1e4
    first = min(first_bars)
    n_traded = last_bar - first + 1
    weight = gross_leverage / top_k if long_only else gross_leverage / (2 * top_k)
    needed = top_k if long_only else 2 * top_k
    cash = float(initial_capital)
    shares = [0.0] * n_assets
    trip_cash = [0.0] * n_assets
    equity = float(initial_capital)
    returns, equity_curve, shares_curve = [], [], []
    num_trades = bars_in_market = round_trips = wins = 0
    traded_value = 0.0
    ruined = False
    for t in range(first, last_bar + 1):
        marked = _marked(cash, shares, close, t)
        filled = [False] * n_assets
        if (t - first) % rebalance_every == 0 and marked > 0.0:
            ranked = []
            for a in range(n_assets):
                if t >= first_bars[a] and t - lookback_period >= first_valid[a]:
                    trailing = float(close[t][a]) / float(close[t - lookback_period][a]) - 1.0
                    ranked.append((trailing, a))
            ranked = sorted(ranked)  # worst first; ties by asset index
            targets = [0.0] * n_assets
            if len(ranked) >= needed:
                worst = [a for _, a in ranked[:top_k]]
                best = [a for _, a in ranked[::-1][:top_k]]
                longs = best if direction == "momentum" else worst
                shorts = [] if long_only else (worst if direction == "momentum" else best)
                for a in longs:
                    targets[a] = float(math.trunc(weight * marked / float(close[t][a])))
                for a in shorts:
                    targets[a] = float(math.trunc(-weight * marked / float(close[t][a])))
            for a in range(n_assets):
                old, new = shares[a], targets[a]
                delta = new - old
                if delta == 0.0:
                    continue
                slip = slippage_bps / 1e4
                price = float(close[t][a]) * (1.0 + slip if delta > 0.0 else 1.0 - slip)
                flow = -(delta * price + abs(delta) * price * fee)
                if fee_per_trade > 0.0:
                    flow -= fee_per_trade
                cash += flow
                traded_value += abs(delta) * price
                if old != 0.0 and (new == 0.0 or (new > 0.0) != (old > 0.0)):
                    pnl = trip_cash[a] + old * price - abs(old) * price * fee
                    if fee_per_trade > 0.0:
                        pnl -= fee_per_trade
                    round_trips += 1
                    wins += pnl > 0.0
                    trip_cash[a] = -(new * price + abs(new) * price * fee)
                else:
                    trip_cash[a] += flow
                shares[a] = new
                filled[a] = True
            marked = _marked(cash, shares, close, t)
        if borrow_bps > 0.0:
            for a in range(n_assets):
                if shares[a] < 0.0:
                    charge = -shares[a] * float(close[t][a]) * (borrow_bps / 1e4) / \
                        periods_per_year
                    cash -= charge
                    marked -= charge
                    trip_cash[a] -= charge
        if marked <= 0.0:  # out of money: close everything, 0 to the end
            for a in range(n_assets):
                if shares[a] != 0.0:
                    traded_value += abs(shares[a]) * float(close[t][a])
                    round_trips += 1
                    filled[a] = True
                    shares[a] = 0.0
            num_trades += sum(filled)
            ruined = True
            returns.append(-1.0)
            equity = 0.0
            remaining = last_bar - t + 1
            equity_curve += [0.0] * remaining
            shares_curve += [[0.0] * n_assets for _ in range(remaining)]
            returns += [0.0] * (remaining - 1)
            break
        num_trades += sum(filled)
        returns.append(marked / equity - 1.0)
        equity = marked
        if any(s != 0.0 for s in shares):
            bars_in_market += 1
        equity_curve.append(equity)
        shares_curve.append(list(shares))
    years = n_traded / periods_per_year
    mean_equity = sum(equity_curve) / n_traded
    assert len(equity_curve) == n_traded and equity_curve[-1] == equity
    metrics = return_metrics_ref(equity_curve, returns, initial_capital, periods_per_year)
    if risk_free_rate:
        metrics.update(execution_metrics_ref(equity_curve, returns, initial_capital,
                                             periods_per_year, risk_free_rate))
    return {
        **metrics,
        "num_trades": num_trades, "num_round_trips": round_trips,
        "exposure": bars_in_market / n_traded,
        "win_rate": wins / round_trips if round_trips else math.nan,
        "turnover": traded_value / mean_equity / years if mean_equity > 0 else math.nan,
        "ruined": ruined, "equity": equity_curve, "shares": shares_curve,
    }
