"""Command line: `python -m engine serve [--root R] [--socket S] [--cgroup-parent P]`, `bootstrap-debian ...`."""

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
    deb = sub.add_parser("bootstrap-debian", help="build a slim Debian base image with debootstrap (no registry)")
    deb.add_argument("--suite", default="bookworm")
    deb.add_argument("--variant", default="minbase")
    deb.add_argument("--tag", default=None, help="image name (default debian:<suite>-slim)")
    deb.add_argument("--mirror", default=None, help="Debian mirror URL (default http://deb.debian.org/debian)")
    deb.add_argument("--host", default=None, help="engine API, unix:///path.sock (default: the engine's socket "
                                                   "when it answers, else the store under --root directly)")
    deb.add_argument("--root", type=Path, help="engine state directory, for a store no daemon is serving")
    deb.add_argument("--work-dir", type=Path, default=Path("/var/tmp"), help="where the rootfs is built")
    deb.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "bootstrap-debian":
        return bootstrap_debian(args)
    config = EngineConfig.from_env(root=args.root, socket=args.socket, cgroup_parent=args.cgroup_parent)
    from engine.daemon import serve as run
    run(config)
    return 0


def bootstrap_debian(args: argparse.Namespace) -> int:
    """Run `bootstrap-debian`: debootstrap, trim, import; print the image id, the time taken and the size."""
    from engine.errors import EngineError
    from engine.images import debootstrap as deb

    opts = deb.DebianOptions(suite=args.suite, variant=args.variant, tag=args.tag or f"debian:{args.suite}-slim",
                             work_dir=args.work_dir)
    if args.mirror:
        opts.mirror = args.mirror
    config = EngineConfig.from_env(root=args.root)
    host = args.host
    if host is None and args.root is None and _engine_answers(config.socket):
        host = f"unix://{config.socket}"
    if host is not None:
        def importer(chunks, repo, tag, changes):
            return deb.import_via_api(host, chunks, repo, tag, changes)
        where = host
    else:
        def importer(chunks, repo, tag, changes):
            return deb.import_into_store(config.root, chunks, repo, tag, changes)
        where = str(config.root)
    try:
        result = deb.build(opts, importer, progress=lambda line: print(line, flush=True))
    except EngineError as e:
        print(f"bootstrap-debian: {e}", file=sys.stderr)
        return 1
    print(f"{result.tag} {result.image_id} into {where}: debootstrap {result.seconds_debootstrap:.1f}s, "
          f"total {result.seconds_total:.1f}s, rootfs {result.rootfs_bytes / 2**20:.1f} MiB", flush=True)
    return 0


def _engine_answers(sock: Path) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(str(sock))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        return b" 200 " in s.recv(64)
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
