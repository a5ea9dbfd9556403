"""What every scenario shares: the run context, result rows, the secret watch, the report.

A scenario is a function ``run(ctx) -> list[Row]``. Each :class:`Row` counts what was
injected (faults) or tried (bad inputs) and how many were survived / answered cleanly, the
events lost where that can be measured, and named checks. A row passes when every injected
fault was survived, every check holds and no event was lost; an exception inside a scenario
becomes a failed row (the other scenarios still run) and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results" / "reliability.json"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def say(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    kind: str  # "faults" (injected / survived), "inputs" (tried / answered cleanly) or
    # "places" (looked at / clean)
    tried: int = 0
    ok: int = 0
    lost: int | None = None  # events lost; None where it does not apply
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def check(self, condition: bool, what: str) -> bool:
        """Record a named check; a false one fails the row with ``what`` as the reason."""
        if not condition:
            self.failures.append(what)
        return bool(condition)

    def count(self, survived: bool, what: str = "") -> None:
        """One more fault injected (or input tried); ``what`` says why it was not survived."""
        self.tried += 1
        if survived:
            self.ok += 1
        elif what and len(self.failures) < 20:
            self.failures.append(what)

    @property
    def passed(self) -> bool:
        return (self.tried > 0 and self.ok == self.tried and not self.failures
                and not self.lost)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


class SecretWatch:
    """Where the planted key must never appear: in-process log lines and response bytes.

    Log records of every logger are written to ``logs/in-process.log`` (message, arguments
    and traceback text), and response bytes are scanned as they arrive (with an overlap, so
    a key split between two reads is still seen). Child processes write their own log files
    under ``logs/``; the secrets scenario reads them all, and every database file.
    """

    def __init__(self, key: str, folder: Path):
        self.key = key
        self._needle = key.encode()
        self.response_bytes = 0
        self.responses = 0
        self.hits: list[str] = []
        self._tails: dict[object, bytes] = {}
        self.log_path = folder / "in-process.log"
        self._handler = logging.FileHandler(self.log_path, encoding="utf-8")
        self._handler.setLevel(logging.DEBUG)
        self._handler.setFormatter(_WithArgs(LOG_FORMAT))

    def install(self) -> None:
        logging.getLogger().addHandler(self._handler)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self._handler)
        self._handler.close()

    def response(self, stream: object, chunk: bytes, where: str) -> None:
        """Scan the next ``chunk`` of the response ``stream`` (any hashable id)."""
        if stream not in self._tails:
            self.responses += 1
        data = self._tails.get(stream, b"") + chunk
        if self._needle in data:
            self.hits.append(f"response of {where}")
        self.response_bytes += len(chunk)
        self._tails[stream] = data[-(len(self._needle) - 1):]
        if len(self._tails) > 10_000:  # finished streams: their tails are no longer needed
            self._tails.clear()

    def whole(self, body: bytes, where: str) -> None:
        self.response(object(), body, where)


class _WithArgs(logging.Formatter):
    """The formatted line plus the raw arguments (a secret could hide in an unused one)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.args:
            line += f"  args={record.args!r}"
        return line


@dataclass
class Context:
    """What a scenario gets: the mode, a work folder, a seed, the planted key."""

    short: bool
    workdir: Path
    seed: int
    key: str
    watch: SecretWatch
    started: float = field(default_factory=time.monotonic)

    def pick(self, full: Any, short: Any) -> Any:
        return short if self.short else full

    def folder(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log_file(self, name: str) -> Path:
        return self.folder("logs") / f"{name}.log"

    def child_env(self, **values: str) -> dict[str, str]:
        """The environment for a ``cryptotech`` child: no outside CRYPTOTECH_* settings, the
        planted key, quiet defaults, and ``values``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")}
        env["CRYPTOTECH_COINGECKO_API_KEY"] = self.key
        env["PYTHONUNBUFFERED"] = "1"
        env.update(values)
        return env


def new_context(short: bool, seed: int, workdir: Path | None = None) -> Context:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="cryptotech-reliability-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # A fake key of CoinGecko's shape, made now: nothing real, nothing committed.
    key = "CG-" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    return Context(short=short, workdir=workdir, seed=seed, key=key,
                   watch=SecretWatch(key, logs))


# -- running scenarios -------------------------------------------------------------------------

Scenario = Callable[[Context], list[Row]]


SCENARIOS: dict[str, tuple[str, str]] = {  # name -> (title, module), in the order they run
    "upstream": ("1. Upstream faults", "upstream"),
    "crashes": ("2. Crashes", "crashes"),
    "storage": ("3. Storage trouble", "storage"),
    "stream": ("4. SSE", "stream"),
    "api": ("5. API input", "api_input"),
    "shutdown": ("6. Shutdown", "shutdown"),
    "secrets": ("7. Secrets (last: after all of the above)", "secret_key"),
}


def scenarios() -> dict[str, tuple[str, str]]:
    return dict(SCENARIOS)


def run_scenario(ctx: Context, name: str) -> list[Row]:
    """Run one scenario; an exception becomes a failed row naming it."""
    import importlib

    title, module = SCENARIOS[name]
    fn: Scenario = importlib.import_module(f"reliability.{module}").run
    say(f"{title} ({'short' if ctx.short else 'full'})")
    started = time.monotonic()
    try:
        rows = fn(ctx)
    except Exception as exc:  # noqa: BLE001 - reported as a failed scenario
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        say(f"{title}: crashed\n{traceback.format_exc()}")
        rows = [Row(title, "faults", failures=[f"scenario crashed: {detail}"])]
    took = time.monotonic() - started
    for row in rows:
        row.seconds = row.seconds or took / len(rows)
        row.notes = [scrub(n) for n in row.notes]
        row.failures = [scrub(f) for f in row.failures]
    for row in rows:
        say(f"  {row.scenario}: {row.ok}/{row.tried}, lost {row.lost}, "
            f"{'ok' if row.passed else 'FAILED: ' + '; '.join(row.failures)}")
    return rows


# -- the report --------------------------------------------------------------------------------

_TMP = re.compile(re.escape(tempfile.gettempdir().rstrip(os.sep)) + r"[/\\][^\s'\"(),;:]*")


def scrub(text: str) -> str:
    """``text`` without this machine's paths (temporary files become ``<tmp>``)."""
    return _TMP.sub("<tmp>", text).replace(str(REPO), "<repo>")



def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: Iterable[Row]) -> str:
    lines = ["| scenario | injected / tried | survived / answered cleanly | events lost | result"
             " | notes |", "|---|---:|---:|---:|---|---|"]
    for row in rows:
        what = row.kind
        notes = "; ".join(row.notes)
        if row.failures:
            notes = "**" + "; ".join(row.failures[:5]) + "**" + (f"; {notes}" if notes else "")
        lines.append(
            f"| {_cell(row.scenario)} | {row.tried} {what} | {row.ok} | "
            f"{'–' if row.lost is None else row.lost} | {'ok' if row.passed else '**FAILED**'}"
            f" | {_cell(notes)} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    def commit() -> str | None:
        try:
            return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                  capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "load_1min": load, "commit": commit(),
            "user": "root" if hasattr(os, "geteuid") and os.geteuid() == 0 else "non-root"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/reliability.py",
        description="Run the reliability suite (issue 7) and print a table of faults injected "
        "vs survived, bad inputs tried vs answered cleanly and events lost. Exits 1 if any "
        "scenario failed.")
    parser.add_argument("--short", action="store_true",
                        help="the short version CI runs (about 3 minutes; full: about 15)")
    parser.add_argument("--only", default="",
                        help="comma-separated scenarios: " + ", ".join(scenarios()))
    parser.add_argument("--seed", type=int, default=20250607, help="random seed")
    parser.add_argument("--json", type=Path, default=RESULTS,
                        help=f"where to write the JSON (default {RESULTS.relative_to(REPO)})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (logs, databases) and print its path")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(scenarios())
    unknown = [n for n in names if n not in scenarios()]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:  # the console shows warnings; the file, all
        handler.setLevel(logging.WARNING)
    for noisy in ("httpx", "httpcore", "hpack", "websockets"):  # not news, and not secrets
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx = new_context(args.short, args.seed)
    ctx.watch.install()
    began = time.monotonic()
    start_info = machine()
    rows: list[Row] = []
    try:
        for name in names:
            rows += run_scenario(ctx, name)
    finally:
        ctx.watch.uninstall()
        if not args.keep:
            shutil.rmtree(ctx.workdir, ignore_errors=True)
    took = time.monotonic() - began
    passed = all(row.passed for row in rows)
    report = (f"Reliability suite ({'short' if args.short else 'full'}), "
              f"{took / 60:.1f} min on {start_info['cores']} cores "
              f"({start_info['cpu']}), load {start_info['load_1min']:.2f} at start\n\n"
              + table(rows) + "\n\n" + ("every scenario passed" if passed else
                                          "SOME SCENARIOS FAILED"))
    print(report, flush=True)
    if args.keep:
        say(f"work folder kept: {ctx.workdir}")
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "mode": "short" if args.short else "full", "seed": args.seed,
           "seconds": round(took, 1), "passed": passed, "machine": start_info,
           "scenarios": names, "rows": [r.to_dict() for r in rows]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    return 0 if passed else 1
