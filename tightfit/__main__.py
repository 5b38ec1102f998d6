"""`python -m tightfit` (and `torchrun -m tightfit`) runs the CLI."""

import sys

from tightfit.cli.main import main

sys.exit(main())
