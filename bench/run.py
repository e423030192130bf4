"""Run every benchmark in this folder with one command: `make bench`.

Each `bench_*.py` module defines `main() -> None`, prints its own figures and
the ratios it measured in the same run.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys


def main() -> int:
    here = pathlib.Path(__file__).parent
    only = set(sys.argv[1:])
    for path in sorted(here.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {path.stem} ==", flush=True)
        module.main()
        print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
