"""What every engine kind shares."""


class EngineUnavailable(RuntimeError):
    """An engine cannot start. The message names what is missing: a package, a file, or the setting to fix."""
