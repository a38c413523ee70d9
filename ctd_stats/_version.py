"""The package version (one place; read by ``pyproject.toml`` and ``ctd --version``)."""

__version__ = "0.2.0"
