"""``python -m scripts.faults``: the faults suite (:mod:`scripts.faults.suite`)."""

import sys

from scripts.faults.suite import main

sys.exit(main())
