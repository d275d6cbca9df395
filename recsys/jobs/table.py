"""``recsys table list|show NAME|history NAME|optimize NAME|vacuum NAME``: inspect and maintain tables."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from recsys.jobs.common import JobContext, common_parent, parse_job_args


def _print_rows(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def _list(ctx: JobContext) -> int:
    store = ctx.store
    rows = []
    for name in store.list_tables():
        snap = store.snapshot(name)
        rows.append({"table": name, "version": snap.version, "files": len(snap.files),
                     "rows": snap.num_records if snap.num_records is not None else "?",
                     "partitioned_by": ",".join(snap.partition_columns) or "-"})
    if not rows:
        print(f"no tables under {store.root}")
        return 0
    _print_rows(rows, ["table", "version", "rows", "files", "partitioned_by"])
    return 0


def _show(ctx: JobContext, name: str, version: int | None, limit: int) -> int:
    store = ctx.store
    store.require(name)
    snap = store.snapshot(name, version)
    print(f"table {name} at {snap.uri}, version {snap.version}, {len(snap.files)} files, "
          f"{snap.num_records if snap.num_records is not None else '?'} rows")
    print("partitioned by: " + (", ".join(snap.partition_columns) or "-"))
    print(snap.schema.treeString() if hasattr(snap.schema, "treeString") else snap.schema.simpleString())
    if limit > 0:
        store.read_snapshot(snap).show(limit, truncate=60)
    return 0


def _summarise(parameters: dict[str, Any], width: int = 80) -> str:
    """Short form of a commit's parameters (CREATE TABLE carries the whole metadata: leave it out)."""
    shown = {k: v for k, v in parameters.items() if k not in ("metadata", "protocol", "location")}
    text = json.dumps(shown, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def _history(ctx: JobContext, name: str, limit: int) -> int:
    ctx.store.require(name)
    rows = []
    for entry in ctx.store.history(name, limit):
        ts = datetime.fromtimestamp(entry.get("timestamp", 0) / 1000, tz=timezone.utc)
        metrics = entry.get("operationMetrics") or {}
        rows.append({
            "version": entry.get("version"), "timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"),
            "operation": entry.get("operation"),
            "parameters": _summarise(entry.get("operationParameters", {})),
            "note": entry.get("recsys.operation", ""),
            "files_added": metrics.get("numFiles", metrics.get("numAddedFiles", "")),
        })
    _print_rows(rows, ["version", "timestamp", "operation", "parameters", "note"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsys table", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    common = [common_parent()]
    sub.add_parser("list", parents=common, help="tables under the lakehouse root with version, rows and files")
    show = sub.add_parser("show", parents=common, help="schema, partitioning and first rows of a table")
    show.add_argument("name")
    show.add_argument("--version", type=int, default=None, help="time travel to this version")
    show.add_argument("--limit", type=int, default=10, help="rows to print (0: none)")
    hist = sub.add_parser("history", parents=common, help="commit history of a table")
    hist.add_argument("name")
    hist.add_argument("--limit", type=int, default=None)
    opt = sub.add_parser("optimize", parents=common, help="compact small files into bigger ones (a new version)")
    opt.add_argument("name")
    vac = sub.add_parser("vacuum", parents=common,
                         help="delete files no longer referenced (orphans of failed writes too)")
    vac.add_argument("name")
    vac.add_argument("--retention-hours", type=int, default=None,
                     help="keep files referenced by versions younger than this (default storage.vacuum_...)")
    vac.add_argument("--dry-run", action="store_true", help="list the files without deleting them")
    vac.add_argument("--allow-short-retention", action="store_true",
                     help="allow a retention under 1 hour (only when no job is writing the table)")
    ctx = parse_job_args(parser, argv, add_common=False)
    args = ctx.args
    if args.action == "list":
        return _list(ctx)
    if args.action == "show":
        return _show(ctx, args.name, args.version, args.limit)
    if args.action == "history":
        return _history(ctx, args.name, args.limit)
    ctx.store.require(args.name)
    if args.action == "optimize":
        print(json.dumps(ctx.store.optimize(args.name), indent=2, default=str))
        return 0
    try:
        files = ctx.store.vacuum(args.name, args.retention_hours, args.dry_run, args.allow_short_retention)
    except ValueError as exc:
        sys.stderr.write(f"recsys table vacuum: {exc}\n")
        return 2
    print(("would delete" if args.dry_run else "deleted") + f" {len(files)} files")
    for path in files:
        print("  " + path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
