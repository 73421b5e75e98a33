"""How every ``synergy`` command ends: one error style and one exit status convention.

An error is one line on stderr, ``synergy COMMAND: MESSAGE``, never a traceback. The status:

- 0: done;
- 1: the operation failed — the coordinator (or an agent) could not be reached, refused it
  or could not do it (an app that cannot be placed, a model that does not fit, an Infer that
  timed out, a device id held by another agent);
- 2: bad usage or input — arguments, files, configuration (TLS directory, certificate, an
  address in use), or input the coordinator refused as invalid or unknown (INVALID_ARGUMENT,
  NOT_FOUND: an unknown app id, sensor type or model);
- 130: interrupted (Ctrl-C);
- 141: the reader of stdout went away (``synergy profile --all | head``), like any Unix tool
  killed by SIGPIPE; nothing is printed.

See docs/cli.md.
"""

from __future__ import annotations

import sys

from synergy import errors

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_USAGE",
    "exit_status",
    "report",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141

#: Errors that say the input was wrong, wherever they were raised.
_BAD_INPUT: tuple[type[errors.SynergyError], ...] = (errors.InvalidArgument, errors.NotFound)


def _remote(exc: BaseException) -> bool:
    """Whether ``exc`` stands for a failed call (a gRPC error somewhere in its causes)."""
    import grpc  # only when a command failed: most commands never need gRPC

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, grpc.RpcError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__
    return False


def exit_status(exc: errors.SynergyError) -> int:
    """The status for a command that ended with ``exc`` (see the module doc).

    Bad input (INVALID_ARGUMENT, NOT_FOUND) is 2 wherever it was found. Any other error of a
    call to a daemon is the operation failing (1); raised here, before or without a call, it
    is a usage or configuration problem (2), except that a daemon we could not reach is 1.
    """
    if isinstance(exc, _BAD_INPUT):
        return EXIT_USAGE
    if _remote(exc):
        return EXIT_FAILED
    if isinstance(exc, errors.Unavailable) and not isinstance(exc, errors.AddressInUse):
        return EXIT_FAILED
    return EXIT_USAGE


def report(command: str, message: object) -> None:
    """Print ``synergy COMMAND: MESSAGE`` on stderr (one line: newlines become "; ")."""
    text = "; ".join(line for line in str(message).splitlines() if line.strip()) or "failed"
    print(f"synergy {command}: {text}", file=sys.stderr, flush=True)
