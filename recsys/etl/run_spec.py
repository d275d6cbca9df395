"""What one ETL run is: its source, input, date and mode, and its deterministic run id."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pyarrow import fs as pafs

from recsys.etl.errors import InputError
from recsys.lakehouse.filesystems import resolve_paths


@dataclass(frozen=True)
class RunSpec:
    source: str
    input_path: str
    run_date: dt.date
    mode: str
    run_id: str = ""  # "" = derived by run_etl from the files it reads (see make_run_id)


def file_sizes(uris: Sequence[str]) -> list[tuple[str, int]]:
    """(uri, size) of each file (one metadata call per file system, no Spark job)."""
    if not uris:
        return []
    filesystem, paths = resolve_paths(uris)  # one input folder: one filesystem
    infos = filesystem.get_file_info(paths)
    if missing := [u for u, i in zip(uris, infos, strict=True) if i.type == pafs.FileType.NotFound]:
        raise InputError(f"input file(s) not found (moved or deleted while the job ran?): {missing[:3]}")
    return [(u, int(i.size or 0)) for u, i in zip(uris, infos, strict=True)]


def make_run_id(source: str, mode: str, run_date: dt.date, input_path: str,
                input_files: Sequence[tuple[str, int]] = ()) -> str:
    """Deterministic: the same source, mode, date, input path and input files (``(uri, size)`` of every file the
    run reads; modification times left out, so a copy of the same files is the same input) give the same run
    id, so a re-run replaces what it wrote, while another batch of files in the same folder on the same date is
    another run. Files under the folder that the run does not read play no part."""
    digest = hashlib.sha1(input_path.encode("utf-8"))
    for uri, size in sorted(input_files):
        digest.update(f"\n{uri}\t{size}".encode())
    return f"{source}-{mode}-{run_date.isoformat()}-{digest.hexdigest()[:10]}"
