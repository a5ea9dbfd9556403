"""Replay source: real price files turned into one time-ordered stream of ticks.

Two formats are read:

* OHLCV CSV as exchanges and common data sets publish it: a time column named ``timestamp``,
  ``open_time``, ``time`` or ``date`` holding ISO-8601 (with a UTC offset; naive means UTC),
  epoch seconds or epoch milliseconds (detected from the magnitude), ``close`` as the price
  and ``volume`` if present. Candle volume is summed over a trailing 24 h so that ``Tick``
  carries a 24 h volume as CoinGecko's does. Gzipped files (``.csv.gz``) are read too.
* CoinGecko ``market_chart`` JSON: ``prices``, ``market_caps``, ``total_volumes`` as
  ``[ms, value]`` pairs.

Bad rows are skipped and counted; a file that cannot be parsed at all raises
:class:`~cryptotech.errors.ReplayError` naming the file and line.
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import io
import json
import logging
import re
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from cryptotech.domain import Tick, from_epoch
from cryptotech.errors import ReplayError
from cryptotech.sources.base import SourceStatus

log = logging.getLogger("cryptotech.source")

TIME_COLUMNS = ("timestamp", "open_time", "time", "date")
QUOTES = ("usdt", "usdc", "busd", "fdusd", "usd", "brl", "eur", "btc")
EPOCH_MS_ABOVE = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973


@dataclass
class FileSummary:
    """What was read from one file."""

    path: str
    coin: str
    rows: int = 0
    ticks: int = 0
    skipped: Counter = field(default_factory=Counter)
    first_bad_lines: list[int] = field(default_factory=list)


def coin_from_name(path: Path, coin_ids: Mapping[str, str] | None = None) -> str:
    """The coin symbol a file name speaks of.

    >>> coin_from_name(Path("BTCUSDT_5m.csv"))
    'btc'
    >>> coin_from_name(Path("market_chart_bitcoin_usd_7d.json"), {"btc": "bitcoin"})
    'btc'
    >>> coin_from_name(Path("eth-1h.csv.gz"))
    'eth'
    """
    name = path.name.lower()
    for suffix in (".gz", ".csv", ".json"):
        name = name.removesuffix(suffix)
    tokens = [t for t in re.split(r"[_\-. ]+", name) if t]
    by_id = {cid.lower(): sym for sym, cid in (coin_ids or {}).items()}
    for token in tokens:
        if token in by_id:
            return by_id[token]
        if coin_ids and token in coin_ids:
            return token
    if not tokens:
        raise ReplayError(f"{path}: cannot tell the coin from the file name; use coin=PATH")
    first = tokens[0]
    for quote in QUOTES:
        if first.endswith(quote) and len(first) > len(quote):
            return first[: -len(quote)]
    return first


def parse_input(arg: str, coin_ids: Mapping[str, str] | None = None) -> tuple[str, Path]:
    """``"coin=path"`` or ``"path"`` as (coin, path)."""
    coin, sep, rest = arg.partition("=")
    if sep and coin and "/" not in coin and "\\" not in coin:
        return coin.strip().lower(), Path(rest)
    path = Path(arg)
    return coin_from_name(path, coin_ids), path


def _read_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            return gzip.decompress(path.read_bytes()).decode("utf-8")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReplayError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ReplayError(f"{path}: cannot read: {exc}") from None


def _is_json(path: Path, text: str) -> bool:
    return path.name.lower().removesuffix(".gz").endswith(".json") or text.lstrip()[:1] in "{["


def load_file(coin: str, path: Path) -> tuple[list[Tick], FileSummary]:
    """All valid ticks of one file, in time order, and a summary of what was skipped."""
    text = _read_text(path)
    summary = FileSummary(path=str(path), coin=coin)
    if _is_json(path, text):
        frame = _frame_from_market_chart(path, text)
        line_of = None
    else:
        frame = _frame_from_csv(path, text)
        line_of = frame.index.to_numpy() + 2  # header is line 1
    summary.rows = len(frame)
    bad = pd.Series("", index=frame.index)
    bad[frame["ts"].isna()] = "bad_time"
    price = frame["price"]
    bad[(bad == "") & price.isna()] = "bad_price"
    bad[(bad == "") & ~np.isfinite(price.fillna(0))] = "bad_price"
    bad[(bad == "") & (price <= 0)] = "non_positive_price"
    good = frame[bad == ""]
    for reason, count in bad[bad != ""].value_counts().items():
        summary.skipped[reason] += int(count)
    if line_of is not None:
        summary.first_bad_lines = [int(n) for n in line_of[(bad != "").to_numpy()][:5]]
    good = good.sort_values("ts", kind="stable")
    duplicated = good["ts"].duplicated(keep="first")
    if duplicated.any():
        summary.skipped["duplicate_time"] += int(duplicated.sum())
        good = good[~duplicated]
    volume = _volume_24h(good)
    ticks = [
        Tick(
            coin=coin,
            ts=from_epoch(ts),
            price=float(p),
            market_cap=None if mc is None or np.isnan(mc) else float(mc),
            volume_24h=None if v is None or np.isnan(v) else float(v),
        )
        for ts, p, mc, v in zip(
            good["ts"].to_numpy(), good["price"].to_numpy(), good["market_cap"].to_numpy(), volume
        )
    ]
    summary.ticks = len(ticks)
    return ticks, summary


def _volume_24h(frame: pd.DataFrame) -> np.ndarray:
    """24 h volume: CoinGecko's as given; candle volumes summed over a full trailing day."""
    if len(frame) == 0 or frame["volume_is_24h"].iat[0]:
        return frame["volume"].to_numpy(dtype=float)
    index = pd.to_datetime(frame["ts"], unit="s")
    candles = pd.Series(frame["volume"].to_numpy(dtype=float), index=index)
    rolled = candles.rolling("24h").sum().to_numpy()
    full = (frame["ts"].to_numpy() - frame["ts"].iat[0]) >= 86400 - 1e-9
    return np.where(full, rolled, np.nan)


def _frame_from_csv(path: Path, text: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, skip_blank_lines=True)
    except pd.errors.ParserError as exc:
        raise ReplayError(f"{path}: not a readable CSV: {exc}") from None
    except pd.errors.EmptyDataError:
        raise ReplayError(f"{path}: line 1: empty file") from None
    columns = {c.strip().lower(): c for c in raw.columns}
    time_col = next((columns[c] for c in TIME_COLUMNS if c in columns), None)
    if time_col is None:
        raise ReplayError(
            f"{path}: line 1: no time column (expected one of {', '.join(TIME_COLUMNS)})"
        )
    if "close" not in columns:
        raise ReplayError(f"{path}: line 1: no 'close' column")
    ts = _parse_times(raw[time_col])
    if len(raw) and ts.isna().all():
        raise ReplayError(
            f"{path}: line 2: cannot parse time {raw[time_col].iat[0]!r} "
            "(expected ISO-8601 with offset, epoch seconds or epoch milliseconds)"
        )
    price = pd.to_numeric(raw[columns["close"]], errors="coerce")
    volume = (
        pd.to_numeric(raw[columns["volume"]], errors="coerce")
        if "volume" in columns
        else pd.Series(np.nan, index=raw.index)
    )
    return pd.DataFrame(
        {
            "ts": ts,
            "price": price.astype(float),
            "market_cap": np.nan,
            "volume": volume.astype(float),
            "volume_is_24h": False,
        }
    )


def _parse_times(col: pd.Series) -> pd.Series:
    """Epoch seconds as floats from ISO-8601 strings, epoch seconds or epoch milliseconds."""
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().sum() >= max(1, col.notna().sum() // 2):
        scale = 1000.0 if numeric.abs().median() > EPOCH_MS_ABOVE else 1.0
        return numeric / scale
    parsed = pd.to_datetime(col.str.strip(), utc=True, errors="coerce", format="ISO8601")
    return ((parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).astype(float)


def _frame_from_market_chart(path: Path, text: str) -> pd.DataFrame:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prices"), list):
        raise ReplayError(f"{path}: line 1: not a CoinGecko market_chart ('prices' missing)")

    def series(key: str) -> dict[float, float]:
        out: dict[float, float] = {}
        for pair in data.get(key) or []:
            if isinstance(pair, list) and len(pair) == 2 and _number(pair[0]):
                out[float(pair[0])] = float(pair[1]) if _number(pair[1]) else np.nan
        return out

    caps, vols = series("market_caps"), series("total_volumes")
    rows = []
    for pair in data["prices"]:
        ok = isinstance(pair, list) and len(pair) == 2 and _number(pair[0])
        ms = float(pair[0]) if ok else np.nan
        price = float(pair[1]) if ok and _number(pair[1]) else np.nan
        rows.append((ms / 1000.0, price, caps.get(ms, np.nan), vols.get(ms, np.nan)))
    frame = pd.DataFrame(rows, columns=["ts", "price", "market_cap", "volume"])
    frame["volume_is_24h"] = True
    return frame


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Replay:
    """Several files merged into one stream of ticks ordered by time (then coin)."""

    def __init__(self, inputs: Iterable[tuple[str, Path]]):
        self.files: list[tuple[list[Tick], FileSummary]] = [
            load_file(coin, Path(path)) for coin, path in inputs
        ]

    @property
    def summaries(self) -> list[FileSummary]:
        return [summary for _, summary in self.files]

    def __len__(self) -> int:
        return sum(len(ticks) for ticks, _ in self.files)

    def __iter__(self) -> Iterator[Tick]:
        return heapq.merge(*(ticks for ticks, _ in self.files), key=lambda t: (t.ts, t.coin))

    def describe(self) -> str:
        """One line per file: rows read, ticks kept, rows skipped and why."""
        lines = []
        for s in self.summaries:
            skipped = sum(s.skipped.values())
            why = ", ".join(f"{k}={v}" for k, v in sorted(s.skipped.items()))
            where = f" (first at lines {s.first_bad_lines})" if s.first_bad_lines else ""
            lines.append(
                f"{s.path} [{s.coin}]: {s.rows} rows, {s.ticks} ticks"
                + (f", {skipped} skipped: {why}{where}" if skipped else "")
            )
        return "\n".join(lines)


def bundled_inputs(coins: Iterable[str] | None = None) -> list[tuple[str, Path]]:
    """The real 5-minute data shipped in the package (``cryptotech/data``), as replay inputs."""
    folder = resources.files("cryptotech") / "data"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".csv.gz"):
            coin = coin_from_name(Path(entry.name))
            if coins is None or coin in coins:
                out.append((coin, Path(str(entry))))
    return out


@dataclass
class ReplayStatus(SourceStatus):
    """A replay's status: the configured speed and the speed it really reaches.

    ``velocidade`` is the configured speed and ``velocidade_real`` the measured one, both in
    seconds of market per second of wall time; the measure is over the paced ticks of the last
    ``window`` seconds (None until two paced ticks were yielded; 0 once the replay ended). A
    busy machine or a slow consumer makes it fall below the configured speed.

    >>> status = ReplayStatus(source="replay", velocidade=3600.0)
    >>> {k: status.to_dict()[k] for k in ("source", "velocidade", "velocidade_real")}
    {'source': 'replay', 'velocidade': 3600.0, 'velocidade_real': None}
    """

    velocidade: float = 0.0
    velocidade_real: float | None = None

    def to_dict(self) -> dict[str, object]:
        return super().to_dict() | {"velocidade": self.velocidade,
                                    "velocidade_real": self.velocidade_real}


class ReplaySource:
    """Replayed ticks as a live source: the demo's feed, through the same engine as ``run``.

    The first ``warmup`` of market time is yielded at once (like ``run``'s warm start); the
    rest is paced so that ``speed`` seconds of market pass per second of wall time. Ticks at
    or before ``resume_after[coin]`` (what the store already holds) are skipped. When the data
    ends it starts again, shifted in time and scaled to continue from the last price, so a
    demo can be left running (every lap is logged), unless ``laps`` bounds the number of
    passes. The speed really reached over the last ``window`` seconds is measured into
    ``status.velocidade_real``. ``clock`` (seconds, monotonic) and ``sleep`` are injectable
    for tests.
    """

    def __init__(self, inputs: Iterable[tuple[str, Path]], speed: float = 3600.0,
                 warmup: float = 86400.0, resume_after: Mapping[str, float] | None = None,
                 laps: int | None = None, window: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep):
        self.replay = Replay(inputs)
        self.speed = speed
        self.warmup = warmup
        self.resume_after = dict(resume_after or {})
        self.laps = laps
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.status = ReplayStatus(source="replay", velocidade=speed)
        self._paced: deque[tuple[float, float]] = deque()  # (wall, market) of recent ticks
        for s in self.replay.summaries:
            for reason, count in s.skipped.items():
                self.status.rejected[reason] += count

    async def backfill(self) -> list[Tick]:
        return []

    def _laps(self) -> Iterator[Tick]:
        ticks = list(self.replay)
        if not ticks:
            return
        span = ticks[-1].epoch - ticks[0].epoch + 300.0
        first: dict[str, float] = {}
        for t in ticks:
            first.setdefault(t.coin, t.price)
        lap, shift, scale = 0, 0.0, {c: 1.0 for c in first}
        while True:
            for t in ticks:
                yield Tick(t.coin, from_epoch(t.epoch + shift), t.price * scale[t.coin],
                           t.market_cap, t.volume_24h, t.change_24h) if lap else t
            if self.laps is not None and lap + 1 >= self.laps:
                return
            last = {}
            for t in ticks:
                last[t.coin] = t.price
            lap += 1
            shift += span
            scale = {c: scale[c] * last[c] / first[c] for c in first}
            log.info(
                "replay: end of the bundled data, lap %d starts (shifted %.0f days)", lap,
                shift / 86400)

    def _measure(self, wall: float, market: float) -> None:
        """Market seconds per wall second from the oldest paced tick still in the window."""
        paced = self._paced
        paced.append((wall, market))
        while len(paced) > 2 and wall - paced[1][0] >= self.window:
            paced.popleft()
        wall0, market0 = paced[0]
        if wall > wall0:
            self.status.velocidade_real = (market - market0) / (wall - wall0)

    async def stream(self) -> AsyncIterator[Tick]:
        start_market: float | None = None
        start_wall = 0.0
        self.status.change("live", f"reproduzindo histórico real a {self.speed:g}x")
        for tick in self._laps():
            if tick.epoch <= self.resume_after.get(tick.coin, float("-inf")):
                continue
            if start_market is None:
                start_market = tick.epoch + self.warmup
                start_wall = self.clock()
            if tick.epoch > start_market:
                due = start_wall + (tick.epoch - start_market) / self.speed
                delay = due - self.clock()
                if delay > 0:
                    await self.sleep(delay)
                self._measure(self.clock(), tick.epoch)
            self.status.polls += 1
            self.status.last_ok_at = datetime.now(timezone.utc)  # when it arrived, as for REST
            self.status.last_tick_at[tick.coin] = tick.ts
            yield tick
        self.status.velocidade_real = 0.0
        self.status.change("stale", "reprodução terminada: não há mais dados")
