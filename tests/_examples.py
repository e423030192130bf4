"""Load and run the scripts in ``examples/`` from tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as module ``examples_<name>``."""
    mod_name = f"examples_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running so dataclasses can resolve the module.
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def run_example(
    name: str, *args: str, dsn: str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python examples/<name>.py`` against ``dsn`` (via DATABASE_URL)."""
    env = {**os.environ, "DATABASE_URL": dsn}
    env.pop("FRONTRUN_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
