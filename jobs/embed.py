"""Entry point for `spark-submit` / `python jobs/embed.py`: see recsys.jobs.embed."""

import sys

from recsys.jobs.embed import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
