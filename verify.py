#!/usr/bin/env python3
"""Compare regenerated results with expected ones and print PASS/FAIL. Not implemented yet: exits 2, no verdict."""

import sys

if __name__ == "__main__":
    print("verify.py: the statistical comparison with expected/ is not implemented yet; no verdict.", file=sys.stderr)
    sys.exit(2)
