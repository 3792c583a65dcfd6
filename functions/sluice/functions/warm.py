"""Warm an image's caches at build time: ``python -m sluice.functions.warm``.

The image is read-only at run time, so what a cold start would otherwise compute and cache is
made while it is built (as its bytecode is): every module of the package that can be imported
there is imported once, which compiles each ``@frozen`` class's ``__init__`` and caches it
beside the module's bytecode (``sluice.functions.inits``). A module that needs a package the image
does not have is named and skipped: no function of that image imports it either. Entry points
(``__main__``) are not run.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import sluice
import sluice.core.frozen as frozen
from sluice.functions.inits import install


def main() -> int:
    if sys.dont_write_bytecode:
        print("sluice warm: bytecode writing is off (PYTHONDONTWRITEBYTECODE): nothing would be cached", file=sys.stderr)
        return 1
    install()
    skipped = []
    names = [m.name for m in pkgutil.walk_packages(sluice.__path__, "sluice.") if not m.name.endswith(".__main__")]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            skipped.append(f"{name} ({err})")
    print(f"sluice warm: imported {len(names) - len(skipped)} modules, compiled and cached {frozen.compiled} "
          f"@frozen __init__" + (f"; skipped {len(skipped)}: {', '.join(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
