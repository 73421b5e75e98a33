"""Builds the one C extension, synergy.planning._fill (everything else is in pyproject.toml).

The extension is optional: where no C compiler or Python headers are at hand the build
skips it and the planner uses numpy's version of the same water-filling (slower, the same
plans). SYNERGY_PURE_PYTHON=1 leaves it out on purpose, e.g. for a wheel that must install
on another architecture (a Raspberry Pi).
"""

import os

from setuptools import Extension, setup

NATIVE = [
    Extension(
        "synergy.planning._fill",
        ["synergy/planning/_fill.c"],
        optional=True,
        # No fused multiply-add (GCC contracts a*b+c on ARM by default): the figures must be
        # numpy's, bit for bit.
        extra_compile_args=["-O2", "-ffp-contract=off"],
    )
]

setup(ext_modules=[] if os.environ.get("SYNERGY_PURE_PYTHON") == "1" else NATIVE)
