import asyncio
import gzip
import json
from datetime import datetime, timezone

import pytest

from cryptotech.errors import ReplayError
from cryptotech.sources.replay import (
    Replay,
    ReplaySource,
    bundled_inputs,
    coin_from_name,
    load_file,
    parse_input,
)

UTC = timezone.utc


def test_iso_times_with_changing_offsets_are_parsed_to_utc(fixtures):
    ticks, summary = load_file("btc", fixtures / "BTCUSDT_1h_dst.csv")
    assert summary.rows == 80 and summary.ticks == 80 and not summary.skipped
    assert ticks[0].ts == datetime(2020, 10, 23, 8, tzinfo=UTC)  # 11:00+03:00
    steps = {(b.ts - a.ts).total_seconds() for a, b in zip(ticks, ticks[1:])}
    assert steps == {3600.0}  # the repeated 01:00 wall-clock hour is two distinct UTC hours
    assert ticks[0].price == 12919.12


@pytest.mark.parametrize("scale", [1, 1000])
def test_epoch_seconds_and_milliseconds_are_detected(tmp_path, scale):
    path = tmp_path / "SOLUSDT_1m.csv"
    base = 1_750_000_000
    path.write_text("open_time,open,high,low,close,volume\n"
                    + "".join(f"{(base + 60 * i) * scale},1,1,1,{150 + i},10\n" for i in range(5)))
    ticks, _ = load_file("sol", path)
    assert [t.ts.timestamp() for t in ticks] == [base + 60 * i for i in range(5)]
    assert [t.price for t in ticks] == [150, 151, 152, 153, 154]


def test_bad_rows_are_skipped_and_counted(tmp_path):
    path = tmp_path / "ADAUSDT_5m.csv"
    path.write_text(
        "timestamp,close,volume\n"
        "2025-06-01T00:00:00+00:00,0.70,5\n"
        "not-a-time,0.71,5\n"
        "2025-06-01T00:10:00+00:00,nan,5\n"
        "2025-06-01T00:15:00+00:00,-1,5\n"
        "2025-06-01T00:20:00+00:00,0,5\n"
        "2025-06-01T00:25:00+00:00,abc,5\n"
        "2025-06-01T00:30:00+00:00,0.72,5\n"
        "2025-06-01T00:30:00+00:00,0.73,5\n"
    )
    ticks, summary = load_file("ada", path)
    assert [t.price for t in ticks] == [0.70, 0.72]
    assert summary.skipped == {"bad_time": 1, "bad_price": 2, "non_positive_price": 2,
                               "duplicate_time": 1}
    assert summary.first_bad_lines[:2] == [3, 4]


def test_unparseable_files_name_file_and_line(tmp_path):
    no_time = tmp_path / "BTC.csv"
    no_time.write_text("when,close\n1,2\n")
    with pytest.raises(ReplayError, match=r"BTC\.csv: line 1: no time column"):
        load_file("btc", no_time)
    bad_json = tmp_path / "btc.json"
    bad_json.write_text('{"prices": [[1, 2],\n  oops]}')
    with pytest.raises(ReplayError, match=r"btc\.json: line 2: invalid JSON"):
        load_file("btc", bad_json)
    garbage = tmp_path / "ETH.csv"
    garbage.write_text("timestamp,close\nyesterday,1\nlater,2\n")
    with pytest.raises(ReplayError, match=r"ETH\.csv: line 2: cannot parse time"):
        load_file("eth", garbage)


def test_coingecko_market_chart_json(fixtures):
    path = fixtures / "coingecko" / "market_chart_bitcoin_usd_7d_2023-10-07.json"
    coin, p = parse_input(str(path), {"btc": "bitcoin"})
    assert coin == "btc"
    ticks, summary = load_file(coin, p)
    data = json.loads(path.read_text())
    assert summary.ticks == len(data["prices"]) == 170
    assert ticks[0].ts.timestamp() == data["prices"][0][0] / 1000
    assert ticks[0].price == data["prices"][0][1]
    assert ticks[0].market_cap == data["market_caps"][0][1]
    assert ticks[0].volume_24h == data["total_volumes"][0][1]


def test_coin_from_argument_or_file_name(tmp_path):
    assert coin_from_name(tmp_path / "DOGEUSDT_5m.csv") == "doge"
    assert parse_input("xrp=" + str(tmp_path / "prices.csv")) == ("xrp", tmp_path / "prices.csv")


def test_files_merge_into_one_stream_ordered_by_time(tmp_path):
    a = tmp_path / "BTCUSDT.csv"
    b = tmp_path / "ETHUSDT.csv.gz"
    a.write_text("time,close\n" + "".join(f"{1_750_000_000 + 600 * i},{100 + i}\n" for i in range(4)))
    b.write_bytes(gzip.compress(("time,close\n" + "".join(
        f"{1_750_000_300 + 600 * i},{10 + i}\n" for i in range(4))).encode()))
    stream = list(Replay([parse_input(str(a)), parse_input(str(b))]))
    assert [t.coin for t in stream] == ["btc", "eth"] * 4
    assert all(x.ts < y.ts for x, y in zip(stream, stream[1:]))


def test_candle_volume_becomes_a_trailing_24h_sum(fixtures):
    ticks, _ = load_file("eth", fixtures / "ETHUSDT_5m_2025-04-10_7d.csv")
    assert ticks[0].volume_24h is None and ticks[287].volume_24h is None
    import csv

    with open(fixtures / "ETHUSDT_5m_2025-04-10_7d.csv") as fh:
        volumes = [float(r["volume"]) for r in csv.DictReader(fh)]
    assert ticks[288].volume_24h == pytest.approx(sum(volumes[1:289]))


def test_bundled_data_has_all_six_coins_for_30_days():
    inputs = bundled_inputs()
    assert sorted(c for c, _ in inputs) == ["ada", "btc", "doge", "eth", "sol", "xrp"]
    ticks, summary = load_file(*inputs[0])
    assert summary.ticks == 8640 and not summary.skipped


class FakeClock:
    """Monotonic seconds that move only when the replay sleeps or the test says so."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def replay_source(tmp_path, rows: int, **options):
    path = tmp_path / "BTCUSDT_5m.csv"
    path.write_text("time,close\n" + "".join(
        f"{1_750_000_000 + 300 * i},{100 + i}\n" for i in range(rows)))
    clock = FakeClock()
    source = ReplaySource([parse_input(str(path))], warmup=0.0, clock=clock, sleep=clock.sleep,
                          **options)
    return source, clock


def test_replay_reports_the_speed_it_really_reaches(tmp_path):
    source, clock = replay_source(tmp_path, 200, speed=3600.0, laps=1, window=10.0)
    assert source.status.to_dict()["velocidade"] == 3600.0
    assert source.status.velocidade_real is None  # nothing measured yet
    seen: list[float | None] = []

    async def consume(slow_after: int, cost: float) -> None:
        n = 0
        async for _ in source.stream():
            n += 1
            if n > slow_after:
                clock.t += cost  # the consumer (the engine) takes this long per tick
            seen.append(source.status.velocidade_real)

    asyncio.run(consume(slow_after=100, cost=0.5))
    # unhurried: 300 s of market every 300/3600 s of wall time, as configured
    assert seen[99] == pytest.approx(3600.0)
    # a consumer needing 0.5 s per 5-minute tick holds the replay to 600x, and it says so
    assert seen[-1] == pytest.approx(600.0)
    assert all(s < 3600.0 * 1.001 for s in seen if s is not None)
    assert (source.status.state, source.status.velocidade_real) == ("stale", 0.0)
    assert source.status.message == "reprodução terminada: não há mais dados"
    assert source.status.to_dict()["velocidade_real"] == 0.0


def test_replay_status_says_in_portuguese_what_it_replays(tmp_path):
    source, _ = replay_source(tmp_path, 3, speed=7200.0, laps=1)

    async def first_message() -> str:
        async for _ in source.stream():
            return source.status.message
        raise AssertionError("no tick")

    assert asyncio.run(first_message()) == "reproduzindo histórico real a 7200x"
    assert source.status.to_dict()["source"] == "replay"
