"""Synergy: compose the tiny AI accelerators worn on one body into one virtual computer."""

import os as _os

# Synergy's numpy work is on small arrays (the planner's, the zoo's reference kernels), where
# OpenBLAS's worker threads never help: after each call they spin on the other cores for a
# while. A `synergy plan` process burned ~100 ms of a second core per plan that way, and on a
# busy machine that core is the planner's own. One BLAS thread, unless the user chose
# otherwise; set here, before numpy is first imported (it reads the variable once).
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
