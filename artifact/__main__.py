import os
import sys

# OpenMP threads that wait for work by spinning (libgomp's default) slow every torch operation down many times when
# the machine's cores are shared with other processes (measured here: a trace 30x slower with two threads on two
# busy cores). Passive waiting changes no number. Set before torch is imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from artifact.cli import main  # noqa: E402

sys.exit(main())
