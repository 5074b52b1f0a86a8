"""``python -m emulators.stripe --host 127.0.0.1 --port 8402 [--state FILE] ...``"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from .server import Emulator, create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulators.stripe", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8402, help="0 picks a free port")
    parser.add_argument("--state", type=Path, help="JSON file the state survives restarts in")
    parser.add_argument("--api-key", help="accept only this key (default: any sk_/rk_ key)")
    parser.add_argument("--webhook-url", help="where events are posted")
    parser.add_argument("--webhook-secret", help="whsec_… signing secret")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    emulator = Emulator(
        state_path=args.state,
        api_key=args.api_key,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )
    runner = web.AppRunner(create_app(emulator), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = runner.addresses[0][1]
    # Tests wait for this line instead of polling the port.
    print(f"stripe emulator listening on http://{args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(parse_args()))


if __name__ == "__main__":
    main()
