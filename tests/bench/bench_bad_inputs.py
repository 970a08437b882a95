"""The bad-input corpus (tests/sources/test_bad_inputs.py): malformed records and files across
the LLaVA JSON, imagefolder and Hub/parquet formats, plus a hostile LLaVA set whose entries
point outside its image folder, at devices, a FIFO and a URL (tests/sources/test_access.py),
in one real run. Prints every rejected row with its reason and where to find it, and the
funnel: zero crashes, nothing lost, nothing outside the folders read.

    python -m tests.bench.bench_bad_inputs
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path


def main() -> None:
    from tests.sources.helpers import conserved, load, run_recipe
    from tests.sources.test_access import ImageServer, _hostile
    from tests.sources.test_bad_inputs import build_corpus

    work = Path(tempfile.mkdtemp(prefix="bench-bad-inputs-"))
    sources, ingest, expected = build_corpus(work)
    server = ImageServer(b"not fetched")
    try:
        hostile, cases = _hostile(work / "hostile", server.url)
        ingest["images"]["max_file_bytes"] = 5_000_000
        outcome = run_recipe(work, sources + [hostile], ingest=ingest)
    finally:
        server.close()
    f = outcome.funnel.to_dict()
    rejected = sorted(load(outcome, "rejected"), key=lambda r: (r["source"], r["reason"]))
    print("\n| source | reason | origin | detail |\n|---|---|---|---|")
    for r in rejected:
        print(f"| {r['source']} | {r['reason']} | {r['origin'][:60]} | {r['detail'][:80]} |")
    by_source = Counter(r["source"] for r in rejected)
    print(f"\nin {f['in']}: kept {f['kept']}, rejected {f['rejected']} ({dict(by_source)}), failed {f['failed']}; "
          f"{len({(r['source'], r['reason']) for r in rejected})} distinct (source, reason) pairs; "
          f"counts conserved: {conserved(outcome)}; expected bad inputs "
          f"{sum(v is not None for v in expected.values()) + 2 + sum(r is not None for _, r in cases.values())}; "
          f"requests to the URL in the data: {server.requests}")


if __name__ == "__main__":
    main()
