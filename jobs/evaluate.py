"""spark-submit entry point: ``spark-submit jobs/evaluate.py --env cluster`` (see recsys.jobs.evaluate)."""

import sys

from recsys.jobs.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
