"""`python -m sense_respond` is the `sense-respond` command."""

import sys

from sense_respond.cli import main

sys.exit(main())
