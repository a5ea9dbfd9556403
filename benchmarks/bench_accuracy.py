"""Section 1, accuracy: the online engine beside persistence on the last 30 days of real data.

Per coin, the learner starts empty at the beginning of the window and runs over the last 30
days of the coin's 5-minute series (``--quick``: last 2 days) with the default config and
horizon 1 h, then with each candidate alone. Reported for the published forecast (what the
engine serves, after online selection against persistence): skill vs persistence
``1 - MAE/MAE_persistence``, interval coverage, mean width in basis points and direction hit
rate; and for each candidate's own forecast before selection ("raw").

Accuracy is deterministic (fixed seed), so it is computed once, not repeated.

Run alone: ``python benchmarks/bench_accuracy.py [--quick]``.
"""

from __future__ import annotations

import sys

import common
from common import CONFIGS, fmt, num

NAME = "accuracy"
TITLE = "1. Accuracy vs persistence (horizon 1 h, real 5-minute data)"
SIZE_MARKS = (1, 7, 14, 30)  # days learned at which the default learner's state size is taken


def window_days(ctx) -> float:
    return ctx.pick(full=30, quick=2)


def run(ctx) -> dict:
    days = window_days(ctx)
    coins = ctx.data.coins
    runs: dict[str, dict[str, dict]] = {}
    for config in CONFIGS:
        runs[config] = {}
        for coin in coins:
            common.log(f"accuracy: {config} on {coin}, last {days:g} days")
            marks = SIZE_MARKS if config == "default" else ()
            runs[config][coin] = common.engine_run(ctx, coin, config, days, size_marks=marks)

    data: dict = {"window_days": days, "per_coin": {}}
    main_rows, skill_rows = [], []
    skills: dict[str, list[float]] = {}
    for coin in coins:
        default = runs["default"][coin]
        s = default["result"].summary()
        published = default["published_models"]
        total = sum(published.values()) or 1
        not_persistence = 1 - published.get("persistence", 0) / total
        raw = default["raw"]
        span = f"{default['first']:%Y-%m-%d %H:%M} → {default['last']:%Y-%m-%d %H:%M}"
        main_rows.append([
            coin, span, s["n"], num(s.get("mae")), num(s.get("mae_persistence")),
            fmt(s.get("skill"), "{:+.4f}"), fmt(s.get("coverage"), "{:.3f}"),
            fmt(s.get("mean_width_bps"), "{:.0f}"),
            f"{fmt(s.get('direction_hit_rate'), '{:.3f}')} (n={s.get('direction_n', 0)})",
            f"{not_persistence:.1%}",
        ])
        row = [coin]
        coin_data = {"window": span, "default": s, "published_models": published,
                     "state_size_by_days": default["sizes"], "alone": {}, "raw_candidates": {}}
        for config in CONFIGS:
            cs = runs[config][coin]["result"].summary()
            if config != "default":
                coin_data["alone"][config] = cs
            row.append(fmt(cs.get("skill"), "{:+.4f}") + f" / {fmt(cs.get('coverage'), '{:.3f}')}")
            skills.setdefault(config, []).append(cs.get("skill"))
            skills.setdefault(f"coverage {config}", []).append(cs.get("coverage"))
        for name in CONFIGS["default"]:
            r = raw.get(name, {})
            coin_data["raw_candidates"][name] = r
            row.append(fmt(r.get("skill"), "{:+.4f}"))
            skills.setdefault(f"raw {name}", []).append(r.get("skill"))
        skill_rows.append(row)
        data["per_coin"][coin] = coin_data

    def mean(values):
        vals = [v for v in values if v is not None]
        return sum(vals) / len(vals) if vals else None

    skill_rows.append(["mean of coins"]
                      + [fmt(mean(skills[c]), "{:+.4f}") + " / "
                         + fmt(mean(skills[f"coverage {c}"]), "{:.3f}") for c in CONFIGS]
                      + [fmt(mean(skills[f"raw {n}"]), "{:+.4f}") for n in CONFIGS["default"]])

    window_note = (f"Window: the last {days:g} days of each coin's series; the learner starts "
                   "empty at its beginning (the first hour has no labels yet).")
    if ctx.quick:
        window_note += " QUICK MODE: 2 days only; the selector needs 200 outcomes before it "\
                       "may publish a candidate, so these figures say little. Use the full run."
    tables = [
        common.table(
            f"Default config ({', '.join(CONFIGS['default'])}, selection vs persistence), "
            "published forecast",
            ["coin", "window (UTC)", "n", "MAE", "MAE persistence", "skill", "coverage",
             "width bps", "direction hit", "published ≠ persistence"],
            main_rows,
            [window_note,
             "skill = 1 − MAE/MAE_persistence over all outcomes of the window (0 = as good as "
             "'price stays the same'); coverage of the 90 % interval; direction hit rate "
             "counts only forecasts that moved away from the current price.",
             "Data: " + ctx.data.describe() + ". Accuracy is deterministic (seed 42): "
             "computed once, not repeated."]),
        common.table(
            "Skill / coverage of the published forecast per config, and the skill of each "
            "candidate's raw forecast (before selection, inside the default run)",
            ["coin", *[f"{c}{'' if c == 'default' else ' alone'}" for c in CONFIGS],
             *[f"raw {n}" for n in CONFIGS["default"]]],
            skill_rows,
            ["'X alone' = the learner with only that candidate beside persistence; what it "
             "publishes is still chosen online between the two.",
             "'raw X' = that candidate's own forecast (never replaced by persistence), "
             "scored on the same outcomes."]),
    ]
    return {"title": TITLE, "tables": tables, "data": data, "notes": []}


if __name__ == "__main__":
    sys.exit(common.main_single(sys.modules[__name__]))
