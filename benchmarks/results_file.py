"""The one way the benchmark scripts write their JSON results."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: Path | None, data: dict, indent: int = 2) -> None:
    """Write ``data`` to ``path`` (folders made as needed) and say so; nothing if ``path`` is
    None."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent) + "\n")
    print(f"wrote {path}", flush=True)
