"""Every exception the kernel raises, all under MdqError: each says what went wrong, where, and what next."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dataclasses import dataclass


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """Return "; did you mean 'x'?" naming the option closest to a misspelt `word`, or "" if none is close."""
    import difflib  # only on the way to an error message

    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Problem:
    """One problem in a document: a message and the JSON path where it was found."""

    message: str
    path: str = "$"

    def __str__(self) -> str:
        return f"{self.message} @ {self.path}"


class MdqError(Exception):
    """Base class of every error raised by mdq."""


class Invalid(MdqError, ValueError):
    """A value of the right JSON type that breaks a rule; its message is shown verbatim at its path."""


class DocumentError(MdqError, ValueError):
    """A document (package, index, ledger row) is malformed; `.problems` lists every problem."""

    def __init__(self, problems: Iterable[Problem], *, source: str = "document") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = "\n".join(f"  {p}" for p in self.problems)
        n = len(self.problems)
        return f"{self.source} is invalid ({n} problem{'s' if n != 1 else ''}):\n{lines}"


class PackageError(DocumentError):
    """An MDQ package is malformed."""


class PluginError(MdqError):
    """A plugin could not be loaded or misbehaved in a hook; `.plugin` names it."""

    def __init__(self, plugin: str, reason: str) -> None:
        self.plugin, self.reason = plugin, reason
        super().__init__(f"plugin {plugin!r}: {reason}")


class RegistrationError(MdqError, ValueError):
    """A plugin called `register` with arguments the kernel cannot accept."""


class DuplicateCapabilityError(RegistrationError):
    """Two registrations claim the same kind and name."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        self.kind, self.name, self.first, self.second = kind, name, first, second
        super().__init__(
            f"{kind} {name!r} is registered twice: by {first} and by {second}; "
            f"rename one of them or limit loading with MDQ_PLUGINS"
        )


class UnknownCapabilityError(MdqError, LookupError):
    """No capability of that kind and name is registered."""

    def __init__(self, kind: str, name: str, known: Sequence[str]) -> None:
        self.kind, self.name, self.known = kind, name, tuple(known)
        avail = ", ".join(sorted(known)) or "none"
        super().__init__(f"no {kind} named {name!r} is registered{did_you_mean(name, known)} (available: {avail})")


class LazyReferenceError(PluginError):
    """A capability's lazy "module:attr" reference does not resolve; raised on first use."""

    def __init__(self, plugin: str, kind: str, name: str, ref: str, cause: str) -> None:
        self.kind, self.name, self.ref = kind, name, ref
        super().__init__(plugin, f"{kind} {name!r} points to {ref!r}, which does not resolve ({cause}); "
                                 f"reinstall the plugin or fix its registration (`mdq plugins list --check`)")


class RangeError(MdqError, ValueError):
    """A SemVer range or version does not parse; the message points at the offending part."""


class ResolutionImpossible(MdqError):
    """No set of versions satisfies the requirements; `str()` explains why, step by step."""

    def __init__(self, explanation: str, incompatibility: Any = None) -> None:
        self.explanation = explanation
        self.incompatibility = incompatibility
        super().__init__(explanation)


class CompatError(MdqError):
    """A package or combination lands on a rejected cell of the compatibility matrix."""

    def __init__(self, decision: Any, what: str) -> None:
        self.decision = decision
        super().__init__(f"{what} is rejected by the compatibility matrix:\n{decision.explain()}")


class LedgerError(MdqError):
    """The ledger cannot be read, written or trusted; says which entry and what to do."""


class NoLedgerError(LedgerError):
    """A reader was pointed at a ledger that does not exist (nothing was created)."""


class ConflictError(LedgerError):
    """A compare-and-swap append lost the race: the cohort moved on since the change was planned."""


class SignatureError(MdqError):
    """A signature is missing, malformed, untrusted or wrong, or a trust file is unusable."""


class PolicyError(MdqError):
    """The operator policy refuses something, or a policy document is malformed."""


class RequestError(MdqError):
    """A served request cannot be answered: `.status` (400, 404, 413, 422, ...) and `$.path` problems."""

    def __init__(self, status: int, message: str, problems: Iterable[Problem] = ()) -> None:
        self.status, self.message, self.problems = status, message, tuple(problems)
        super().__init__(message)


class GateRefusal(MdqError):
    """A gate refused a package; `.results` holds every gate's result for the ledger."""

    def __init__(self, message: str, results: dict[str, Any]) -> None:
        super().__init__(message)
        self.results = results


class Rejected(MdqError):
    """A package was refused (before staging) or rolled back (after); nothing changed."""

    def __init__(self, pkg_ref: str, stage: str, reason: str) -> None:
        self.pkg_ref, self.stage, self.reason = pkg_ref, stage, reason
        super().__init__(f"{pkg_ref} {'rejected' if stage == 'check' else 'rolled back'} at {stage}: {reason}")
