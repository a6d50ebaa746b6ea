"""Every exception the kernel raises: each says what went wrong, where, and what to do next."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from attrs import frozen


@frozen
class Problem:
    """One problem in a document: a message and the JSON path where it was found."""

    message: str
    path: str = "$"

    def __str__(self) -> str:
        return f"{self.message} @ {self.path}"


class MdqError(Exception):
    """Base class of every error raised by mdq."""


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
        self.plugin = plugin
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}: {self.reason}"


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

    def __init__(self, kind: str, name: str, known: Sequence[str], hint: str = "") -> None:
        self.kind, self.name, self.known = kind, name, tuple(known)
        avail = ", ".join(sorted(known)) or "none"
        extra = f"; did you mean {hint!r}?" if hint else ""
        super().__init__(f"no {kind} named {name!r} is registered{extra} (available: {avail})")

    def __str__(self) -> str:
        return str(self.args[0])
