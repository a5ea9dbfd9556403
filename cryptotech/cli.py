"""The ``cryptotech`` command: run, demo, backtest, backfill.

Every command reads settings from ``config.toml`` (or ``--config``) and ``CRYPTOTECH_*``
environment variables; flags override both. An invalid setting prints one line naming the
key and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptotech import __version__
from cryptotech.config import Settings, format_duration, load_settings, parse_duration, zone_city
from cryptotech.errors import ConfigError, CryptoTechError
from cryptotech.sources import live_source
from cryptotech.storage import describe_target, is_postgres_url, open_store, store_target

log = logging.getLogger("cryptotech")


def _duration_arg(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptotech",
        description="Live crypto prices with online-learned forecasts beside the naive one.",
    )
    parser.add_argument("--version", action="version", version=f"cryptotech {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bt = sub.add_parser(
        "backtest",
        help="replay price files through the learner as fast as it can",
        description="Replay OHLCV CSV files (time column timestamp/open_time/time/date, close, "
        "volume) or CoinGecko market_chart JSON files through the same learner the live "
        "engine uses, and report accuracy beside persistence ('price stays the same').",
    )
    bt.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="a file, or coin=FILE when the coin is not in the file name "
                         "(BTCUSDT_5m.csv is btc)")
    bt.add_argument("--horizon", type=_duration_arg, help="forecast horizon, e.g. 5m, 1h, 24h")
    bt.add_argument("--output", type=Path, help="write predictions with their outcome as CSV")
    bt.add_argument("--report", type=Path, help="write an HTML report with Plotly charts")
    bt.add_argument("--config", type=Path, help="settings file (default ./config.toml)")
    bt.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    bt.add_argument("--alertas", action="store_true",
                    help="also count how many alerts each [[alertas]] rule would have fired")
    bt.set_defaults(func=cmd_backtest)

    run = sub.add_parser(
        "run", help="the live engine, REST API, SSE stream and dashboard on one port",
        description="Poll CoinGecko (source from config), learn on every tick, store to SQLite, "
        "serve the API, /stream and /painel/. Stops cleanly on Ctrl+C or SIGTERM.")
    _server_flags(run)
    run.add_argument("--config", type=Path, help="settings file (default ./config.toml)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser(
        "demo", help="the whole product offline, on bundled real history replayed fast",
        description="Replay the bundled 30 days of real 5-minute prices through exactly the same "
        "engine, store and server as `run`, at SPEED seconds of market per second "
        "(default 3600: an hour of market per second). Needs no network.")
    _server_flags(demo)
    demo.add_argument("--speed", type=float, default=3600.0,
                      help="market seconds per wall second (default 3600)")
    demo.add_argument("--laps", type=int, default=None,
                      help="stop the replay after this many passes over the data, at least 1 "
                           "(default: start again, shifted in time, forever)")
    demo.add_argument("--config", type=Path, help="settings file (default ./config.toml)")
    demo.set_defaults(func=cmd_demo)

    fill = sub.add_parser(
        "backfill", help="store and learn the last day of CoinGecko history (market_chart)",
        description="Fetch /coins/{id}/market_chart for the last day (5-minute points) of every "
        "configured coin, within the credit budget, and run it through the learners.")
    fill.add_argument("--config", type=Path, help="settings file (default ./config.toml)")
    fill.add_argument("--db", type=Path, help="SQLite file (default from config)")
    fill.set_defaults(func=cmd_backfill)
    return parser


def _server_flags(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--db", type=Path, help="SQLite file (default from config)")
    where.add_argument("--store", metavar="PATH|URL",
                       help="the store: a SQLite file, or postgresql://user@host:5432/db to "
                            "keep everything in PostgreSQL (default: [store] url or path)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="port (default 8000)")


SERVER_FLAGS = {"store.path": "--db", "store.url": "--store", "api.host": "--host",
                "api.port": "--port"}


def _server_overrides(args: argparse.Namespace, default_db: Path | None = None) -> dict:
    url = args.store if is_postgres_url(args.store) else None
    db = args.db or (Path(args.store) if args.store and not url else None) or default_db
    return {"store": {"path": str(db) if db else None, "url": url},
            "api": {"host": args.host, "port": args.port}}


def _server_flags_of(args: argparse.Namespace) -> dict[str, str]:
    """Which flag set each key (``--store PATH`` sets store.path)."""
    if args.store and not is_postgres_url(args.store):
        return SERVER_FLAGS | {"store.path": "--store"}
    return SERVER_FLAGS


def check_store(settings: Settings) -> None:
    """Open the store once and close it: a store it cannot use (read-only, newer schema, a
    PostgreSQL server that refuses the URL or its credentials) is one line here, not a
    traceback from the server's start-up. A PostgreSQL URL that does not work is a setting
    error (exit 2, password hidden)."""
    from cryptotech.errors import StoreError

    target = store_target(settings)
    if not is_postgres_url(target):
        _check_db_folder(settings)
    try:
        open_store(target).close()
    except StoreError as exc:
        if is_postgres_url(target):
            raise ConfigError(f"cannot use --store / store.url: {exc}") from None
        raise


def bind_port(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for ``host:port``, bound now, before anything else starts.

    The server is handed these sockets, so a port that is busy (another CryptoTech, another
    program) is one line naming it before a banner, a database file or a source exists, and no
    other program can take the port between this check and the server's start. As asyncio
    does, the sockets set ``SO_REUSEADDR`` on POSIX (a port left in TIME_WAIT by the last run
    is free), but not on Windows, where it would let two servers share a port; there
    ``SO_EXCLUSIVEADDRUSE`` makes a busy port fail as it does elsewhere.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot use --host {host}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, address in dict.fromkeys((i[0], i[1], i[2], i[4]) for i in infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:  # IPv6 disabled on this machine: serve the other family
                if family != socket.AF_INET6 or exc.errno != errno.EADDRNOTAVAIL:
                    raise
                sockets.pop().close()
                continue
            sock.listen(2048)  # reserves the port: two SO_REUSEADDR sockets may share a bind
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno in (errno.EADDRINUSE, 10048):  # 10048: WSAEADDRINUSE
            why = "is already in use (another CryptoTech, or another program)"
        elif exc.errno in (errno.EACCES, 10013):  # 10013: WSAEACCES
            why = "needs privileges this user does not have"
        else:
            why = f"cannot be opened ({exc.strerror or exc})"
        raise ConfigError(f"port {port} on {host} {why}: choose another with --port, "
                          f"e.g. --port {port + 1 if 0 < port < 65535 else 8001}") from None
    if not sockets:
        raise ConfigError(f"cannot listen on {host}: no usable address; choose another with --host")
    return sockets


@contextlib.contextmanager
def _closed_on_error(sockets: list[socket.socket]) -> Iterator[None]:
    """Release the bound port if anything fails before the server takes it."""
    try:
        yield
    except BaseException:
        for sock in sockets:
            sock.close()
        raise


def serve(settings: Settings, source, banner: str, sockets: list[socket.socket]) -> int:
    """Run the app under uvicorn on ``sockets`` (from :func:`bind_port`) until SIGINT/SIGTERM."""
    import uvicorn

    from cryptotech.api.app import create_app
    from cryptotech.dashboard import mount_dashboard

    app = create_app(settings, source, extensions=[mount_dashboard])
    host, port = settings.api.host, sockets[0].getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    print(f"{banner}\n  painel:   {base}/painel/\n  API:      {base}/docs\n"
          f"  stream:   {base}/stream\n  status:   {base}/status\n"
          f"  banco:    {describe_target(store_target(settings))}\n"
          f"  horários: fuso de {zone_city(settings.timezone)}\nCtrl+C para parar.", flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=2, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
    return 0 if server.started else 1


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from(args, flags=_server_flags_of(args), **_server_overrides(args))
    sockets = bind_port(settings.api.host, settings.api.port)
    with _closed_on_error(sockets):
        check_store(settings)
        source = live_source(settings)
    return serve(settings, source, "CryptoTech: motor ao vivo (CoinGecko)", sockets)


def cmd_demo(args: argparse.Namespace) -> int:
    from cryptotech.sources.replay import ReplaySource, bundled_inputs

    if not args.speed > 0:
        print("--speed must be positive", file=sys.stderr)
        return 2
    if args.laps is not None and args.laps < 1:  # 0 passes would be a server with no data
        print("--laps must be at least 1 (leave it out to replay forever)", file=sys.stderr)
        return 2
    settings = settings_from(args, flags=_server_flags_of(args),
                             **_server_overrides(args, Path("cryptotech-demo.db")),
                             source={"backfill": False})
    inputs = [(coin, path) for coin, path in bundled_inputs() if coin in settings.coins]
    if not inputs:
        print("demo: none of the configured coins is in the bundled data "
              "(btc, eth, ada, sol, xrp, doge)", file=sys.stderr)
        return 2
    sockets = bind_port(settings.api.host, settings.api.port)
    with _closed_on_error(sockets):
        check_store(settings)
        with open_store(store_target(settings)) as store:
            resume = {coin: ts for coin, (_, ts) in store.last_ticks().items()}
        source = ReplaySource(inputs, speed=args.speed, resume_after=resume, laps=args.laps)
    return serve(settings, source, f"CryptoTech demo: dados reais de 30 dias a {args.speed:g}x",
                 sockets)


def cmd_backfill(args: argparse.Namespace) -> int:
    import asyncio

    from cryptotech.engine import Engine
    from cryptotech.hub import Hub
    from cryptotech.store import Store

    settings = settings_from(args, flags={"store.path": "--db"},
                             store={"path": str(args.db) if args.db else None})
    _check_db_folder(settings)
    source = live_source(settings)

    async def go() -> int:
        with Store(settings.store.path) as store:
            engine = Engine(settings, store, Hub(), None)
            await engine.start()
            ticks = await source.backfill()
            for tick in tqdm_ticks(ticks):
                await engine.handle(tick)
            await engine.stop()
            print(f"backfill: {_count(len(ticks), 'tick')} fetched for "
                  f"{_count(len(settings.coins), 'coin')}, {engine.ticks_processed} new; "
                  f"source: {source.status.state} ({source.status.message})")
            return 0 if ticks or source.status.state == "live" else 1

    return asyncio.run(go())


def tqdm_ticks(ticks):
    from tqdm import tqdm

    return tqdm(ticks, unit="tick", disable=not sys.stderr.isatty())


def _check_db_folder(settings: Settings) -> None:
    folder = Path(settings.store.path).expanduser().resolve().parent
    if not folder.is_dir():
        raise ConfigError(f"config: invalid value for 'store.path': folder {folder} does not exist")


def _count(n: int, noun: str) -> str:
    """``1 coin``, ``0 coins``, ``2 coins``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def settings_from(args: argparse.Namespace, flags: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    return load_settings(getattr(args, "config", None), flags=flags, **overrides)


def check_writable(path: Path, flag: str) -> None:
    """Raise :class:`ConfigError` (one line) unless a file can be written at ``path``.

    Checked before a long replay, by creating and removing a scratch file in the folder:
    that is what the write will need, on every platform (``os.access`` is unreliable on
    Windows), and it leaves nothing behind.
    """
    folder = path.expanduser().resolve().parent
    if path.is_dir():
        raise ConfigError(f"cannot write {flag} {path}: it is a folder")
    if not folder.is_dir():
        raise ConfigError(f"cannot write {flag} {path}: folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
        if path.exists():
            with open(path, "r+b"):
                pass
    except OSError as exc:
        raise ConfigError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None


def cmd_backtest(args: argparse.Namespace) -> int:
    from cryptotech.backtest import format_candidates, format_table, run_backtest, write_csv
    from cryptotech.report import write_report
    from cryptotech.sources.replay import Replay, parse_input

    settings = settings_from(args, flags={"model.horizon": "--horizon"},
                             model={"horizon": args.horizon})
    for path, flag in ((args.output, "--output"), (args.report, "--report")):
        if path is not None:
            check_writable(path, flag)
    replay = Replay(parse_input(arg, settings.coins) for arg in args.inputs)
    print(replay.describe(), file=sys.stderr)
    results = run_backtest(iter(replay), settings.model, total=len(replay),
                           progress=not args.no_progress)
    print(format_table(results))
    print("\ncandidates, each alone:\n" + format_candidates(results))
    print("skill = 1 - MAE/MAE_persistence (persistence: 'price stays the same'); "
          f"coverage of the {settings.model.interval_level:.0%} interval; "
          f"horizon {format_duration(settings.model.horizon)}. 'dir. hit' is '-' when only persistence "
          "was published: it never calls a direction.")
    if args.alertas:  # cryptotech.alerts.replay
        from cryptotech.alerts.replay import count_alerts, format_counts

        print("\n" + format_counts(*count_alerts(iter(replay), settings, len(replay),
                                                  not args.no_progress)))
    if args.output:
        n = write_csv(results, args.output)
        print(f"wrote {n} rows to {args.output}", file=sys.stderr)
    if args.report:
        size = write_report(results, args.report, settings)
        print(f"wrote report to {args.report} ({size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "websockets"):  # one line per request is not news
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except CryptoTechError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
