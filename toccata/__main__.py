"""`python -m toccata` is the `toccata` command."""

import sys

from toccata.cli import main

sys.exit(main())
