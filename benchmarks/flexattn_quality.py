"""Does the Flex-Attn reward measure domain quality? Figures on the labelled evaluation.

    python benchmarks/flexattn_quality.py [--split test|dev] [--gate topic|bm25|jaccard]

Reads plugins/flexattn/data/eval/ (questions with a good answer and bad variants, and
non-medical controls; see its README) and scores every text with the default control state.
The score of an answer is its lexical reward total (`ler_total`): the part of the reward that
judges the words; the per-character terms (chi, length cost, readability) do not depend on
which words were written and are left out. Reported:

- ranking accuracy: the share of (question, bad variant) pairs where the good answer scores
  strictly higher (a tie counts as a failure), overall and per variant;
- controls: each non-medical answer's score over the median score of the good answers;
- term recall: the share of the clinician-marked key terms of the good answers that the reward
  hits (a hit whose text is the key term), and the share that the catalog contains at all
  (the default catalog and, for comparison, the hand-compiled starter);
- near-misses: recall and precision on the typo variants (a report is right when it overlaps a
  planted typo) and the number of reports on texts that have no typo (good answers, and all).

Figures are reported for the held-out `test` split by default; `dev` is the part tuned on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

EVAL = Path(__file__).resolve().parents[1] / "plugins" / "flexattn" / "data" / "eval"
VARIANTS = ("off_topic", "wrong", "padding", "other", "typo")


def load(split: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (questions, controls) of one split, refusing a missing or empty file."""
    out = []
    for name in (f"{split}.jsonl", f"controls-{split}.jsonl"):
        p = EVAL / name
        rows = [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
        if not rows:
            raise SystemExit(f"{p} has no rows: the evaluation needs questions and controls")
        out.append(rows)
    return out[0], out[1]


def typo_text(q: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    """Return the good answer with every planted typo, and the typos' spans in it."""
    text = q["good"]
    for t in q["typos"]:
        text = text.replace(t["term"], t["typo"])
    spans = []
    for t in q["typos"]:
        i = text.find(t["typo"])
        while i >= 0:
            spans.append((i, i + len(t["typo"])))
            i = text.find(t["typo"], i + 1)
    return text, spans


def evaluate(split: str, gate: str) -> dict[str, Any]:
    """Score every text of a split and return the figures."""
    from mdq_flexattn.catalog import Catalog
    from mdq_flexattn.kpis import nearmisses
    from mdq_flexattn.reward import Scorer

    questions, controls = load(split)
    scorer = Scorer(gate=gate)
    score = lambda q, t: scorer.summary(q, t).totals["ler_total"]  # noqa: E731
    pairs = {v: [0, 0] for v in VARIANTS}
    good_scores, failures = [], []
    key_hit = key_in_catalog = key_in_starter = key_n = 0
    starter = Catalog.starter()
    nm_tp = nm_reports = nm_planted = nm_found = 0
    false_on_good, false_on_clean, clean_texts = [], 0, 0
    t0 = time.perf_counter()
    for q in questions:
        summ = scorer.summary(q["question"], q["good"])
        g = summ.totals["ler_total"]
        good_scores.append(g)
        variants = dict(q["bad"])
        variants["typo"], spans = typo_text(q)
        for v, text in variants.items():
            b = score(q["question"], text)
            pairs[v][0] += g > b
            pairs[v][1] += 1
            if not g > b:
                failures.append({"id": q["id"], "variant": v, "good": round(g, 4), "bad": round(b, 4)})
        hit_forms = {h.seg for h in summ.hits}
        cat = scorer.matcher.catalog
        for k in q["key_terms"]:
            key_n += 1
            key_hit += k in hit_forms
            key_in_catalog += k in cat
            key_in_starter += k in starter
        found = nearmisses(None, variants["typo"])
        nm_reports += len(found)
        nm_tp += sum(any(s < b and s + len(w) > a for a, b in spans) for s, w, _t in found)
        nm_planted += len(spans)
        nm_found += sum(any(s < b and s + len(w) > a for s, w, _t in found) for a, b in spans)
        fg = nearmisses(None, q["good"])
        false_on_good += [{"id": q["id"], "string": w, "term": t} for _s, w, t in fg]
        for v in ("off_topic", "wrong", "padding", "other"):
            false_on_clean += len(nearmisses(None, q["bad"][v]))
        clean_texts += 5
    median_good = statistics.median(good_scores)
    # a median of 0 leaves the ratio undefined (None): no control can be judged against nothing
    ctl = [{"id": c["id"], "ratio": score(c["question"], c["answer"]) / median_good if median_good > 0 else None}
           for c in controls]
    ratios = [c["ratio"] for c in ctl if c["ratio"] is not None]
    secs = time.perf_counter() - t0
    n_pairs = sum(p[1] for p in pairs.values())
    return {
        "split": split, "gate": gate, "questions": len(questions), "controls": len(controls),
        "ranking_accuracy": sum(p[0] for p in pairs.values()) / n_pairs,
        "ranking_by_variant": {v: p[0] / p[1] for v, p in pairs.items()},
        "median_good_ler": median_good, "good_with_zero_reward": sum(g == 0 for g in good_scores),
        "control_ratio_mean": statistics.fmean(ratios) if ratios else None,
        "control_ratio_max": max(ratios) if ratios else None,
        "controls_over_5pct": [c for c in ctl if c["ratio"] is None or c["ratio"] > 0.05],
        "term_recall_hits": key_hit / key_n, "key_terms_in_catalog": key_in_catalog / key_n,
        "key_terms_in_starter": key_in_starter / key_n, "key_terms": key_n,
        "nearmiss_recall": nm_found / nm_planted, "nearmiss_precision": nm_tp / nm_reports if nm_reports else 0.0,
        "nearmiss_planted": nm_planted, "nearmiss_reports": nm_reports,
        "false_nearmisses_on_good": false_on_good, "false_nearmisses_on_other_clean_texts": false_on_clean,
        "clean_texts": clean_texts, "ranking_failures": failures, "seconds": secs,
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    """Run the evaluation and write results/flexattn_quality[_dev].json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", choices=["test", "dev"])
    ap.add_argument("--gate", default="topic", choices=["topic", "bm25", "jaccard"])
    a = ap.parse_args()
    r = evaluate(a.split, a.gate)
    rows = [
        {"figure": "pairwise ranking accuracy (good > bad)", "value": r["ranking_accuracy"], "goal": ">= 0.9"},
        *({"figure": f"  ranking vs {v}", "value": x, "goal": ""} for v, x in r["ranking_by_variant"].items()),
        {"figure": "control reward / median good reward (mean)", "value": r["control_ratio_mean"], "goal": "<= 0.05"},
        {"figure": "control reward / median good reward (max)", "value": r["control_ratio_max"], "goal": "<= 0.05"},
        {"figure": "good answers with zero lexical reward", "value": r["good_with_zero_reward"], "goal": "0"},
        {"figure": "term recall (key terms hit by the reward)", "value": r["term_recall_hits"], "goal": ""},
        {"figure": "key terms in the default catalog", "value": r["key_terms_in_catalog"], "goal": ""},
        {"figure": "key terms in the starter catalog", "value": r["key_terms_in_starter"], "goal": ""},
        {"figure": "near-miss recall (planted typos found)", "value": r["nearmiss_recall"], "goal": ""},
        {"figure": "near-miss precision (on typo variants)", "value": r["nearmiss_precision"], "goal": ""},
        {"figure": "false near-misses on good answers", "value": len(r["false_nearmisses_on_good"]), "goal": "0"},
        {"figure": "near-misses on the other clean variants", "value": r["false_nearmisses_on_other_clean_texts"],
         "goal": ""},
    ]
    name = "flexattn_quality" + ("" if a.split == "test" else "_dev") + ("" if a.gate == "topic" else f"_{a.gate}")
    extra = {"commit": _commit(), "seeds": "none (deterministic)", "results": r,
             "versions": {p: version(p) for p in ("mdq-flexattn", "pyahocorasick", "jieba", "pypinyin")}}
    report(name, f"Flex-Attn reward quality on the {a.split} split ({r['questions']} questions, "
                 f"{r['controls']} controls, gate {a.gate})", ["figure", "value", "goal"], rows, extra)


if __name__ == "__main__":
    main()
