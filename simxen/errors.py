"""Exceptions shared by the simulated commands and the Python API (a light module: xl imports it)."""


class XlParserUnavailable(RuntimeError):
    """The real xl binary or a C compiler for the shim is missing."""
