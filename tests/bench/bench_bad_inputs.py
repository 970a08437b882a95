"""The bad-input corpus (tests/sources/test_bad_inputs.py): malformed records and files across
the LLaVA JSON, imagefolder and Hub/parquet formats in one real run. Prints every rejected
row with its reason and where to find it, and the funnel: zero crashes, nothing lost.

    python -m tests.bench.bench_bad_inputs
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path


def main() -> None:
    from tests.sources.helpers import conserved, load, run_recipe
    from tests.sources.test_bad_inputs import build_corpus

    work = Path(tempfile.mkdtemp(prefix="bench-bad-inputs-"))
    sources, ingest, expected = build_corpus(work)
    outcome = run_recipe(work, sources, ingest=ingest)
    f = outcome.funnel
    rejected = sorted(load(outcome, "rejected"), key=lambda r: (r["source"], r["reason"]))
    print("\n| source | reason | origin | detail |\n|---|---|---|---|")
    for r in rejected:
        print(f"| {r['source']} | {r['reason']} | {r['origin'][:60]} | {r['detail'][:80]} |")
    by_source = Counter(r["source"] for r in rejected)
    print(f"\nin {f['in']}: kept {f['kept']}, rejected {f['rejected']} ({dict(by_source)}), failed {f['failed']}; "
          f"{len({(r['source'], r['reason']) for r in rejected})} distinct (source, reason) pairs; "
          f"counts conserved: {conserved(outcome)}; expected bad inputs {sum(v is not None for v in expected.values()) + 2}")


if __name__ == "__main__":
    main()
