"""Entry point for `spark-submit` / `python jobs/train.py`: see recsys.jobs.train."""

import sys

from recsys.jobs.train import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
