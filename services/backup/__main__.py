"""``python -m services.backup backup|restore ...``: the ``ccloud backup|restore`` commands,
runnable from the image's entry point (``ccloud-entrypoint backup backup --dir ...``), as
the chart's backup CronJob does."""

from __future__ import annotations

import argparse
import sys

from services.backup import cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.backup", description=cli.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_commands(p.add_subparsers(dest="command", required=True))
    return p


def main(argv: list[str] | None = None) -> int:
    return cli.execute(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
