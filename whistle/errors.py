"""Errors a user can act on: each names the file, row or setting at fault."""


class WhistleError(Exception):
    """Base class for errors shown to users without a traceback."""


class TaxonomyError(WhistleError):
    """The taxonomy file is missing, malformed or inconsistent."""


class DataError(WhistleError):
    """Training or evaluation data cannot be used as given."""


class ModelLoadError(WhistleError):
    """A model directory is missing, corrupted or incompatible."""


class InputError(WhistleError):
    """One input text cannot be classified (empty, not Chinese, ...)."""
