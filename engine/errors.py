"""Typed engine errors: every failure a caller can act on, one category per HTTP status."""


class EngineError(Exception):
    """Base of every engine error; the message is shown to users as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(EngineError):
    pass


class InvalidParameter(EngineError):
    pass


class Conflict(EngineError):
    pass


class NotModified(EngineError):
    def __init__(self, message: str = "") -> None:
        super().__init__(message)


class Forbidden(EngineError):
    pass


class Unavailable(EngineError):
    pass


class NotImplementedYet(EngineError):
    pass


class SystemFailure(EngineError):
    pass


class NoSuchContainer(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}")


class NoSuchImage(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")


class NoSuchExec(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such exec instance: {ref}")


class ContainerNotRunning(Conflict):
    def __init__(self, cid: str) -> None:
        super().__init__(f"container {cid} is not running")


class ContainerStartError(InvalidParameter):
    """The container's process could not be started (bad executable, bad workdir, ...).

    dockerd answers these with 400 (errdefs.InvalidParameter); the CLI turns "executable file not found"
    into exit code 127 and "permission denied" into 126 from the message.
    """
