"""The benchmark suite: ``python benchmarks/run.py [--quick] [--only NAMES] [--repeats N]``.

Runs every section listed in ``SECTIONS`` in order, prints one markdown report (the machine,
the load average, a table or two per section) and writes it as JSON to
``benchmarks/results/latest.json`` (and the markdown to ``latest.md``). The JSON is rewritten
after each section, so an interrupted run keeps what it measured.

Adding a section: write ``benchmarks/bench_<name>.py`` with ``NAME``, ``TITLE`` and
``run(ctx) -> dict`` (see ``common.py``), and add its module name to ``SECTIONS``.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

# In order. Later sections reuse what earlier ones measured (through ctx.cache), so each
# figure is computed once per run; every module also runs alone.
SECTIONS = [
    "bench_accuracy",  # 1. accuracy vs persistence, last 30 days (issue 2)
    "bench_engine",  # 2. backtest throughput vs the bare River loop (the ceiling)
    "bench_seed",  # 3. the seed's batch RandomForest vs the online engine
    "bench_scale",  # 4. CPU and memory as coins grow, one process
    "bench_store",  # 5. store: ticks/s persisted, checkpoints, recovery (issue 3)
    "bench_api",  # 6. API and SSE (issue 4)
    "bench_dashboard",  # 7. tick-to-chart latency in Chromium (issue 5)
]


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--only", default="",
                   help="comma-separated section names or modules (e.g. accuracy,seed)")
    p.add_argument("--markdown", type=Path, default=None,
                   help="markdown file to write (default: next to the JSON, .md)")
    p.add_argument("--list", action="store_true", help="list the sections and exit")
    args = p.parse_args(argv)
    modules = [importlib.import_module(name) for name in SECTIONS]
    if args.list:
        for m in modules:
            print(f"{m.NAME:10s} {m.__name__:16s} {m.TITLE}")
        return 0
    if args.only:
        wanted = {w.strip() for w in args.only.split(",") if w.strip()}
        known = {m.NAME for m in modules} | {m.__name__ for m in modules}
        unknown = wanted - known
        if unknown:
            p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
        modules = [m for m in modules if m.NAME in wanted or m.__name__ in wanted]
    out = args.output or common.RESULTS / "latest.json"
    md = args.markdown or out.with_suffix(".md")

    ctx = common.make_context(args)
    report = common.new_report(ctx)
    common.log(f"benchmarks ({report['mode']}, {ctx.repeats} repeat(s)), data: "
               f"{ctx.data.describe()}, load {report['load_1min']['start']}")
    start = time.perf_counter()
    failed = 0
    for module in modules:
        section = common.run_section(module, ctx)
        failed += bool(section.get("error"))
        report["sections"][module.NAME] = section
        report["seconds"] = time.perf_counter() - start
        common.write_json(report, out)
    report["load_1min"]["end"] = common.load_1min()
    report["seconds"] = time.perf_counter() - start
    common.write_json(report, out)
    text = common.render_report(report)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text, encoding="utf-8")
    print(text)
    common.log(f"done in {report['seconds']:.0f} s; wrote {out} and {md}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
