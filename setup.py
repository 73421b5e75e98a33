"""Builds the planner's native code (everything else is in pyproject.toml).

* The C extension synergy.planning._fill (the water-filling and the ranking's inner loops).
  Optional: where no C compiler or Python headers are at hand the build skips it and the
  planner uses numpy's version of the same steps (slower, the same plans).
* With SYNERGY_COMPILE_PLANNER=1, the planner modules listed in synergy/planning/compiled.py,
  compiled to C with mypyc (which comes with mypy; the build must see it, so `make` builds
  with pip's --no-build-isolation in the virtual environment). It writes beside them the
  digests of the sources it compiled; a source changed since is run as Python instead
  (synergy/planning/compiled.py). Without the variable, or without mypy, they stay Python.

SYNERGY_PURE_PYTHON=1 leaves all of it out, e.g. for a wheel that must install on another
architecture (a Raspberry Pi).
"""

import os
import runpy
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
PLANNING = HERE / "synergy" / "planning"
# Read without importing the package (which needs numpy and the rest).
COMPILED = runpy.run_path(str(PLANNING / "compiled.py"))
#: The digests of the sources being compiled ({} when the planner modules are not).
DIGESTS: dict[str, str] = {}

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


def _compiled_planner() -> list[Extension]:
    """The mypyc extensions of the planner modules (none unless asked for and possible)."""
    if os.environ.get("SYNERGY_COMPILE_PLANNER") != "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("note: mypy (mypyc) is not in the build environment: the planner stays Python", file=sys.stderr)
        return []
    modules = COMPILED["MODULES"]
    # The digests are taken before compiling and written only once the build succeeded
    # (BuildExt); until then the old ones are gone, so old compiled files never pass for new.
    DIGESTS.update(COMPILED["source_digests"](PLANNING, modules))
    (PLANNING / COMPILED["MANIFEST"]).unlink(missing_ok=True)
    extensions: list[Extension] = mypycify(
        [f"synergy/planning/{m}.py" for m in modules],
        opt_level="3",
        # The group's shared library lives in the package (synergy/planning/_compiled__mypyc*),
        # not at the top level, where an editable install would not find it.
        group_name="synergy.planning._compiled",
    )
    for ext in extensions:
        # As for _fill.c: no fused multiply-add, the same figures as the Python code.
        ext.extra_compile_args = [*ext.extra_compile_args, "-ffp-contract=off"]
    return extensions


class BuildExt(build_ext):
    """build_ext that, once every extension is built, writes the compiled sources' digests
    beside the compiled modules (in the source tree for an editable install)."""

    def run(self) -> None:
        super().run()
        if not DIGESTS:
            return
        text = "".join(f"{m} {d}\n" for m, d in DIGESTS.items())
        targets = [Path(self.build_lib) / "synergy" / "planning"]
        if self.inplace or getattr(self, "editable_mode", False):
            targets.append(PLANNING)
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            (target / COMPILED["MANIFEST"]).write_text(text, encoding="ascii")


if os.environ.get("SYNERGY_PURE_PYTHON") == "1":
    setup(ext_modules=[])
else:
    setup(ext_modules=[*NATIVE, *_compiled_planner()], cmdclass={"build_ext": BuildExt})
