"""What the benchmark scripts alone share: one writer for a table-of-rows result."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qetvec.bench.report import markdown_table
from qetvec.io import write_bytes_atomic


def write_rows_result(result: dict[str, Any], title: str, columns: list[str], out_dir: Path) -> str:
    """Write result.json and a result.md titled `title` with result["rows"] as a table of
    `columns` (plus result["command"] and result["setup"]); return the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / "result.json", json.dumps(result, indent=1).encode())
    table = markdown_table(result["rows"], columns)
    write_bytes_atomic(out_dir / "result.md", f"# {title}\n\nCommand: `{result['command']}`\n\n"
                       f"{result['setup']}\n\n{table}\n".encode())
    return table
