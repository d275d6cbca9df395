"""``recsys`` command: one subcommand per job (``recsys <job> --help`` for its options)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from recsys.config import ConfigError
from recsys.etl.errors import InputError
from recsys.lakehouse import TableError

# subcommand -> module in recsys.jobs with main(argv) -> int
COMMANDS: dict[str, str] = {
    "table": "Inspect and maintain Delta tables: list, show, history, optimize, vacuum",
    "etl": "Raw interactions + item catalog -> clean, pseudonymized, joined Delta tables",
    "synth": "Generate a synthetic dataset (MovieLens or events layout) with Spark",
    "prepare": "Build training tables: splits, history examples, item tokens",
    "train": "Fine-tune the transformer recommender with Ray Train, fed by Petastorm",
    "embed": "Embed all items and users with a trained model",
    "score": "Top-K recommendations for every user",
    "evaluate": "Ranking metrics for the model and baselines on the test split",
    "run": "The whole pipeline: etl -> prepare -> train -> embed -> score -> evaluate",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {text}" for name, text in COMMANDS.items()]
    return "usage: recsys <command> [options]\n\ncommands:\n" + "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        sys.stderr.write(f"recsys: unknown command {command!r}\n\n{_usage()}")
        return 2
    try:
        module = importlib.import_module(f"recsys.jobs.{command}")
    except ModuleNotFoundError as exc:
        if exc.name == f"recsys.jobs.{command}":
            sys.stderr.write(f"recsys: command {command!r} is not available in this build\n")
            return 2
        raise
    try:
        return int(module.main(rest))
    except (ConfigError, InputError, TableError) as exc:
        sys.stderr.write(f"recsys {command}: error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
