"""Errors a user can act on: each names the file, row or setting at fault."""


class ChuishaoError(Exception):
    """Base class for errors shown to users without a traceback."""


class TaxonomyError(ChuishaoError):
    """The taxonomy file is missing, malformed or inconsistent."""


class DataError(ChuishaoError):
    """Training or evaluation data cannot be used as given."""


class ModelLoadError(ChuishaoError):
    """A model directory is missing, corrupted or incompatible."""


class InputError(ChuishaoError):
    """One input text cannot be classified (empty, not Chinese, ...)."""


class GazetteerError(ChuishaoError):
    """The gazetteer file (a city's districts, streets and communities) is missing, malformed or inconsistent."""
