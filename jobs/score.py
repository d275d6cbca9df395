"""spark-submit entry point: ``spark-submit jobs/score.py --env cluster`` (see recsys.jobs.score)."""

import sys

from recsys.jobs.score import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
