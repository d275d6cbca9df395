"""spark-submit entry point: ``spark-submit jobs/etl.py --source movielens --input PATH ...``."""

import sys

from recsys.jobs.etl import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
