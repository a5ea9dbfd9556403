"""The CSV export of forecasts stored without the probabilistic columns (rows from before them)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx
from conftest import FeedSource, LiveServer, api_settings, random_walk

from cryptotech.api.app import create_app
from cryptotech.domain import Prediction
from cryptotech.store import QUANTILE_COLUMNS, Store


def test_a_forecast_stored_without_quantiles_exports_with_empty_cells(tmp_path):
    settings = api_settings(tmp_path, coins={"btc": "bitcoin"})
    tick = random_walk(1, "btc", seed=1, price=100_000.0)[0]
    old = Prediction(coin="btc", made_at=tick.ts, target_at=tick.ts + timedelta(hours=1),
                     price=tick.price, forecast=tick.price, lower=tick.price * 0.99,
                     upper=tick.price * 1.01, model="persistence", horizon="1h")
    with Store(settings.store.path) as store:
        store.commit_tick(tick, [old], [])
    with LiveServer(create_app(settings, FeedSource())) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        r = http.get("/previsoes/btc", params={"exportar_csv": "true", "horizonte": "1h"})
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 1 and rows[0]["horizonte"] == "1h"
    assert float(rows[0]["preco_atual"]) == tick.price
    assert all(rows[0][c] == "" for c in QUANTILE_COLUMNS)
