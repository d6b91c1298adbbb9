"""Command line: `python -m engine serve [--root R] [--socket S] [--cgroup-parent P]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.config import EngineConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description="dockweb container engine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the engine daemon in the foreground")
    serve.add_argument("--root", type=Path, help="engine state directory (default /var/lib/dockweb)")
    serve.add_argument("--socket", type=Path, help="API socket (default /run/dockweb/engine.sock)")
    serve.add_argument("--cgroup-parent", help="cgroup parent for containers (default dockweb)")
    serve.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = EngineConfig.from_env(root=args.root, socket=args.socket, cgroup_parent=args.cgroup_parent)
    from engine.daemon import serve as run
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
