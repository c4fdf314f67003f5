"""Writing records as JSON lines, atomically."""

import json
from pathlib import Path
from typing import Any


def write_jsonl(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Write records as JSON lines (atomically: a crash leaves the old file or the new one, never half)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp.replace(path)
    return path
