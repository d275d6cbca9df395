"""spark-submit entry point: ``spark-submit jobs/synth.py --users U --items I --interactions N --output PATH``."""

import sys

from recsys.jobs.synth import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
