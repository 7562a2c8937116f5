"""Restore night photos with a VQCNIR checkpoint; the same as the installed ``vqcnir-restore`` command.

    python recipes/restore.py --model VQCNIR_LOLBlur_G.pth photos/ -o photos_restored/

Options: ``python recipes/restore.py --help`` (the code is in vqcnir/cli/restore.py).
"""

import sys

from vqcnir.cli.restore import main

if __name__ == "__main__":
    sys.exit(main())
