"""Optional dependencies: import one, or say which qetvec extra installs it."""
from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import and return `module`; if it is missing, raise ImportError naming the
    `pip install "qetvec[<extra>]"` command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module!r} is not installed; it comes with qetvec's {extra!r} extra: "
                          f'pip install "qetvec[{extra}]"') from err
