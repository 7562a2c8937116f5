"""PSNR / SSIM / LPIPS / NIQE of restored images; the same as the installed ``vqcnir-evaluate`` command.

    python recipes/evaluate.py --restored results/ --gt LOL-Blur/test/high_sharp_scaled --out eval/
    python recipes/evaluate.py --model VQCNIR_LOLBlur_G.pth --input LOL-Blur/test/low_blur_noise \\
        --gt LOL-Blur/test/high_sharp_scaled --out eval/

Options: ``python recipes/evaluate.py --help`` (the code is in vqcnir/cli/evaluate.py).
"""

import sys

from vqcnir.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
