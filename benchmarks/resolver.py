"""mdq's PubGrub resolver vs resolvelib on the same generated problems (issue #3).

Problem sets (seeded, reproducible):
  dag-100 / dag-1000   random DAGs of N names x 10 versions; a hidden witness assignment makes
                       every problem satisfiable while non-witness versions carry random ranges
                       that force backtracking
  deep-conflict        chains of 20, 40 and 60 names whose two deepest branches demand disjoint versions of
                       one leaf: unsatisfiable, with the conflict far from the root
  installed-shape      the dependency graph of this Python environment (who depends on whom,
                       from importlib.metadata), given 10 versions per name as in dag-*

Both resolvers see the same index and the same Range implementation; resolvelib gets a
standard provider (fewest-candidates preference, newest first). Reported per set: success
rate, median and p95 time, and for unsatisfiable problems whether an explanation was produced.

    python benchmarks/resolver.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from importlib import metadata

import resolvelib
from packaging.requirements import InvalidRequirement, Requirement as PepReq
from packaging.utils import canonicalize_name

from _common import report
from mdqcore.versions.index import Index
from mdqcore.versions.ranges import Range, version_key
from mdqcore.versions.resolver import ResolutionImpossible, Resolver

VERSIONS = [f"{1 + i // 5}.{i % 5}.0" for i in range(10)]  # 1.0.0 .. 1.4.0, 2.0.0 .. 2.4.0


def _range_containing(rng: random.Random, v: str) -> str:
    maj, mi, _ = map(int, v.split("."))
    return rng.choice([f"^{maj}", f">={maj}.{max(0, mi - rng.randint(0, 2))}.0", f"~{maj}.{mi}", "*",
                       f">={maj}.0.0 <={v}"])


def _random_range(rng: random.Random) -> str:
    maj = rng.randint(1, 2)
    return rng.choice([f"^{maj}", f">={maj}.{rng.randint(0, 4)}.0", f"~{maj}.{rng.randint(0, 4)}", f"<{maj}.{rng.randint(1, 4)}.0"])


def witness_problem(graph: dict[str, list[str]], rng: random.Random, roots: int = 5):
    """Index over `graph` (name -> names it may depend on) + root requirements, satisfiable by construction."""
    witness = {n: rng.choice(VERSIONS) for n in graph}
    pkgs: dict[str, dict[str, dict[str, str]]] = {}
    for n, deps in graph.items():
        pkgs[n] = {}
        for v in VERSIONS:
            chosen = rng.sample(deps, min(len(deps), rng.randint(0, 3))) if deps else []
            if v == witness[n]:
                pkgs[n][v] = {d: _range_containing(rng, witness[d]) for d in chosen}
            else:
                pkgs[n][v] = {d: _random_range(rng) for d in chosen}
    tops = rng.sample(sorted(graph), min(roots, len(graph)))
    reqs = [(t, _range_containing(rng, witness[t])) for t in tops]
    return Index.of(pkgs), reqs


def random_dag(n: int, rng: random.Random) -> dict[str, list[str]]:
    names = [f"p{i:04d}" for i in range(n)]
    return {nm: [names[j] for j in rng.sample(range(i + 1, n), min(n - i - 1, 6))] for i, nm in enumerate(names)}


def deep_conflict(n: int, rng: random.Random):
    """Two long branches from the root end in disjoint demands on one leaf."""
    pkgs: dict[str, dict[str, dict[str, str]]] = {"leaf": {v: {} for v in VERSIONS}}
    half = n // 2
    for side, want in (("l", "^1"), ("r", "^2")):
        for i in range(half):
            nxt = f"{side}{i + 1:04d}" if i < half - 1 else "leaf"
            rq = want if nxt == "leaf" else "*"
            pkgs[f"{side}{i:04d}"] = {v: {nxt: rq} for v in VERSIONS}
    return Index.of(pkgs), [("l0000", "*"), ("r0000", "*")]


def installed_graph() -> dict[str, list[str]]:
    dists = {canonicalize_name(d.metadata["Name"] or ""): d for d in metadata.distributions()}
    graph = {}
    for name, d in dists.items():
        deps = set()
        for text in d.requires or []:
            try:
                req = PepReq(text)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                dep = canonicalize_name(req.name)
                if dep in dists and dep != name:
                    deps.add(dep)
        graph[name] = sorted(deps)
    return graph


# ---- resolvelib side ------------------------------------------------------------------------
class _Req:
    __slots__ = ("name", "range")

    def __init__(self, name: str, rng: str):
        self.name, self.range = name, rng


class _Cand:
    __slots__ = ("name", "version")

    def __init__(self, name: str, version: str):
        self.name, self.version = name, version


class Provider(resolvelib.AbstractProvider):
    def __init__(self, index: Index):
        self.index = index
        self.versions = {n: sorted(vs, key=version_key, reverse=True) for n, vs in index.packages.items()}

    def identify(self, requirement_or_candidate):
        return requirement_or_candidate.name

    def get_preference(self, identifier, resolutions, candidates, information, backtrack_causes):
        return sum(1 for _ in candidates[identifier])

    def find_matches(self, identifier, requirements, incompatibilities):
        bad = {c.version for c in incompatibilities[identifier]}
        ranges = [Range.parse(r.range) for r in requirements[identifier]]
        return [_Cand(identifier, v) for v in self.versions.get(identifier, ())
                if v not in bad and all(r.contains(v) for r in ranges)]

    def is_satisfied_by(self, requirement, candidate):
        return Range.parse(requirement.range).contains(candidate.version)

    def get_dependencies(self, candidate):
        return [_Req(d, r) for d, r in self.index.requires(candidate.name, candidate.version).items()]


def run_resolvelib(index: Index, reqs) -> tuple[bool, float, str]:
    t0 = time.perf_counter()
    try:
        result = resolvelib.Resolver(Provider(index), resolvelib.BaseReporter()).resolve(
            [_Req(n, r) for n, r in reqs], max_rounds=200_000)
        ok, why = True, str(len(result.mapping))
    except resolvelib.ResolutionImpossible as e:
        ok, why = False, f"impossible ({len(e.causes)} causes)"
    except resolvelib.ResolutionTooDeep:
        ok, why = False, "too deep"
    return ok, time.perf_counter() - t0, why


def run_mdq(index: Index, reqs) -> tuple[bool, float, str]:
    t0 = time.perf_counter()
    try:
        sol = Resolver(index).resolve([f"{n}@{r}" for n, r in reqs])
        ok, why = True, str(len(sol))
        for n, r in reqs:  # the answer must be right, not only fast
            assert Range.parse(r).contains(sol[n])
        for n, v in sol.items():
            for d, r in index.requires(n, v).items():
                assert d in sol and Range.parse(r).contains(sol[d]), (n, v, d, r)
    except ResolutionImpossible as e:
        ok, why = False, e.explanation
    return ok, time.perf_counter() - t0, why


def bench(name: str, problems) -> dict:
    ours, theirs, explained, unsat = [], [], 0, 0
    solved_ours = solved_theirs = both_ok = 0
    for index, reqs in problems:
        ok_t, t_t, _ = run_resolvelib(index, reqs)
        ok_o, t_o, why = run_mdq(index, reqs)
        theirs.append(t_t)
        ours.append(t_o)
        solved_theirs += ok_t
        solved_ours += ok_o
        both_ok += ok_t and ok_o
        if not ok_o:
            unsat += 1
            explained += why.rstrip().endswith("version solving failed.")
    p95 = lambda xs: sorted(xs)[max(0, int(round(0.95 * len(xs))) - 1)]  # noqa: E731
    return {"set": name, "problems": len(problems), "mdq_solved": solved_ours, "resolvelib_solved": solved_theirs,
            "solved_by_resolvelib_not_mdq": solved_theirs - both_ok, "unsat_explained": f"{explained}/{unsat}",
            "mdq_median_ms": statistics.median(ours) * 1e3, "resolvelib_median_ms": statistics.median(theirs) * 1e3,
            "mdq_p95_ms": p95(ours) * 1e3, "resolvelib_p95_ms": p95(theirs) * 1e3,
            "median_ratio": statistics.median(ours) / statistics.median(theirs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer problems per set")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    k = 3 if a.quick else 1
    sets = {
        "dag-100": [witness_problem(random_dag(100, rng), rng) for _ in range(30 // k)],
        "dag-1000": [witness_problem(random_dag(1000, rng), rng, roots=20) for _ in range(6 // k)],
        # resolvelib needs about a minute per problem here, growing with depth: keep the set small
        "deep-conflict": [deep_conflict(n, rng) for n in ((20, 40, 60) if not a.quick else (20,))],
        "installed-shape": [witness_problem(installed_graph(), rng, roots=10) for _ in range(20 // k)],
    }
    rows = [bench(n, ps) for n, ps in sets.items()]
    report("resolver", "mdq PubGrub vs resolvelib (same problems, same ranges; times in ms)",
           ["set", "problems", "mdq_solved", "resolvelib_solved", "solved_by_resolvelib_not_mdq", "unsat_explained",
            "mdq_median_ms", "resolvelib_median_ms", "mdq_p95_ms", "resolvelib_p95_ms", "median_ratio"], rows,
           {"resolvelib": resolvelib.__version__, "seed": a.seed,
            "goal": "every problem resolvelib solves is solved; every unsat explained; median_ratio <= 0.5"},
           seeds={"problem_sets": a.seed})


if __name__ == "__main__":
    main()
