"""Start every upstream stand-in on its own port: `python -m mocks [--host H] [--print-urls]`.

Each stand-in is its own ASGI app (its own `create_app()` factory); this launcher serves them
all from one process for the demo. Tests start the ones they need on ephemeral ports instead.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

import uvicorn

# (label for the demo's URL list, "module:factory", demo port). Ports match the defaults in
# app/core/config.py (TSUNAGU_*_URL).
STAND_INS: list[tuple[str, str, int]] = [
    ("マイナポータル stand-in / Myna Portal", "mocks.myna_portal:create_app", 8101),
    ("national-ID sign-in stand-in", "mocks.national_id.app:create_app", 8102),
    ("学習 platform stand-in / school platform", "mocks.school_platform:create_app", 8103),
    ("校務支援 stand-in / school affairs", "mocks.school_affairs:create_app", 8104),
    ("LINE stand-in / phone simulator", "mocks.line.app:create_app", 8105),
]


async def serve_all(
    host: str,
    print_urls: bool,
    only: list[str] | None = None,
    ephemeral: bool = False,
    prebuild: bool = False,
) -> None:
    chosen = [s for s in STAND_INS if only is None or s[1].partition(":")[0].rsplit(".", 1)[-1] in only]
    if prebuild:
        from mocks.world_data import demo_school_records

        demo_school_records().prebuild()
    servers = []
    for _label, target, port in chosen:
        module_name, _, factory = target.partition(":")
        asgi_app = getattr(importlib.import_module(module_name), factory)()
        config = uvicorn.Config(
            asgi_app,
            host=host,
            port=0 if ephemeral else port,
            log_config=None,
            lifespan="on",
            access_log=False,
        )
        servers.append(uvicorn.Server(config))
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            raise SystemExit("a stand-in failed to start (is its port already in use?)")
        await asyncio.sleep(0.05)
    if print_urls:
        for (label, _target, _port), server in zip(chosen, servers, strict=True):
            port = server.servers[0].sockets[0].getsockname()[1]
            print(f"{label}\thttp://{host}:{port}/", flush=True)
        print("ready", flush=True)
    await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mocks", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--print-urls", action="store_true")
    parser.add_argument("--only", nargs="*", help="module names of the stand-ins to serve (default: all)")
    parser.add_argument(
        "--ephemeral", action="store_true", help="free ports instead of the demo's (benchmarks)"
    )
    parser.add_argument(
        "--prebuild",
        action="store_true",
        help="build and serialise the whole school world before serving (benchmarks)",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve_all(args.host, args.print_urls, args.only, args.ephemeral, args.prebuild))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
