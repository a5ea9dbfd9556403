"""Settings: ``config.toml`` first, then ``CRYPTOTECH_*`` environment variables on top.

Nested keys use a double underscore in the environment: ``CRYPTOTECH_MODEL__INTERVAL_LEVEL=0.8``
overrides ``[model] interval_level``; lists take JSON
(``CRYPTOTECH_MODEL__HORIZONS='["1h", "4h"]'``). ``CRYPTOTECH_COINS="btc=bitcoin,eth=ethereum"`` replaces the
coin table. The CoinGecko key is read only from ``CRYPTOTECH_COINGECKO_API_KEY`` and never
printed (it is a ``SecretStr``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from cryptotech.alerts.rules import Regra
from cryptotech.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_CONFIG = Path("config.toml")

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d|w)\s*$")


def parse_duration(value: Any) -> Any:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"1d"`` (or a number of seconds) as a timedelta.

    >>> parse_duration("1h")
    datetime.timedelta(seconds=3600)
    >>> parse_duration("5m").total_seconds()
    300.0
    """
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as 90s, 5m, 1h or 1d, got {value!r}")
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


def format_duration(td: timedelta) -> str:
    """The shortest of ``1d``, ``1h``, ``5m``, ``90s`` that says ``td`` exactly."""
    seconds = td.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _positive(td: timedelta) -> timedelta:
    if td.total_seconds() <= 0:
        raise ValueError("must be a positive duration")
    return td


CANDIDATES = ("bayes_linear", "hoeffding_tree", "arf")


class _Section(BaseModel):
    """A ``[section]`` of config.toml: a misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def horizon_label(horizon: timedelta | float) -> str:
    """The label of a horizon (a timedelta or seconds) as it appears everywhere: ``"1h"``.

    Whole hours up to a day are said in hours (``"24h"``, as users say it), longer whole days
    in days (``"2d"``), the rest as :func:`format_duration` says it.

    >>> horizon_label(timedelta(minutes=15)), horizon_label(86400), horizon_label(2 * 86400)
    ('15m', '24h', '2d')
    """
    if not isinstance(horizon, timedelta):
        horizon = timedelta(seconds=horizon)
    seconds = horizon.total_seconds()
    if 3600 <= seconds <= 86400 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return format_duration(horizon)


DEFAULT_HORIZONS = [timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4),
                    timedelta(hours=24)]


class ModelSettings(_Section):
    """How each coin's learner forecasts.

    ``horizons`` lists every horizon forecast side by side; the first is the one the API and
    the dashboard show by default. The old key ``horizon`` (one duration) is still accepted as
    a one-horizon alias: when given, it replaces ``horizons`` by ``[horizon]`` (so
    ``CRYPTOTECH_MODEL__HORIZON=30m`` or ``backtest --horizon 30m`` run that horizon alone).
    ``settings.horizon`` reads the first horizon.
    """

    horizons: list[Duration] = Field(default_factory=lambda: list(DEFAULT_HORIZONS),
                                     min_length=1, max_length=8)
    interval_level: float = Field(default=0.90, gt=0.5, lt=1.0)
    move_thresholds: list[float] = Field(default_factory=lambda: [0.02, 0.05], max_length=8)
    candidates: list[Literal["bayes_linear", "hoeffding_tree", "arf"]] = []
    seed: int = 42
    label_tolerance: Duration = timedelta(minutes=10)
    metrics_window: int = Field(default=1000, ge=10, le=1_000_000)
    arf_trees: int = Field(default=10, ge=1, le=100)
    max_pending: int = Field(default=20_000, ge=10)
    conformal_window: int = Field(default=3000, ge=50, le=100_000)
    har_memory: float = Field(default=2000.0, ge=10.0)
    har_prior_variance: float = Field(default=0.05, gt=0.0)
    fence: float = Field(default=0.5, ge=0.0, le=3.0)
    spike_ratio: float = Field(default=4.0, gt=1.0)

    @model_validator(mode="before")
    @classmethod
    def _horizon_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("horizon") is not None:
            data = dict(data)
            data["horizons"] = [data.pop("horizon")]
        elif isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "horizon"}
        return data

    @field_validator("horizons")
    @classmethod
    def _horizon_range(cls, tds: list[timedelta]) -> list[timedelta]:
        for td in tds:
            if not timedelta(minutes=1) <= td <= timedelta(days=7):
                raise ValueError(f"every horizon must be between 1m and 7d, got "
                                 f"{horizon_label(td)}")
        labels = [horizon_label(td) for td in tds]
        if len(set(labels)) != len(labels):
            raise ValueError(f"horizons must differ, got {labels}")
        return tds

    @field_validator("move_thresholds")
    @classmethod
    def _thresholds(cls, values: list[float]) -> list[float]:
        if any(not 0 < v < 1 for v in values):
            raise ValueError("every move threshold is a fraction between 0 and 1 (0.02 = 2 %)")
        return sorted(set(values))

    @field_validator("label_tolerance")
    @classmethod
    def _tolerance(cls, td: timedelta) -> timedelta:
        return _positive(td)

    @property
    def horizon(self) -> timedelta:
        """The first horizon: the one shown by default."""
        return self.horizons[0]

    @property
    def horizon_labels(self) -> list[str]:
        return [horizon_label(td) for td in self.horizons]


class SourceSettings(_Section):
    """Where live prices come from."""

    kind: Literal["rest", "websocket"] = "rest"
    plan: Literal["keyless", "demo", "pro"] = "keyless"
    poll_interval: Duration = timedelta(seconds=60)
    monthly_credit_budget: int = Field(0, ge=0, description="0 means no budget")
    base_url: str = ""
    websocket_url: str = "wss://stream.coingecko.com/v1"
    timeout: Duration = timedelta(seconds=10)
    stale_after_polls: int = Field(5, ge=1)
    backfill: bool = True

    @field_validator("poll_interval", "timeout")
    @classmethod
    def _pos(cls, td: timedelta) -> timedelta:
        return _positive(td)


class StoreSettings(_Section):
    """The database (a SQLite file, or a PostgreSQL server when ``url`` is set) and what is
    kept in it."""

    path: Path = Path("cryptotech.db")
    url: str = ""  # postgresql://user@host:5432/db: PostgreSQL instead of the SQLite file
    checkpoint_every: Duration = timedelta(minutes=5)
    tick_retention: Duration = timedelta(days=90)

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, url: str) -> str:
        if url and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a postgresql://user@host:5432/database URL (or nothing: "
                             "the SQLite file store.path)")
        return url


class ApiSettings(_Section):
    """The HTTP server (REST, SSE and the dashboard on one port)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    cors_origins: list[str] = []
    max_subscribers: int = Field(1000, ge=1)
    subscriber_queue: int = Field(1000, ge=1)
    send_timeout: Duration = timedelta(seconds=10)
    ping_interval: Duration = timedelta(seconds=15)


DEFAULT_COINS = {
    "btc": "bitcoin",
    "eth": "ethereum",
    "ada": "cardano",
    "sol": "solana",
    "xrp": "ripple",
    "doge": "dogecoin",
}

_SYMBOL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _coins(value: Any) -> Any:
    if isinstance(value, str):  # "btc=bitcoin,eth=ethereum"
        pairs = [p.strip() for p in value.split(",") if p.strip()]
        out = {}
        for pair in pairs:
            symbol, sep, coin_id = pair.partition("=")
            if not sep or not symbol.strip() or not coin_id.strip():
                raise ValueError(f"expected symbol=coingecko-id pairs, got {pair!r}")
            out[symbol.strip().lower()] = coin_id.strip()
        return out
    return value


class Settings(BaseSettings):
    """Every setting of CryptoTech, with its default."""

    model_config = SettingsConfigDict(
        env_prefix="CRYPTOTECH_", env_nested_delimiter="__", extra="forbid"
    )

    coins: Annotated[dict[str, str], NoDecode, BeforeValidator(_coins)] = dict(DEFAULT_COINS)
    vs_currency: str = Field("usd", pattern=r"^[a-z]{2,10}$")
    timezone: str = "America/Sao_Paulo"
    model: ModelSettings = ModelSettings()
    source: SourceSettings = SourceSettings()
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    coingecko_api_key: SecretStr | None = None
    alertas: list[Regra] = []  # [[alertas]] tables: alert rules (cryptotech.alerts.rules)

    @field_validator("coins")
    @classmethod
    def _check_coins(cls, coins: dict[str, str]) -> dict[str, str]:
        if not coins:
            raise ValueError("at least one coin is needed")
        for symbol in coins:
            if not _SYMBOL.match(symbol):
                raise ValueError(f"symbol {symbol!r} must be lower-case letters and digits")
        return coins

    @model_validator(mode="after")
    def _alert_coins(self) -> Settings:
        if unknown := {r.moeda for r in self.alertas} - {*self.coins, "todas"}:
            raise ValueError(f"[[alertas]]: unknown coin(s) {', '.join(sorted(unknown))}")
        return self

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, which arrives as init keyword arguments.
        return (env_settings, init_settings)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def coin_ids(self) -> dict[str, str]:
        return dict(self.coins)


def load_settings(path: Path | str | None = None, *, flags: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Read ``path`` (default ``./config.toml`` if present), then the environment.

    ``overrides`` are nested dicts applied last (command-line flags); ``flags`` names the flag
    of each dotted key (``{"api.port": "--port"}``) so that an invalid value blames it. Raises
    :class:`ConfigError` with one line naming the first invalid key and where its value came
    from (the flag, the environment variable, or the file and key).
    """
    data: dict[str, Any] = {}
    file = Path(path) if path is not None else DEFAULT_CONFIG
    if path is not None and not file.is_file():
        raise ConfigError(f"config: file not found: {file}")
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config: {file}: {exc}") from exc
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, _file_or_env(file, data))) from None
    except SettingsError as exc:  # an environment value that is not valid JSON
        raise ConfigError(f"config: {exc} (lists take JSON, e.g. '[\"a\", \"b\"]')") from None
    if overrides:
        merged = _deep_merge(settings.model_dump(exclude={"coingecko_api_key"}), overrides)
        try:
            settings = Settings.model_validate(
                {**merged, "coingecko_api_key": settings.coingecko_api_key}
            )
        except ValidationError as exc:
            given = dict(flags or {})
            raise ConfigError(_first_error(
                exc, lambda loc: _flag(loc, given) or _file_or_env(file, data)(loc))) from None
    return settings


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_name(loc: Sequence[str | int]) -> str:
    return "CRYPTOTECH_" + "__".join(str(p) for p in loc).upper()


def _flag(loc: Sequence[str | int], flags: Mapping[str, str]) -> str | None:
    """The command-line flag that set the value at ``loc``, if one did."""
    for n in range(len(loc), 0, -1):
        flag = flags.get(".".join(str(p) for p in loc[:n]))
        if flag is not None:
            return f"flag {flag}"
    return None


def _file_or_env(file: Path, data: Mapping[str, Any]) -> Callable[[Sequence[str | int]], str]:
    """Where the value at ``loc`` came from: a ``CRYPTOTECH_*`` variable or the file's key."""
    environ = {name.upper() for name in os.environ}

    def origin(loc: Sequence[str | int]) -> str:
        keys = [str(p) for p in loc if isinstance(p, str)]
        for n in range(len(keys), 0, -1):  # CRYPTOTECH_MODEL__HORIZON, then CRYPTOTECH_MODEL
            if _env_name(keys[:n]) in environ:
                return f"environment {_env_name(keys[:n])}"
        node: Any = data
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                return "default"
            node = node[key]
        where = f"[{keys[0]}] {'.'.join(keys[1:])}" if len(keys) > 1 else ".".join(keys)
        return f"file {file}, key {where}"

    return origin


_ALIASES: dict[tuple[str | int, ...], tuple[str | int, ...]] = {
    ("model", "horizons"): ("model", "horizon"),  # the one-horizon alias ModelSettings accepts
}


def _first_error(exc: ValidationError, origin: Callable[[Sequence[str | int]], str]) -> str:
    """One line: the key, where its value came from, what is wrong, and the value given.

    >>> try:
    ...     ApiSettings(port=99999)
    ... except ValidationError as exc:
    ...     print(_first_error(exc, lambda loc: "flag --port"))
    config: invalid value for 'port' (flag --port): Input should be less than or equal to 65535 (got 99999)
    """
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    where = origin(loc)
    alias = _ALIASES.get(loc[:2])
    if where == "default" and alias is not None:  # the value came in under its old name
        loc = alias + loc[2:]
        where = origin(loc)
    key = ".".join(str(p) for p in loc) or "config"
    message = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = ""
    secret = key in ("coingecko_api_key", "store.url")  # a URL may hold a password
    if not isinstance(value, dict) and not secret and repr(value) not in message:
        shown = f" (got {value!r})"
    return f"config: invalid value for '{key}' ({where}): {message}{shown}"


_CITY_NAMES = {  # IANA spells cities without accents; Brazilian zones as a Brazilian reads them
    "America/Sao_Paulo": "São Paulo", "America/Belem": "Belém", "America/Maceio": "Maceió",
    "America/Cuiaba": "Cuiabá", "America/Araguaina": "Araguaína", "America/Santarem": "Santarém",
    "America/Eirunepe": "Eirunepé", "America/Noronha": "Fernando de Noronha",
    "America/Bahia": "Salvador",
}


def zone_city(name: str) -> str:
    """The city a time zone is named after, as a reader would write it.

    >>> zone_city("America/Sao_Paulo"), zone_city("America/New_York"), zone_city("UTC")
    ('São Paulo', 'New York', 'UTC')
    """
    return _CITY_NAMES.get(name) or name.rsplit("/", 1)[-1].replace("_", " ")
