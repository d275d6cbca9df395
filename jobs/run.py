"""spark-submit entry point: ``spark-submit jobs/run.py --env cluster`` (see recsys.jobs.run)."""

import sys

from recsys.jobs.run import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
