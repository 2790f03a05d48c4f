"""How long each test file takes, so that ``pytest -n auto --dist loadfile`` starts the
longest files first and its workers finish together.

pytest-xdist hands out whole files (``--dist loadfile``) and, by default, the files with the
most tests first. Here cost and count disagree: a file of two tests that train or reproduce a
model's PublicTest figures takes minutes, one of forty config checks a second; handed out
last, the long files left one worker busy and the other idle for the last few minutes of CI.
``tests/conftest.py`` orders files by the seconds in ``file_costs.json`` instead, longest
first (a file not in it counts as :data:`UNKNOWN_S`); the soak test stays last.

Refresh the table after adding or changing slow tests (any machine: only the order counts)::

    pytest -n auto --dist loadfile --durations=0 > durations.log
    python tests/file_costs.py durations.log > tests/file_costs.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "file_costs.json"
#: Seconds assumed for a test file that is not in the table (a new one).
UNKNOWN_S = 10.0
#: A ``--durations=0`` line: "12.34s call     tests/edge/test_x.py::test_y[param]".
_LINE = re.compile(r"^\s*([\d.]+)s\s+(?:setup|call|teardown)\s+([^:\s]+)::")


def load_costs(path: Path = TABLE) -> dict[str, float]:
    """``{"tests/edge/test_x.py": seconds}``; empty when the table is missing or unreadable
    (then pytest-xdist's own order is kept)."""
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data["seconds"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def costs_from_durations(lines) -> dict[str, float]:
    """Seconds per test file summed from pytest's ``--durations=0`` report."""
    total: Counter[str] = Counter()
    for line in lines:
        match = _LINE.match(line)
        if match:
            total[match.group(2)] += float(match.group(1))
    return {name: round(seconds, 1) for name, seconds in total.most_common()}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8", errors="replace") as fh:
        seconds = costs_from_durations(fh)
    if not seconds:
        print(f"{argv[0]}: no --durations=0 lines in it", file=sys.stderr)
        return 1
    table = {
        "about": "seconds per test file (pytest --durations=0), for the order of "
        "pytest-xdist's files: see tests/file_costs.py",
        "seconds": seconds,
    }
    print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
