"""The ``cryptotech`` command: run, demo, backtest, backfill.

Every command reads settings from ``config.toml`` (or ``--config``) and ``CRYPTOTECH_*``
environment variables; flags override both. An invalid setting prints one line naming the
key and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from cryptotech import __version__
from cryptotech.config import Settings, load_settings, parse_duration
from cryptotech.errors import ConfigError, CryptoTechError

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
    bt.set_defaults(func=cmd_backtest)
    return parser


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(getattr(args, "config", None), **overrides)


def cmd_backtest(args: argparse.Namespace) -> int:
    from cryptotech.backtest import format_table, run_backtest, write_csv, write_report
    from cryptotech.sources.replay import Replay, parse_input

    settings = settings_from(args, model={"horizon": args.horizon})
    replay = Replay(parse_input(arg, settings.coins) for arg in args.inputs)
    print(replay.describe(), file=sys.stderr)
    results = run_backtest(iter(replay), settings.model, total=len(replay),
                           progress=not args.no_progress)
    print(format_table(results))
    print("skill = 1 - MAE/MAE_persistence (persistence: 'price stays the same'); "
          f"coverage of the {settings.model.interval_level:.0%} interval; "
          f"horizon {args.horizon or '1h'}")
    if args.output:
        n = write_csv(results, args.output)
        print(f"wrote {n} rows to {args.output}", file=sys.stderr)
    if args.report:
        write_report(results, args.report)
        print(f"wrote report to {args.report}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
