"""Coins the source has no data for, and the /saude health endpoint (issue 11, items 1 and 14).

A configured coin without data is said at start (one WARNING line), in ``/status`` (per coin,
with a Portuguese reason; ``situacao`` is ``atencao``) and by ``/prever`` (503 with the
reason, no promise of a forecast in 60 s). Real uvicorn, real replay of the bundled data,
real SDK client against the fake CoinGecko.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from conftest import FeedSource, LiveServer, api_settings, random_walk, wait_until

from cryptotech.api.app import create_app
from cryptotech.sources.coingecko import CoinGeckoRestSource
from cryptotech.sources.replay import ReplaySource, bundled_inputs
from cryptotech.testing.fake_coingecko import FakeCoinGecko
from cryptotech.testing.helpers import settings_for, take


def no_data_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "has no data for" in r.getMessage()]


def test_a_replayed_coin_without_a_file_is_flagged_at_start_in_status_and_prever(
        tmp_path, caplog):
    s = api_settings(tmp_path, coins={"zzz": "notacoin"})  # beside btc and eth
    source = ReplaySource(bundled_inputs(["btc", "eth"]), speed=1e9, warmup=3600, laps=1)
    with caplog.at_level(logging.INFO), LiveServer(create_app(s, source)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        assert no_data_warnings(caplog) == [
            "source replay has no data for zzz (sem dados na fonte: nenhum arquivo de preços "
            "desta moeda)"]
        wait_until(lambda: server.state.engine.ticks_processed > 20)
        status = http.get("/status").json()
        assert status["moedas"]["zzz"]["sem_dados"] == ("sem dados na fonte: nenhum arquivo "
                                                       "de preços desta moeda")
        assert status["moedas"]["btc"]["sem_dados"] is None
        assert status["fonte"]["estado"] == "live"  # so atencao is for zzz
        assert status["situacao"] == "atencao"
        answer = http.get("/prever/zzz")
        assert answer.status_code == 503
        body = answer.json()
        assert body["motivo"] == "sem_dados_na_fonte"
        assert "sem dados na fonte" in body["detalhe"]
        assert body["previsao_esperada_em"] is None
        assert answer.headers["retry-after"] == str(body["tentar_novamente_em_segundos"])
        assert http.get("/prever/btc").status_code == 200
    assert len(no_data_warnings(caplog)) == 1


def test_a_coin_id_coingecko_does_not_return_is_flagged_once(caplog):
    caplog.set_level(logging.INFO)
    with FakeCoinGecko() as fake:
        source = CoinGeckoRestSource(settings_for(fake, coins={"btc": "bitcoin",
                                                               "zzz": "notacoin"}))
        ticks = asyncio.run(take(source.stream(), 3, timeout=20))  # three polls
    assert {t.coin for t in ticks} == {"btc"}
    assert source.status.no_data == {
        "zzz": "sem dados na fonte: o CoinGecko não devolve o id 'notacoin'"}
    assert source.status.to_dict()["no_data"] == source.status.no_data
    assert no_data_warnings(caplog) == [
        "source rest has no data for zzz (sem dados na fonte: o CoinGecko não "
        "devolve o id 'notacoin')"]


def test_saude_is_200_while_learning_and_503_with_the_reason_otherwise(tmp_path):
    s = api_settings(tmp_path)
    source = FeedSource()
    with LiveServer(create_app(s, source)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        source.feed(random_walk(3))
        wait_until(lambda: server.state.engine.ticks_processed == 3)
        ok = http.get("/saude")
        assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
        assert ok.json() == {"aprendendo": True, "detalhe": "aprendendo",
                             "ticks_processados": 3}
        assert http.get("/status").json()["motor"]["aprendendo"] is True
        server.call(source.status.change, "unreachable", "no route to host")
        down = http.get("/saude")
        assert down.status_code == 503
        assert down.json()["detalhe"] == "a fonte de preços está inacessível"
        motor = http.get("/status").json()["motor"]
        assert motor["aprendendo"] is False
        assert set(motor["tarefas"]) == {"fonte", "checkpoints", "pulsacao", "encerramento",
                                         "alertas"}
        assert all(t == {"estado": "ok", "erros": 0, "ultimo_erro": None, "erro_em": None}
                   for t in motor["tarefas"].values())
