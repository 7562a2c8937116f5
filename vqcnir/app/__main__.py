"""``python -m vqcnir.app`` = ``vqcnir-app``."""

import sys

from vqcnir.app.cli import main

sys.exit(main())
