"""`python -m bench`: the SMS-rush benchmark (bench/runner.py); `python -m bench --healthz`:
/healthz through the full stack against the bare app (bench/healthz.py)."""
import sys

from bench.runner import main

if __name__ == "__main__":
    if "--healthz" in sys.argv[1:]:
        from bench import healthz

        sys.exit(healthz.main([a for a in sys.argv[1:] if a != "--healthz"]))
    sys.exit(main())
