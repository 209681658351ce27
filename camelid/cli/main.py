"""The `camelid` command: one subcommand per module, every user error one line on stderr and exit status 1."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from camelid import __version__
from camelid.errors import CamelidError


def build_parser() -> argparse.ArgumentParser:
    from camelid.cli import bench, generate, models, run, serve, transcribe

    parser = argparse.ArgumentParser(prog="camelid", description="Run quantized GGUF models on your own machine.")
    parser.add_argument("--version", action="version", version=f"camelid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (run, generate, models, serve, transcribe, bench):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="camelid: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except CamelidError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
