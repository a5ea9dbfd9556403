"""Section 3, the seed's batch design rebuilt as a baseline, beside the online engine.

The seed (``../shared/seed/cryptotech-seed.md``) polls prices into SQLite, recomputes features
over all history with pandas (``price_usd``, ``price_ma_3``, ``price_ma_6``,
``price_pct_change_1h``; label: the price one hour later) and refits one scikit-learn
``RandomForestRegressor`` per coin on all of it every 30 s. Its defaults are not given; we
read them as ``RandomForestRegressor(n_estimators=100, random_state=0, n_jobs=1)``.

Rebuilt here on the same real 5-minute rows the online engine sees (the last 30 days of each
coin; ``--quick``: 2 days), with the same information: the forest only ever trains on rows
whose one-hour-later price was known at the refit time (no look-ahead) and on nothing before
the window. On 5-minute data one "cycle" would be one new row; refitting on every row is
out of reach (thousands of fits per coin), so the forest is refit every ``REFIT_EVERY`` rows
(once per day of data) after a first day of history, and each refit serves the next rows.
That is a deviation from the seed, stated in the output.

Reported: (a) MAE and skill vs persistence of the seed's forecast and of the online engine's
published forecast on exactly the same rows; (b) the compute of one seed cycle (features over
all history + refit + one prediction) as history grows to 1, 7, 30 and 90 days of rows,
beside the online engine's cost per tick, which does not grow with history.

Run alone: ``python benchmarks/bench_seed.py [--quick]``.
"""

from __future__ import annotations

import gc
import sys
import time

import common
import numpy as np
from common import fmt, fmt_stat, num, stat

NAME = "seed"
TITLE = "3. The seed's batch design (RandomForest refit on all history) vs the online engine"
FEATURES = ["price_usd", "price_ma_3", "price_ma_6", "price_pct_change_1h"]
ROWS_PER_DAY = 288  # 5-minute rows
REFIT_EVERY = ROWS_PER_DAY
FIRST_FIT_AFTER = ROWS_PER_DAY  # one day of history before the first fit
SEED_INTERVAL_S = 30.0  # the seed's run_all.py cycle
FOREST = {"n_estimators": 100, "random_state": 0, "n_jobs": 1}


def forest():
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(**FOREST)


def seed_frame(times: np.ndarray, prices: np.ndarray, horizon_s: float):
    """The seed's features and label over all rows given (what its transform.py computes).

    MA3 and MA6 are rolling means over the last 3 and 6 rows; the 1 h % change and the label
    (price one hour later) are looked up by time, so a gap is a missing value, not a shift.
    """
    import pandas as pd

    index = pd.to_datetime(times, unit="s", utc=True)
    price = pd.Series(prices, index=index)
    hour = pd.Timedelta(seconds=horizon_s)
    before = price.reindex(index - hour).to_numpy()
    after = price.reindex(index + hour).to_numpy()
    frame = pd.DataFrame({
        "price_usd": prices,
        "price_ma_3": price.rolling(3).mean().to_numpy(),
        "price_ma_6": price.rolling(6).mean().to_numpy(),
        "price_pct_change_1h": (prices / before - 1.0) * 100.0,
        "label": after,
        "t": times,
    })
    return frame


def walk_forward(times, prices, horizon_s, budget) -> dict:
    """The seed's forecasts for every row after the first day, refit every REFIT_EVERY rows."""
    frame = seed_frame(times, prices, horizon_s)
    ok_x = frame[FEATURES].notna().all(axis=1).to_numpy()
    ok_y = frame["label"].notna().to_numpy()
    n = len(frame)
    predictions = np.full(n, np.nan)
    fit_seconds, refits, truncated = [], 0, False
    for start in range(FIRST_FIT_AFTER, n, REFIT_EVERY):
        if budget.over():
            truncated = True
            break
        t_now = times[start]
        known = ok_x[:start] & ok_y[:start] & (times[:start] + horizon_s <= t_now)
        train = frame.iloc[:start][known]
        if len(train) < 10:
            continue
        model = forest()
        t0 = time.perf_counter()
        model.fit(train[FEATURES], train["label"])
        fit_seconds.append(time.perf_counter() - t0)
        refits += 1
        stop = min(start + REFIT_EVERY, n)
        rows = np.arange(start, stop)[ok_x[start:stop]]
        if len(rows):
            predictions[rows] = model.predict(frame.iloc[rows][FEATURES])
    return {"frame": frame, "pred": predictions, "refits": refits,
            "fit_seconds": fit_seconds, "truncated": truncated}


def accuracy_rows(ctx, days: float, budget) -> tuple[list, dict, bool]:
    settings = common.model_settings("default")
    horizon = settings.horizon.total_seconds()
    rows, data, truncated = [], {}, False
    for coin in ctx.data.coins:
        ticks = ctx.data.window(coin, days)
        times = np.array([t.epoch for t in ticks])
        prices = np.array([t.price for t in ticks])
        common.log(f"seed: walk-forward RandomForest on {coin} ({len(ticks)} rows)")
        wf = walk_forward(times, prices, horizon, budget)
        truncated |= wf["truncated"]
        frame, pred = wf["frame"], wf["pred"]
        common.log(f"seed: online engine (default config) on {coin}")
        online = common.engine_run(ctx, coin, "default", days)
        by_made = {o.prediction.made_at.timestamp(): o for o in online["result"].outcomes}
        seed_err, pers_err, online_err = [], [], []
        for t, p, y, yhat in zip(frame["t"], frame["price_usd"], frame["label"], pred):
            o = by_made.get(float(t))
            if np.isnan(yhat) or np.isnan(y) or o is None:
                continue
            seed_err.append(abs(yhat - y))
            pers_err.append(abs(p - y))
            online_err.append(abs(o.prediction.forecast - o.actual))
        n = len(seed_err)
        mae_s = float(np.mean(seed_err)) if n else None
        mae_p = float(np.mean(pers_err)) if n else None
        mae_o = float(np.mean(online_err)) if n else None
        skill_s, skill_o = _skill(mae_s, mae_p), _skill(mae_o, mae_p)
        data[coin] = {"rows": n, "mae_seed": mae_s, "mae_persistence": mae_p,
                      "mae_online": mae_o, "skill_seed": skill_s,
                      "skill_online": skill_o, "refits": wf["refits"],
                      "fit_seconds": stat(wf["fit_seconds"])}
        rows.append([coin, n, wf["refits"], num(mae_p), num(mae_s), fmt(skill_s, "{:+.3f}"),
                     num(mae_o), fmt(skill_o, "{:+.4f}")])
    return rows, data, truncated


def _skill(mae: float | None, mae_persistence: float | None) -> float | None:
    """1 - MAE / MAE of persistence (None without both)."""
    return 1 - mae / mae_persistence if mae is not None and mae_persistence else None


def cycle_cost(ctx, budget) -> tuple[list, dict, list]:
    """One seed cycle for one coin as history grows: features over all rows, refit, predict."""
    import pandas as pd

    coin = "btc" if "btc" in ctx.data.coins else ctx.data.coins[0]
    ticks = ctx.data.ticks(coin)
    times = np.array([t.epoch for t in ticks])
    prices = np.array([t.price for t in ticks])
    horizon = common.model_settings("default").horizon.total_seconds()
    sizes = ctx.pick(full=(1, 7, 30, 90), quick=(1, 7, 30))
    rows, data, notes = [], {}, []
    for days in sizes:
        n = int(days * ROWS_PER_DAY)
        if n > len(ticks):
            notes.append(f"{days} days skipped: the {coin} series has only "
                         f"{len(ticks) / ROWS_PER_DAY:.0f} days.")
            continue
        feat_s, fit_s, pred_s = [], [], []
        for rep in range(ctx.repeats):
            if budget.over() and rep:
                notes.append(f"{days} days: time budget spent after {rep} repeat(s).")
                break
            common.log(f"seed: cycle cost, {days} days of history, repeat {rep + 1}")
            gc.collect()
            t0 = time.perf_counter()
            frame = seed_frame(times[-n:], prices[-n:], horizon)
            train = frame[frame[FEATURES].notna().all(axis=1) & frame["label"].notna()]
            t1 = time.perf_counter()
            model = forest().fit(train[FEATURES], train["label"])
            t2 = time.perf_counter()
            latest = pd.DataFrame([frame[FEATURES].iloc[-1].to_numpy()], columns=FEATURES)
            model.predict(latest)
            t3 = time.perf_counter()
            feat_s.append(t1 - t0)
            fit_s.append(t2 - t1)
            pred_s.append(t3 - t2)
        total = [a + b + c for a, b, c in zip(feat_s, fit_s, pred_s)]
        data[days] = {"rows": n, "features_s": stat(feat_s), "fit_s": stat(fit_s),
                      "predict_s": stat(pred_s), "cycle_s": stat(total)}
        med = data[days]["cycle_s"]["median"]
        rows.append([f"seed, {days} d", f"{n:,}", fmt_stat(data[days]["features_s"], "{:.3f}"),
                     fmt_stat(data[days]["fit_s"], "{:.2f}"),
                     fmt_stat(stat(p * 1e3 for p in pred_s), "{:.1f}"),
                     fmt_stat(data[days]["cycle_s"], "{:.2f}"),
                     fmt(SEED_INTERVAL_S / med if med else None, "{:.1f}")])
    return rows, data, notes


def online_cost(ctx) -> dict:
    """The online engine's cost per tick, default config: from section 2 if it ran."""
    import bench_engine

    return bench_engine.measure(ctx, ["default"])["default"]


def run(ctx) -> dict:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise RuntimeError("scikit-learn is needed: pip install -e '.[bench]'") from None
    days = ctx.pick(full=30, quick=2)
    budget = common.Budget(ctx.pick(full=1500, quick=40))
    acc_rows, acc_data, truncated = accuracy_rows(ctx, days, budget)
    cost_budget = common.Budget(ctx.pick(full=300, quick=30))
    cost_rows, cost_data, cost_notes = cycle_cost(ctx, cost_budget)
    eng = online_cost(ctx)
    us = eng["engine_us_per_tick"]
    cost_rows.append(["online engine (default), any history", "-", "-", "-", "-",
                      fmt_stat(stat(v / 1e6 for v in us["values"]), "{:.4f}"),
                      fmt(SEED_INTERVAL_S / (us["median"] / 1e6), "{:,.0f}")])
    coin = "btc" if "btc" in ctx.data.coins else ctx.data.coins[0]
    acc_notes = [
        f"Rows: the last {days:g} days of each series minus the first day (the seed's first "
        f"fit needs history); only rows where both forecasts and the realised price 1 h later "
        "exist. Both learn from the window only (no earlier data).",
        f"Seed: RandomForestRegressor({', '.join(f'{k}={v}' for k, v in FOREST.items())}) "
        "(our reading of the seed's unstated defaults) on the price level, refit every "
        f"{REFIT_EVERY} rows (= 1 day of 5-minute data) on all rows whose label was known, "
        "not every cycle as the seed does (a fit per row is thousands of fits per coin); "
        "each refit serves the following day's rows.",
        "Online: the engine's published forecast (default config, selection vs persistence), "
        "learning every tick.",
    ]
    if truncated:
        acc_notes.append("TRUNCATED: the walk-forward hit its time budget; later rows unscored.")
    if ctx.quick:
        acc_notes.append("QUICK MODE: one day of scored rows; the figures say little.")
    cost_notes = [
        f"One seed cycle for one coin ({coin.upper()}, the last N days of its series): pandas "
        "features over all history, fit, one prediction (SQLite read and parquet write not "
        "included). Median (min–max) over the repeats; wall time.",
        f"coins per 30 s = how many coins one core could refit inside the seed's 30 s cycle "
        f"(30 s / cycle). For the online engine: 30 s / cost per tick (section 2: "
        f"{eng['coin'].upper()}, {eng['days']:g} days).",
        *cost_notes,
    ]
    return {
        "title": TITLE,
        "tables": [
            common.table("Accuracy on the same rows (horizon 1 h)",
                         ["coin", "rows", "seed refits", "MAE persistence", "MAE seed RF",
                          "skill seed RF", "MAE online", "skill online"], acc_rows, acc_notes),
            common.table("Compute per cycle as history grows (one coin)",
                         ["design, history", "rows", "features s", "fit s", "predict ms",
                          "cycle s", "coins per 30 s"], cost_rows, cost_notes),
        ],
        "data": {"window_days": days, "accuracy": acc_data, "cycle_cost": cost_data,
                 "online_cost": {k: eng[k] for k in ("coin", "days", "engine_us_per_tick")},
                 "refit_every_rows": REFIT_EVERY, "forest": FOREST},
        "notes": [],
    }


if __name__ == "__main__":
    sys.exit(common.main_single(sys.modules[__name__]))
