"""spark-submit entry point: ``spark-submit jobs/prepare.py --env cluster`` (see recsys.jobs.prepare)."""

import sys

from recsys.jobs.prepare import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
