"""``python -m conformance`` (and the ``conformance`` console script)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the conformance command line; returns the exit status."""
    from conformance.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
