"""The `imgpipe` command line: a thin dispatcher over ``infra.commands``."""

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-command modules are imported on demand so that `imgpipe render` never pays for boto3.
COMMAND_MODULES = ("render", "bench", "demo", "up", "worker", "backfill", "loadtest")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgpipe", description="Queue-buffered image processing for AWS."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"infra.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
