"""spark-submit entry point: ``spark-submit jobs/table.py list`` (see recsys.jobs.table)."""

import sys

from recsys.jobs.table import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
