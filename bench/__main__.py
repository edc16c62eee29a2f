"""`python -m bench`: the SMS-rush benchmark (bench/runner.py)."""
import sys

from bench.runner import main

if __name__ == "__main__":
    sys.exit(main())
