import csv
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

COLUMNS = ["coin", "made_at", "target_at", "price", "predicted", "lower", "upper", "actual"]


@pytest.fixture(scope="module")
def backtest(tmp_path_factory, ):
    """``cryptotech backtest`` on 7 days of real 5-minute ETH data, default settings."""
    from pathlib import Path

    out = tmp_path_factory.mktemp("bt")
    fixture = Path(__file__).parent / "fixtures" / "ETHUSDT_5m_2025-04-10_7d.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "cryptotech.cli", "backtest", str(fixture), "--horizon", "1h",
         "--output", str(out / "p.csv"), "--report", str(out / "r.html"), "--no-progress"],
        capture_output=True, text=True, cwd=out, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")},
    )
    assert proc.returncode == 0, proc.stderr
    with open(out / "p.csv", newline="") as fh:
        rows = list(csv.reader(fh))
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
        assert target - made == timedelta(hours=1)
        price, pred, lo, hi, actual = map(float, row[3:])
        assert lo <= pred <= hi and price > 0 and actual > 0
    made_at = [r[1] for r in body]
    assert made_at == sorted(made_at) and len(set(made_at)) == len(made_at)


def test_real_data_coverage_and_skill_are_honest(backtest):
    _, rows, _ = backtest
    body = [list(map(float, r[3:])) for r in rows[1:]]
    covered = sum(lo <= actual <= hi for _, _, lo, hi, actual in body) / len(body)
    mae = sum(abs(pred - actual) for _, pred, _, _, actual in body) / len(body)
    mae_persistence = sum(abs(price - actual) for price, _, _, _, actual in body) / len(body)
    skill = 1 - mae / mae_persistence
    assert 0.85 <= covered <= 0.95
    assert skill >= -0.02


def test_table_and_report(backtest):
    proc, _, out = backtest
    header = proc.stdout.splitlines()[0].split()
    assert header[:2] == ["coin", "n"] and "skill" in header and "coverage" in header
    eth = next(line.split() for line in proc.stdout.splitlines() if line.split()[:1] == ["eth"])
    assert eth[1] == "2003"
    html = (out / "r.html").read_text()
    assert "Plotly.newPlot" in html and "Candidatos lado a lado" in html
