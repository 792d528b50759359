"""The `imgpipe` command line: a thin dispatcher over ``infra.commands``."""

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Sub-command modules are imported on demand so that `imgpipe render` never pays for boto3.
COMMAND_MODULES = ("render", "bench", "demo", "up", "worker", "backfill", "reconcile", "loadtest")
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgpipe", description="Queue-buffered image processing for AWS."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"infra.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command: Ctrl-C and a closed pipe (`imgpipe ... | head`) end it quietly."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader has gone: nothing more can be said, and Python's own flush of stdout at
        # exit would report the pipe again, so stdout is pointed at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
