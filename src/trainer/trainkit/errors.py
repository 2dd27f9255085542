"""Errors the user can fix (bad data, bad arguments, missing weights): printed as one line,
exit 2. Anything else is a bug and keeps its traceback."""


class TrainError(Exception):
    """A problem with the job's input; the message names the path, column or variable."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        return self.message + (f" (hint: {self.hint})" if self.hint else "")


class LauncherError(TrainError):
    """The launcher's environment variables are missing or inconsistent."""
