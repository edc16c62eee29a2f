"""`python -m bench.granian_serve --host H --port P --workers N [--send-sms]`: the app `run.py serve`
serves, under granian instead of uvicorn, for `python -m bench --server granian` (issue 25) only.

The same steps as `run.py serve` before the server starts (the weak-key refusal, the schema
created once, the multiprocess metrics directory) and the same app factory, workers and
environment; granian with uvloop, HTTP/1 with keep-alive (its default), no access log. Not a way
to run the service: granian is not in requirements.txt (install it into the venv to measure)."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import sys


def main(argv: list[str] | None = None) -> int:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.server import Server

    import run
    from web.settings import load_settings

    args = run.build_parser().parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    settings = load_settings()
    if refused := run.weak_secret(settings):
        print(refused, file=sys.stderr, flush=True)
        return 2
    args.workers = args.workers or run.default_workers(settings)
    if args.send_sms:
        os.environ["SMS_IN_SERVER"] = "1"
    asyncio.run(run.with_db(settings, run._nothing, args))
    print(f"Serving (granian) on http://{args.host}:{args.port}", flush=True)
    made_dir = run.metrics_dir(settings, args.workers)
    # Workers started afresh, as uvicorn's are: forked (granian's default on Linux), they would
    # inherit this process's prometheus-client, imported before PROMETHEUS_MULTIPROC_DIR was
    # set, and each answer /metrics with its own counts only.
    multiprocessing.set_start_method("spawn", force=True)
    try:
        Server("web.app:app_factory", factory=True, address=args.host, port=args.port,
               interface=Interfaces.ASGI, workers=args.workers, loop=Loops.uvloop, http=HTTPModes.http1,
               websockets=False, log_access=False).serve()
    finally:
        if made_dir:
            shutil.rmtree(made_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
