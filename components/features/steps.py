"""Pipeline-facing steps of the feature family: an applied store travels between steps as a folder artifact.

Each step that changes the store works on a copy (input artifacts are read-only on every platform); with Redis
and a SQL registry the folder only carries configuration and the state lives in the servers.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from components._core.artifacts import local_path
from components.features.materialize import MaterializeConfig, MaterializeResult, materialize


def materialize_into(store_dir: str, output_dir: str, report_uri: str,
                     config: MaterializeConfig | dict[str, Any] | str | None = None) -> MaterializeResult:
    """Copy the applied store at ``store_dir`` to ``output_dir`` and materialize there; the input stays as it was."""
    src, dst = Path(local_path(store_dir)), Path(local_path(output_dir))
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return materialize(str(dst), report_uri, config)
