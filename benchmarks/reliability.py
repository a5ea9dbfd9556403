"""The reliability suite (issue 7) as one bounded command.

    python benchmarks/reliability.py            # full run, about 15 minutes on 2 cores
    python benchmarks/reliability.py --short    # the short version CI runs, about 3 minutes
    python benchmarks/reliability.py --only upstream,stream --keep

Prints a markdown table (faults injected vs survived, bad inputs tried vs answered cleanly,
events lost) and writes ``benchmarks/results/reliability.json``; exits 1 if any scenario
failed. The scenarios live in ``tests/reliability`` (test code reusing ``tests/conftest.py``);
``tests/test_reliability.py`` runs the short version under pytest.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from reliability.core import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
