"""Entry point of the emulator process: `python -m kube.server [--port N] [--log FILE]`.

Started by fixtures.py as a subprocess (so kubectl, kopf and the test each talk to it over HTTP like
to a real API server). Prints `READY <url>` on stdout once it listens; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import kmock

from .app import ApiServer


async def serve(port: int | None, log: Path | None) -> None:
    handler = ApiServer(log_path=log)
    async with handler, kmock.Server(handler, port=port, user_agent="") as server:
        handler.address = f"{server.host}:{server.port}"
        print(f"READY http://{server.host}:{server.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--log", type=Path, default=None, help="append one JSON line per request here")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.log))
    sys.exit(0)


if __name__ == "__main__":
    main()
