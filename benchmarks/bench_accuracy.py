"""Section 1, accuracy: the forecast distribution on the report window, beside the baselines.

The report window is the part of each 5-minute series never used to design or tune the
method: the last 60 days (BTC, ETH, SOL, XRP: 90-day series), or, for the 30-day series
(ADA, DOGE, whose first half was design data), their last 15 days. ``--quick``: the last 3
days. Per coin the learner starts empty at the beginning of the window (as the acceptance
backtest does) and runs the default config: every configured horizon at once.

Per coin and horizon, scored exactly as ``score_forecasts.py`` scores the backtest CSV
(``cryptotech.backtest.score_rows``: same EWMA-Gaussian baseline, first 1,000 rows left out):
coverage of the 90 % interval (and the baseline's), interval-score skill and pinball skill
against the EWMA-Gaussian band (``1 - score / baseline``), Brier skill of ``P(rise)`` against
0.5, point skill against persistence. Writes one backtest CSV per horizon
(``results/heldout-<h>.csv``, the CSV contract) so ``score_forecasts.py`` can check them.

Run alone: ``python benchmarks/bench_accuracy.py [--quick]``.
"""

from __future__ import annotations

import sys
import time

import common
from common import RESULTS, fmt

NAME = "accuracy"
TITLE = "1. Forecast accuracy on the report window (real 5-minute data, cold start)"
REPORT_DAYS = 60.0
SHORT_SERIES_DAYS = 15.0  # 30-day series: their first half was design data
SIZE_MARKS = (1, 7, 14, 30)  # days learned at which other sections take the state size


def window_days(ctx) -> float:
    """The window other sections (scale) replay to age a learner."""
    return ctx.pick(full=30, quick=2)


def report_window(ctx, coin: str) -> list:
    if ctx.quick:
        return ctx.data.window(coin, 3)
    days = REPORT_DAYS if ctx.data.span_days(coin) > REPORT_DAYS + 10 else SHORT_SERIES_DAYS
    return ctx.data.window(coin, days)


def run(ctx) -> dict:
    from cryptotech.backtest import CoinResult, score_rows, write_csv
    from cryptotech.config import ModelSettings
    from cryptotech.learning.learner import CoinLearner

    settings = ModelSettings()
    rows, data = [], {"per_coin": {}}
    by_horizon: dict[str, dict[str, CoinResult]] = {label: {} for label in settings.horizon_labels}
    for coin in ctx.data.coins:
        ticks = report_window(ctx, coin)
        common.log(f"accuracy: {coin}, {len(ticks)} ticks from {ticks[0].ts:%Y-%m-%d}")
        learner = CoinLearner(coin, settings)
        result = CoinResult(coin, learner=learner)
        c0 = time.process_time()
        for tick in ticks:
            result.outcomes.extend(learner.process(tick)[1])
        cpu = time.process_time() - c0
        size = common.state_size(learner)
        span = f"{ticks[0].ts:%Y-%m-%d} → {ticks[-1].ts:%Y-%m-%d}"
        coin_data = {"window": span, "ticks": len(ticks), "cpu_s": cpu, "size": size,
                     "horizons": {}}
        for label, outcomes in result.by_horizon().items():
            s = score_rows(outcomes)
            coin_data["horizons"][label] = s
            by_horizon[label][coin] = CoinResult(coin, outcomes=outcomes)
            if not s["n"]:
                rows.append([coin, label, span, "0"] + ["-"] * 9)
                continue
            rows.append([
                coin, label, span, str(s["n"]), fmt(s["coverage"], "{:.3f}"),
                fmt(s["coverage_base"], "{:.3f}"), fmt(1 - s["is_ratio"], "{:+.4f}"),
                fmt(1 - s["qs_ratio"], "{:+.4f}"), fmt(s["brier_skill"], "{:+.4f}"),
                fmt(s["skill"], "{:+.4f}"), fmt(s["nll_diff"], "{:+.4f}"),
                f"{len(ticks) / cpu:,.0f}", f"{size['memory_mb'] * 1024:,.0f}",
            ])
        data["per_coin"][coin] = coin_data
    csvs = []
    if not ctx.quick:
        RESULTS.mkdir(exist_ok=True)
        for label, results in by_horizon.items():
            path = RESULTS / f"heldout-{label}.csv"
            write_csv(results, path)
            csvs.append(str(path.relative_to(common.REPO)))
    table = common.table(
        "Per coin and horizon, the published forecast on the report window",
        ["coin", "horizon", "window (UTC)", "n", "coverage", "coverage EWMA", "IS skill",
         "pinball skill", "Brier skill", "point skill", "NLL − EWMA", "ticks/s (CPU, all h)",
         "KiB/learner"],
        rows,
        ["Scored as score_forecasts.py scores the CSV: first 1,000 rows per coin and horizon "
         "left out; IS skill = 1 − interval score / EWMA-Gaussian's, pinball skill = 1 − mean "
         "pinball over the 7 quantiles / EWMA-Gaussian's (both > 0 = better than the "
         "baseline), Brier skill of P(rise) vs 0.5, point skill = 1 − MAE/MAE_persistence.",
         "Window: the last 60 days of each 90-day series, the last 15 days of the 30-day ones "
         "(their first half was design data); the learner starts empty at its beginning.",
         "ticks/s: CPU time of CoinLearner.process for all four horizons together; KiB: "
         "tracemalloc of the unpickled learner at the end of the window.",
         "CSV per horizon (the backtest contract): " + (", ".join(csvs) or "not in quick mode"),
         "Data: " + ctx.data.describe() + "."])
    return {"title": TITLE, "tables": [table], "data": data, "notes": []}


if __name__ == "__main__":
    sys.exit(common.main_single(sys.modules[__name__]))
