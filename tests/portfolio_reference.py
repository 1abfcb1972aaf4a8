"""Pure-Python reference of the portfolio accounting (``docs/portfolios.md``).

Slow and readable: plain Python floats, one loop over bars and sleeves, the
metrics of ``tests/reference.py`` on the full per-bar return list. The tests
check ``btcore.kernels.portfolio`` against it.
"""
import math

from reference import return_metrics_ref

INF = math.inf


def _cost(delta, price, fee):
    return abs(delta) * price * fee


def _trade(delta, cash, price, fee):
    return cash - (delta * price + abs(delta) * price * fee)


def _capped(size, price, fee, equity, other_gross, max_gross, max_weight):
    if max_weight < INF:
        size = min(size, math.floor(max_weight * equity / (price * (1.0 + max_weight * fee))))
    if max_gross < INF:
        size = min(size, math.floor((max_gross * equity - other_gross) /
                                    (price * (1.0 + max_gross * fee))))
    if not size > 0:
        return 0.0
    size = float(size)
    while size > 0:
        value = size * price
        after = equity - value * fee
        if value <= max_weight * after and other_gross + value <= max_gross * after:
            break
        size -= 1.0
    return size


def portfolio_reference(close, first_bars, last_bar, rules, *, initial_capital=1_000_000.0,
                        cost_bps=5.0, periods_per_year=252, rebalance_every=INF,
                        max_gross_exposure=INF, max_position_weight=INF,
                        portfolio_stop_drawdown=INF):
    """One account over the sleeves ``rules[a](t, position) -> target``.

    ``close`` is (n_bars, n_assets) (NaN before listing); ``first_bars`` each
    asset's first traded bar. Returns the metrics, the per-bar equity and shares,
    and ``entries``: (bar, asset, |value|, gross after, equity after) of each
    entry, for the cap checks.
    """
    n_assets = len(first_bars)
    fee = cost_bps / 1e4
    first = min(first_bars)
    cash = [initial_capital / n_assets] * n_assets
    shares = [0.0] * n_assets
    position = [0] * n_assets
    entry_cash = [0.0] * n_assets
    capped = max_gross_exposure < INF or max_position_weight < INF
    equity = initial_capital
    peak = initial_capital
    returns, equity_curve, shares_curve, entries = [], [], [], []
    trips = []  # (pnl, is_close_out)
    num_trades = bars_in_market = 0
    traded_value = 0.0
    ruined = halted = False
    for t in range(first, last_bar + 1):
        if ruined or halted:
            returns.append(0.0)
            equity_curve.append(equity)
            shares_curve.append([0.0] * n_assets)
            continue
        listed = [t >= first_bars[a] for a in range(n_assets)]
        price = [float(close[t][a]) if listed[a] else math.nan for a in range(n_assets)]
        rebalance = rebalance_every < INF and t > first and (t - first) % rebalance_every == 0
        running = gross = 0.0
        budget = 0.0
        if rebalance or capped:
            for a in range(n_assets):
                if listed[a]:
                    running += cash[a] + shares[a] * price[a]
                    gross += abs(shares[a] * price[a])
                else:
                    running += cash[a]
            if rebalance:
                if running > 0:
                    budget = running / n_assets
                else:
                    rebalance = False
        filled_any = False
        fills = [False] * n_assets  # sleeves with a fill at this bar
        new_equity = 0.0
        for a in range(n_assets):
            if not listed[a]:
                if rebalance:
                    cash[a] = budget
                new_equity += cash[a]
                continue
            p = price[a]
            filled = False
            if rebalance:
                value = cash[a] + shares[a] * p
                transfer = budget - value
                if shares[a] != 0.0:
                    size = float(math.floor(budget / p))
                    held = abs(shares[a])
                    if capped and size > held:
                        size = max(held, _capped(size, p, fee, running, gross - held * p,
                                                 max_gross_exposure, max_position_weight))
                    resized = position[a] * size
                    delta = resized - shares[a]
                    entry_cash[a] += transfer
                    cash[a] = _trade(delta, cash[a] + transfer, p, fee)
                    if delta != 0:
                        filled = True
                        traded_value += abs(delta) * p
                        if capped:
                            running -= _cost(delta, p, fee)
                            gross += abs(resized) * p - abs(shares[a]) * p
                    shares[a] = float(resized)
                    if resized == 0:
                        trips.append((cash[a] - entry_cash[a], False))
                        position[a] = 0
                else:
                    cash[a] = budget
            target = rules[a](t, position[a])
            if target != position[a]:
                old = shares[a]
                if position[a] != 0:  # exit (the first leg of a reversal)
                    cash[a] = _trade(-old, cash[a], p, fee)
                    trips.append((cash[a] - entry_cash[a], False))
                    shares[a] = 0.0
                    position[a] = 0
                    filled = True
                    if capped:
                        running -= _cost(old, p, fee)
                        gross -= abs(old) * p
                if target != 0:
                    size = float(math.floor(cash[a] / (p * (1.0 + fee))))
                    if capped:
                        size = _capped(size, p, fee, running, gross, max_gross_exposure,
                                       max_position_weight)
                    if size > 0:
                        entry_cash[a] = cash[a]
                        cash[a] = _trade(target * size, cash[a], p, fee)
                        shares[a] = target * size
                        position[a] = target
                        filled = True
                        if capped:
                            running -= size * p * fee
                            gross += size * p
                        entries.append((t, a, size * p, gross, running))
                traded_value += (abs(old) + abs(shares[a])) * p
            if filled:
                filled_any = True
                fills[a] = True
            new_equity += cash[a] + shares[a] * p
        n_open = sum(1 for a in range(n_assets) if position[a] != 0)
        if filled_any or n_open or rebalance:
            previous = equity
            equity = new_equity
            if equity > 0 and portfolio_stop_drawdown < INF and \
                    equity / max(peak, equity) - 1.0 <= -portfolio_stop_drawdown:
                halted = True
                equity = 0.0
                for a in range(n_assets):
                    if shares[a] != 0.0:
                        traded_value += abs(shares[a]) * price[a]
                        cash[a] = _trade(-shares[a], cash[a], price[a], fee)
                        trips.append((cash[a] - entry_cash[a], False))
                        fills[a] = True
                        shares[a] = 0.0
                        position[a] = 0
                    equity += cash[a]
                n_open = 0
            if equity <= 0.0:  # out of money: close everything, account at 0
                ruined = True
                for a in range(n_assets):
                    if listed[a] and shares[a] != 0.0:
                        traded_value += abs(shares[a]) * price[a]
                        trips.append((0.0, True))
                        fills[a] = True
                        shares[a] = 0.0
                        position[a] = 0
                    cash[a] = 0.0
                equity = 0.0
                num_trades += sum(fills)
                returns.append(-1.0)
                equity_curve.append(0.0)
                shares_curve.append([0.0] * n_assets)
                continue
            num_trades += sum(fills)
            returns.append(equity / previous - 1.0)
            peak = max(peak, equity)
            if n_open:
                bars_in_market += 1
        else:
            returns.append(0.0)
        equity_curve.append(equity)
        shares_curve.append(list(shares))
    n_bars = last_bar - first + 1
    assert len(equity_curve) == n_bars
    wins = sum(1 for pnl, close_out in trips if pnl > 0 and not close_out)
    mean_equity = math.fsum(equity_curve) / n_bars
    return {
        **return_metrics_ref(equity_curve, returns, initial_capital, periods_per_year),
        "exposure": bars_in_market / n_bars,
        "win_rate": wins / len(trips) if trips else math.nan,
        "round_trips": len(trips),
        "num_round_trips": len(trips),
        "turnover": (traded_value / mean_equity / (n_bars / periods_per_year)
                     if mean_equity > 0 else math.nan),
        "ruined": ruined,
        "halted": halted,
        "equity": equity_curve,
        "shares": shares_curve,
        "entries": entries,
        "num_trades": num_trades,
    }
