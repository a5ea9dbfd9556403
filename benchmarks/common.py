"""Shared plumbing of the benchmark suite: context, data, statistics, tables, machine info.

A benchmark *section* is a module with ``NAME`` (key in the JSON and for ``--only``),
``TITLE`` and ``run(ctx) -> dict``. The dict it returns holds ``tables`` (each
``{"title", "columns", "rows", "notes"}``, rows already formatted as strings), ``data`` (raw
numbers for the JSON) and ``notes``. ``run.py`` calls the sections listed in its ``SECTIONS``
in order; :func:`main_single` lets each module run alone with the same options.

Nothing here asserts on timings: figures are reported, never checked.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
# The benchmarks may read the shared data next to the repository; the package never does.
SHARED_HISTORY = REPO.parent / "shared" / "data" / "history" / "bybit-linear-5m"
COIN_ORDER = ("btc", "eth", "sol", "xrp", "ada", "doge")
DAY = 86400.0

# The candidate sets benchmarked: the default config and each candidate alone.
CONFIGS: dict[str, list[str]] = {
    "default": [],  # config.toml: no point candidate (persistence median, forecast spread)
    "bayes_linear": ["bayes_linear"],
    "hoeffding_tree": ["hoeffding_tree"],
    "arf": ["arf"],
}


def log(msg: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------------


class Dataset:
    """The real 5-minute series, from ../shared when present, else the bundled 30 days."""

    def __init__(self, folder: Path | None = None):
        from cryptotech.sources.replay import bundled_inputs, coin_from_name

        folder = Path(os.environ.get("CRYPTOTECH_BENCH_DATA", folder or SHARED_HISTORY))
        files = sorted(folder.glob("*_5m.csv*")) if folder.is_dir() else []
        if files:
            self.fallback = False
            self.source = str(folder)
            self.files = {coin_from_name(p): p for p in files}
        else:
            self.fallback = True
            self.source = "cryptotech/data (bundled 30 days; ../shared history not found)"
            self.files = dict(bundled_inputs())
        order = {c: i for i, c in enumerate(COIN_ORDER)}
        self.coins = sorted(self.files, key=lambda c: (order.get(c, 99), c))
        self._ticks: dict[str, list] = {}

    def ticks(self, coin: str) -> list:
        """Every valid tick of the coin's file, in time order (cached)."""
        if coin not in self._ticks:
            from cryptotech.sources.replay import load_file

            self._ticks[coin], _ = load_file(coin, self.files[coin])
        return self._ticks[coin]

    def window(self, coin: str, days: float) -> list:
        """The ticks of the last ``days`` days of the coin's series."""
        ticks = self.ticks(coin)
        if not ticks:
            return []
        start = ticks[-1].epoch - days * DAY
        return [t for t in ticks if t.epoch > start]

    def span_days(self, coin: str) -> float:
        ticks = self.ticks(coin)
        return (ticks[-1].epoch - ticks[0].epoch) / DAY + 300 / DAY if ticks else 0.0

    def describe(self) -> str:
        return f"{self.source} ({'fallback' if self.fallback else 'real history'})"


# -- context ---------------------------------------------------------------------------------


@dataclass
class Context:
    """What every section receives: mode, repeats, data, a cache shared between sections."""

    quick: bool = False
    repeats: int = 3
    data: Dataset = field(default_factory=Dataset)
    cache: dict = field(default_factory=dict)
    sections: dict = field(default_factory=dict)

    def pick(self, full, quick):
        """The full-mode or quick-mode value of a parameter."""
        return quick if self.quick else full


class Budget:
    """A wall-clock allowance for a loop: ``budget.over()`` once it is spent."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def over(self) -> bool:
        return self.elapsed() > self.seconds


# -- statistics and formatting ---------------------------------------------------------------


def stat(values) -> dict:
    """Median, min and max of repeated measurements (the raw values kept for the JSON)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def fmt(value, spec: str = "{:.3g}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return spec.format(value)


def fmt_stat(s: dict, spec: str = "{:.3g}") -> str:
    """``median (min–max)``, or just the value when there was one run."""
    if not s or s.get("median") is None:
        return "-"
    if s["n"] == 1:
        return fmt(s["median"], spec)
    return f"{fmt(s['median'], spec)} ({fmt(s['min'], spec)}–{fmt(s['max'], spec)})"


def num(value) -> str:
    """Significant digits whatever the coin's price scale."""
    return fmt(value, "{:.4g}")


def table(title: str, columns: list[str], rows: list[list], notes: list[str] | None = None) -> dict:
    return {"title": title, "columns": columns, "rows": [[str(c) for c in r] for r in rows],
            "notes": list(notes or [])}


def markdown_table(t: dict) -> str:
    lines = [f"**{t['title']}**", ""]
    lines.append("| " + " | ".join(t["columns"]) + " |")
    lines.append("|" + "|".join("---" for _ in t["columns"]) + "|")
    for row in t["rows"]:
        lines.append("| " + " | ".join(row) + " |")
    for note in t.get("notes", []):
        lines.append("")
        lines.append(f"- {note}")
    return "\n".join(lines)


def render_section(section: dict) -> str:
    parts = [f"### {section.get('title', section.get('name', '?'))}", ""]
    if section.get("error"):
        parts.append(f"**failed**: `{section['error'].strip().splitlines()[-1]}`")
    for t in section.get("tables", []):
        parts.append(markdown_table(t))
        parts.append("")
    for note in section.get("notes", []):
        parts.append(f"- {note}")
    return "\n".join(parts).rstrip() + "\n"


def render_machine(report: dict) -> str:
    m = report["machine"]
    la = report.get("load_1min", {})
    return (
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs ({m['cpus_usable']} usable), "
        f"{fmt(m['memory_gb'], '{:.1f}')} GB RAM, {m['platform']}; Python {m['python']}, "
        f"River {m['river']}, scikit-learn {m.get('scikit_learn') or '-'}, "
        f"pandas {m['pandas']}, numpy {m['numpy']}; commit {m.get('git_commit') or '-'}. "
        f"Date {report['started_at']}; mode {report['mode']}, {report['repeats']} repeat(s); "
        f"1-min load average {fmt(la.get('start'), '{:.2f}')} at start, "
        f"{fmt(la.get('end'), '{:.2f}')} at end. Data: {report['data']}."
    )


def render_report(report: dict) -> str:
    parts = ["## CryptoTech benchmarks", "", render_machine(report), ""]
    for section in report["sections"].values():
        parts.append(render_section(section))
    return "\n".join(parts)


# -- machine ---------------------------------------------------------------------------------


def load_1min() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def machine() -> dict:
    import numpy
    import pandas
    import river

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    try:
        import sklearn

        sk = sklearn.__version__
    except ImportError:
        sk = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                capture_output=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "river": river.__version__,
        "scikit_learn": sk,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "git_commit": commit,
    }


def memory_total_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- the online engine, run once per (coin, config, window) and shared between sections ------


def model_settings(config: str):
    """ModelSettings for a config: the defaults (as config.toml ships them) but the candidates.

    The learner's own rolling metrics keep their default window; whole-window figures are
    computed here from the outcomes (a larger metrics window would inflate the state size).
    """
    from cryptotech.config import ModelSettings

    return ModelSettings(candidates=CONFIGS[config])


def state_size(learner) -> dict:
    """Size of a learner's state: pickled bytes and the memory a fresh unpickled copy holds."""
    from cryptotech.learning.learner import dumps, loads

    blob = dumps(learner)
    gc.collect()
    tracemalloc.start()
    try:
        copy = loads(blob)
        traced = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del copy
    return {"pickle_kb": len(blob) / 1024, "memory_mb": traced / 1024**2}


def engine_run(ctx: Context, coin: str, config: str, days: float,
               size_marks: tuple[float, ...] = ()) -> dict:
    """Run the real learner over the last ``days`` of one coin (memoised in ``ctx.cache``).

    Returns the backtest's ``CoinResult`` (``result``), wall and CPU seconds spent in
    ``process`` (size measurements excluded), ``raw``: MAE and skill of each candidate's own
    forecast (before selection) over every outcome, and, at each of ``size_marks`` days of
    ticks learned (and at the end of the window), the learner's state size.
    """
    from cryptotech.backtest import CoinResult
    from cryptotech.learning.learner import CoinLearner

    key = ("engine", coin, config, float(days))
    # sizes are taken at the marks inside the window and always at its end
    marks = sorted({float(m) for m in size_marks if m < days} | {float(days)}) if size_marks else []
    hit = ctx.cache.get(key)
    if hit is not None and set(marks) <= set(hit["sizes"]):
        return hit
    ticks = ctx.data.window(coin, days)
    learner = CoinLearner(coin, model_settings(config))
    result = CoinResult(coin, learner=learner)
    start = ticks[0].epoch if ticks else 0.0
    cut_points = [next((i for i, t in enumerate(ticks) if t.epoch - start >= m * DAY - 1),
                       len(ticks) - 1) for m in marks]
    sizes: dict[float, dict] = {}
    models: Counter = Counter()
    wall = cpu = 0.0
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    # each candidate's own forecast, read from the prediction the learner just queued
    issued: dict[int, tuple] = {}
    raw_err: Counter = Counter()
    for i, tick in enumerate(ticks):
        predictions, outcomes = learner.process(tick)
        result.outcomes.extend(outcomes)
        for prediction in predictions:
            models[prediction.model] += 1
            item = learner.horizons[prediction.horizon].pending[-1]
            issued[id(item.prediction)] = (item.prediction, item.z_hat, item.sigma)
        for o in outcomes:
            entry = issued.pop(id(o.prediction), None)
            if entry is not None:
                p, z_hat, sigma = entry
                raw_err["persistence"] += abs(p.price - o.actual)
                for name, z in z_hat.items():
                    raw_err[name] += abs(p.price * math.exp(z * sigma) - o.actual)
        if i in cut_points:
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            for m, p in zip(marks, cut_points):
                if p == i:
                    sizes[m] = state_size(learner)
            w0, c0 = time.perf_counter(), time.process_time()
    wall += time.perf_counter() - w0
    cpu += time.process_time() - c0
    result.ticks, result.seconds = len(ticks), wall
    base = raw_err.get("persistence")
    n_out = len(result.outcomes)
    raw = {name: {"mae": e / n_out, "skill": 1.0 - e / base if base else None}
           for name, e in raw_err.items()} if n_out else {}
    out = {"result": result, "wall_s": wall, "cpu_s": cpu, "ticks": len(ticks), "raw": raw,
           "sizes": sizes, "published_models": dict(models),
           "first": ticks[0].ts if ticks else None, "last": ticks[-1].ts if ticks else None}
    ctx.cache[key] = out
    return out


# -- JSON ------------------------------------------------------------------------------------


def clean(obj):
    """JSON-safe: NaN/inf become null, tuples lists, datetimes ISO strings, keys strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(report), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)


# -- command line shared by run.py and each module run alone ----------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="short windows, fewer repeats and sizes (about two minutes in all)")
    p.add_argument("--repeats", type=int, default=None,
                   help="repeated runs per timed figure (default 3, 1 with --quick)")
    p.add_argument("--output", type=Path, default=None, help="JSON file to write")
    return p


def make_context(args) -> Context:
    repeats = args.repeats if args.repeats else (1 if args.quick else 3)
    return Context(quick=args.quick, repeats=max(1, min(repeats, 20)))


def new_report(ctx: Context) -> dict:
    return {
        "mode": "quick" if ctx.quick else "full",
        "repeats": ctx.repeats,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine(),
        "load_1min": {"start": load_1min(), "end": None},
        "data": ctx.data.describe(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "sections": {},
    }


def run_section(module, ctx: Context) -> dict:
    """Run one section; a failure is recorded (with its traceback), never raised."""
    import traceback

    log(f"section {module.NAME}: start")
    start = time.perf_counter()
    try:
        out = module.run(ctx)
    except Exception:  # a broken section must not hide the others' figures
        out = {"tables": [], "notes": [], "error": traceback.format_exc()}
        log(f"section {module.NAME}: FAILED\n{out['error']}")
    out.setdefault("title", module.TITLE)
    out["name"] = module.NAME
    out["seconds"] = time.perf_counter() - start
    ctx.sections[module.NAME] = out
    log(f"section {module.NAME}: done in {out['seconds']:.0f} s")
    return out


def main_single(module, argv=None) -> int:
    """``python benchmarks/bench_X.py [--quick]``: one section, table printed, JSON written
    to ``results/<name>-alone[-quick].json`` (not kept in git)."""
    args = parser(f"{module.TITLE} (one section of benchmarks/run.py)").parse_args(argv)
    ctx = make_context(args)
    report = new_report(ctx)
    section = run_section(module, ctx)
    report["sections"][module.NAME] = section
    report["load_1min"]["end"] = load_1min()
    out = args.output or RESULTS / f"{module.NAME}-alone{'-quick' if ctx.quick else ''}.json"
    write_json(report, out)
    print(render_report(report))
    log(f"wrote {out}")
    return 1 if section.get("error") else 0
