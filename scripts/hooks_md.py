"""Write docs/hooks.md from mdqcore.hookspecs: every hook, its register(...) call, metadata and object contract.

    python scripts/hooks_md.py           # rewrite docs/hooks.md
    python scripts/hooks_md.py --check   # exit 1 if docs/hooks.md is out of date (run by the tests)
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import typing
from pathlib import Path

from mdqcore import hookspecs, protocols

DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"
_FIELD = re.compile(r"^\s+(\w+): (.+?)(?:\s+#\s*(.*))?$")


def _meta_rows(meta: type) -> list[str]:
    required = meta.__required_keys__
    rows = []
    for line in inspect.getsource(meta).splitlines():
        m = _FIELD.match(line)
        if not m or m.group(1) not in typing.get_type_hints(meta):
            continue
        name, tp, comment = m.group(1), m.group(2), m.group(3) or ""
        tp = tp[len("Required["):-1] if tp.startswith("Required[") else tp
        tp = tp.replace("Intervals", "Mapping[str, tuple[float, float]]")
        rows.append(f"| `{name}` | `{tp}` | {'yes' if name in required else 'no'} | {comment} |")
    return rows


def _protocol(kind: hookspecs.Kind) -> str:
    name = next((n for n in protocols.__all__ if f"protocols.{n}" in kind.obj), None)
    if name is None:
        return ""
    proto = getattr(protocols, name)
    lines = [f"`mdqcore.protocols.{name}`: {inspect.getdoc(proto)}", ""]
    for attr, value in vars(proto).items():
        if callable(value) and not attr.startswith("_") or attr == "__call__":
            sig = str(inspect.signature(value)).replace("self, ", "").replace("(self)", "()")
            lines.append(f"- `{attr}{sig}`: {inspect.getdoc(value).splitlines()[0]}")
    for attr, tp in getattr(proto, "__annotations__", {}).items():
        lines.append(f"- attribute `{attr}: {tp}`")
    return "\n".join(lines) + "\n"


def render() -> str:
    """Return the whole of docs/hooks.md."""
    out = ["# Hook reference", "",
           "Generated from `mdqcore/hookspecs.py` by `python scripts/hooks_md.py`; a test keeps it in sync.", "",
           inspect.getdoc(hookspecs).strip(), "",
           "| kind | hook | the registered object |", "|---|---|---|"]
    out += [f"| `{k.name}` | [`{k.hook}`](#{k.hook}) | {k.obj.replace('|', chr(92) + '|')} |"
            for k in hookspecs.KINDS.values()]
    for k in hookspecs.KINDS.values():
        stub = getattr(hookspecs, k.hook)
        doc = inspect.getdoc(stub)
        out += ["", f"## {k.hook}", "", "```python", "@mdqcore.hookimpl", f"def {k.hook}(register): ...", "```", "",
                doc, "", f"Capability kind `{k.name}`; the object registered is {k.obj}"
                + ("" if k.needs_obj else " (omit it)") + ".", ""]
        rows = _meta_rows(k.meta)
        if rows:
            out += ["Metadata (`register(name, obj, **meta)`; any other key is a registration error):", "",
                    "| key | type | required | meaning |", "|---|---|---|---|", *rows, ""]
        else:
            out += ["No metadata: any keyword besides `version` is a registration error.", ""]
        proto = _protocol(k)
        if proto:
            out += [proto]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    """Write or check docs/hooks.md."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    a = ap.parse_args()
    text = render()
    if a.check:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run python scripts/hooks_md.py", file=sys.stderr)
            sys.exit(1)
        return
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
