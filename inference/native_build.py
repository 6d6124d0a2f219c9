"""Build the compiled loops: ``python -m inference.native_build`` (``make install`` runs it).

Compiles ``inference/_native.c`` (featurizer, text normalisation, anomaly screen) into
``inference/_native<EXT_SUFFIX>`` with the C compiler and flags this Python was built with
(``sysconfig``), so no build backend is needed. Without a C compiler it prints why and exits 0
unless ``--require`` is given: the runtime then uses the pure-Python paths, which give the same
results, only slower (``inference.features``, ``inference.text``, ``inference.anomaly``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess  # nosec B404 # runs the C compiler with a fixed argument list
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import numpy

SOURCE = Path(__file__).resolve().parent / "_native.c"


def target() -> Path:
    """Where the built module goes (importable as ``inference._native``)."""
    return SOURCE.with_name("_native" + str(sysconfig.get_config_var("EXT_SUFFIX")))


def command(output: Path) -> list[str]:
    """The compiler command line for this interpreter."""
    compiler = shlex.split(os.environ.get("CC") or str(sysconfig.get_config_var("CC") or "cc"))
    include = sysconfig.get_paths()["include"]
    return [
        *compiler,
        "-O2",
        # Python never fuses a multiply and an add; neither may the compiler (the C code must
        # give the Python reference's results bit for bit on every architecture).
        "-ffp-contract=off",
        "-fPIC",
        "-shared",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wno-missing-field-initializers",
        "-Wno-cast-function-type",
        f"-I{include}",
        f"-I{numpy.get_include()}",  # the module builds NumPy arrays (NumPy's C API)
        str(SOURCE),
        "-o",
        str(output),
        "-lm",
    ]


def build(*, force: bool = False) -> Path:
    """Compile unless the module is newer than its source; returns the module's path.

    Contract: raises ``RuntimeError`` (with the compiler's output) when compilation fails or no
    compiler is found.
    """
    output = target()
    if not force and output.exists() and output.stat().st_mtime >= SOURCE.stat().st_mtime:
        return output
    cmd = command(output)
    if shutil.which(cmd[0]) is None:
        raise RuntimeError(f"no C compiler ({cmd[0]}) on PATH")
    tmp = output.with_suffix(".tmp")
    cmd[cmd.index(str(output))] = str(tmp)
    # The command is built here from sysconfig and our own source path, not from input.
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603 # argv list, no shell
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    tmp.replace(output)  # atomic: a running process never sees half a file
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--require", action="store_true", help="fail when it cannot be built")
    args = parser.parse_args(argv)
    try:
        path = build(force=args.force)
    except RuntimeError as exc:
        print(f"compiled featurizer not built: {exc}", file=sys.stderr)
        return 1 if args.require else 0
    print(f"compiled featurizer: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
