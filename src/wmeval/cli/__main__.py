"""`python -m wmeval.cli ...` (e.g. under torchrun)."""

import sys

from wmeval.cli import main

sys.exit(main())
