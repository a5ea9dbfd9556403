import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "ETHUSDT_5m_2025-04-10_7d.csv"
SCORER = Path(__file__).parents[1].parent / "shared" / "tools" / "score_forecasts.py"
COLUMNS = ["coin", "made_at", "target_at", "price", "predicted", "lower", "upper", "actual",
           "horizon", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "p_up", "vol"]


def backtest_cli(out: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    proc = subprocess.run(
        [sys.executable, "-m", "cryptotech.cli", "backtest", str(FIXTURE),
         "--output", str(out / "p.csv"), "--no-progress", *args],
        capture_output=True, text=True, cwd=out, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")},
    )
    assert proc.returncode == 0, proc.stderr
    with open(out / "p.csv", newline="") as fh:
        return proc, list(csv.reader(fh))


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    """``cryptotech backtest`` on 7 days of real 5-minute ETH data, default settings, 1 h."""
    out = tmp_path_factory.mktemp("bt")
    proc, rows = backtest_cli(out, "--horizon", "1h", "--report", str(out / "r.html"))
    return proc, rows, out


def test_csv_has_exactly_the_contract_columns_and_one_row_per_settled_prediction(backtest):
    _, rows, _ = backtest
    assert rows[0] == COLUMNS
    body = rows[1:]
    # 2,016 ticks; the first makes no forecast (no volatility yet); the last hour never settles
    assert len(body) == 2016 - 1 - 12
    for row in body[:50] + body[-50:]:
        made, target = (datetime.fromisoformat(row[1].replace("Z", "+00:00")),
                        datetime.fromisoformat(row[2].replace("Z", "+00:00")))
        assert row[1].endswith("Z") and made.utcoffset() == timedelta(0)
        assert target - made == timedelta(hours=1) and row[8] == "1h"
        price, pred, lo, hi, actual = map(float, row[3:8])
        assert lo <= pred <= hi and price > 0 and actual > 0
        quantiles = list(map(float, row[9:16]))
        assert quantiles == sorted(quantiles) and quantiles[3] == pred
        p_up, vol = float(row[16]), float(row[17])
        assert 0 <= p_up <= 1 and 0 < vol < 0.2
    made_at = [r[1] for r in body]
    assert made_at == sorted(made_at) and len(set(made_at)) == len(made_at)


def test_real_data_coverage_and_skill_are_honest(backtest):
    _, rows, _ = backtest
    body = [list(map(float, r[3:8])) for r in rows[1:]]
    covered = sum(lo <= actual <= hi for _, _, lo, hi, actual in body) / len(body)
    mae = sum(abs(pred - actual) for _, pred, _, _, actual in body) / len(body)
    mae_persistence = sum(abs(price - actual) for price, _, _, _, actual in body) / len(body)
    skill = 1 - mae / mae_persistence
    assert 0.85 <= covered <= 0.95
    assert skill >= -0.001


def table_rows(stdout: str) -> dict[tuple[str, str], dict[str, str]]:
    lines = stdout.splitlines()
    header = lines[0].split("  ")
    header = [h.strip() for h in header if h.strip()]
    out = {}
    for line in lines[2:]:
        cells = line.split()
        if len(cells) != len(header):
            break
        row = dict(zip(header, cells))
        out[(row["coin"], row["horizon"])] = row
    return out


@pytest.mark.skipif(not SCORER.is_file(), reason="../shared/tools/score_forecasts.py not here")
def test_table_is_what_the_independent_scorer_computes_from_the_csv(backtest):
    proc, _, out = backtest
    scored = json.loads(subprocess.run(
        [sys.executable, str(SCORER), str(out / "p.csv"), "--json"],
        capture_output=True, text=True, check=True, timeout=120).stdout)["eth"]
    row = table_rows(proc.stdout)[("eth", "1h")]
    assert int(row["n"]) == scored["n"] == 2003 - 1000
    assert row["skill"] == f"{scored['skill']:+.4f}"
    assert row["coverage"] == f"{scored['coverage']:.3f}"
    assert row["cov. EWMA"] == f"{scored['coverage_base']:.3f}"
    assert row["width bp"] == f"{scored['width_bp']:.0f}"
    assert row["EWMA bp"] == f"{scored['width_base_bp']:.0f}"
    assert row["IS/EWMA"] == f"{scored['is_ratio']:.4f}"
    assert row["QS/EWMA"] == f"{scored['qs_ratio']:.4f}"
    assert row["Brier skill"] == f"{scored['brier_skill']:+.4f}"
    assert row["NLL-EWMA"] == f"{scored['nll_diff']:+.4f}"


def test_table_and_report(backtest):
    proc, _, out = backtest
    header = proc.stdout.splitlines()[0].split()
    assert header[:3] == ["coin", "horizon", "n"] and "skill" in header and "coverage" in header
    html = (out / "r.html").read_text()
    assert "Plotly.newPlot" in html and "Candidatos lado a lado" in html


def test_without_horizon_every_configured_horizon_is_written(tmp_path):
    proc, rows = backtest_cli(tmp_path)
    body = rows[1:]
    by_horizon: dict[str, int] = {}
    for row in body:
        by_horizon[row[8]] = by_horizon.get(row[8], 0) + 1
    steps = {"15m": 3, "1h": 12, "4h": 48, "24h": 288}
    assert by_horizon == {label: 2016 - 1 - n for label, n in steps.items()}
    first = body[:4]  # the rows of one tick come together, in configured order
    assert [r[8] for r in first] == ["15m", "1h", "4h", "24h"] and len({r[1] for r in first}) == 1
    assert set(table_rows(proc.stdout)) == {("eth", label) for label in steps}
