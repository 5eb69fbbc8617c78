"""Errors raised by the OreMap core.

Core functions raise :class:`OreMapError` for bad input. ``parameter`` is a
short, QGIS-free key naming the input at fault (``"library"``, ``"raster"``,
``"wavelengths"``, ``"endmembers"``, ``"output"``, ...); the Processing layer
maps it to the algorithm's own parameter and its label, so the user reads which
field to change and how.
"""


class OreMapError(Exception):
    """Bad input or a step that cannot proceed.

    Parameters
    ----------
    message : str
        What is wrong, in words a GIS analyst understands.
    parameter : str, optional
        Core key of the offending input.
    fix : str, optional
        What the user can do about it.
    """

    def __init__(self, message, parameter=None, fix=None):
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.fix = fix

    def __str__(self):
        return self.message if not self.fix else f"{self.message} {self.fix}"


class Cancelled(OreMapError):
    """The user cancelled the run; partial outputs have been removed."""

    def __init__(self, message="Cancelled by the user."):
        super().__init__(message)
