"""`python -m toccata.demo [--host H] [--port N] [--model PATH_OR_REPO]`: the same as `toccata demo`."""

import sys

from toccata.cli import main

sys.exit(main(["demo", *sys.argv[1:]]))
