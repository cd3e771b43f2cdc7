"""The errors a stage reports to the user as one line (see ``vaemix.cli.run_stage``)."""


class VaemixError(Exception):
    """Base class: a problem the user can fix, reported as one line, exit status 2."""


class ParamError(VaemixError):
    """A bad value in params.yaml; the message names the key and what was expected."""


class DataError(VaemixError):
    """Missing or malformed data; the message names the file."""


class NumericalError(VaemixError):
    """A loss turned NaN or infinite; the message names the epoch, batch and term."""
