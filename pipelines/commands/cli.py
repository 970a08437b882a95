"""The `extract-think` command line.

    extract-think run RECIPE [--set key.sub=value ...] [--progress auto|bars|log|none]   # exit 1: not published, 2: bad recipe or output
    extract-think validate RECIPE [--set ...]      # print the resolved recipe
    extract-think inspect RECIPE [--limit N] [--show K] [--json]   # how the sources' first rows are read (no teacher)
    extract-think plan RECIPE [--limit N] [--json]  # run N records, estimate calls, tokens, time, cost of the whole run
    extract-think compare RECIPE --teacher NAME [KEY=VALUE ...] --teacher NAME ... [--limit N] [--out DIR]   # teachers side by side
    extract-think recipes                           # list bundled recipes
    extract-think publish OUT --repo owner/name [--private] [--dry-run] [--delete-unmanaged]   # push a local publish to the Hub
    extract-think export OUT --format trl|llava [--config extraction|reasoning] --to DEST [--source-dataset OWNER/NAME]   # for TRL's SFTTrainer / LLaVA trainers
    extract-think review OUT [--name NAME] [--sample N]   # label a sample in the browser (a local page)
    extract-think calibrate OUT [--max-bad 0.02] [--json]  # the filters against those labels; thresholds and a recipe patch

RECIPE is a path to a YAML file or the name of a bundled recipe ("quickstart").
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pipelines.commands.quiet import quiet  # a module without Beam

quiet()  # before Beam is imported below

from pipelines.commands import calibrate, review  # noqa: E402
from pipelines.commands.preflight import PreflightError  # noqa: E402
from pipelines.config import ConfigError  # noqa: E402
from pipelines.config.recipe import bundled_recipes, dump_recipe, read_recipe, recipe_description  # noqa: E402
from pipelines.core.secrets import ScrubFilter, printable  # noqa: E402


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("extract-think")
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "(not installed)"


def _progress_flags(c: argparse.ArgumentParser) -> None:
    c.add_argument("--progress", choices=["auto", "bars", "log", "none"], default="auto",
                   help="bars on a terminal, else a log line per step every --progress-every seconds (auto, the default); "
                        "bars; log; or none")
    c.add_argument("--no-progress", dest="progress", action="store_const", const="log",
                   help="no bars: log lines instead (the same as --progress log)")
    c.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS", help="seconds between log lines (default 30)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="extract-think", description="Make Extract+Think training data with a teacher VLM.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("run", "run a recipe and publish its dataset locally"), ("validate", "check a recipe and print it resolved")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("recipe", help="a recipe YAML file, or the name of a bundled recipe")
        c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe key, e.g. --set sources.0.synthetic.num_records=50 (repeatable)")
        if name == "run":
            _progress_flags(c)
    ins = sub.add_parser("inspect", help="read the first rows of each source (no teacher) and show how they were understood")
    ins.add_argument("recipe", help="a recipe YAML file, or the name of a bundled recipe")
    ins.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    ins.add_argument("--limit", type=int, default=20, help="rows to read per source (default 20)")
    ins.add_argument("--show", type=int, default=5, help="records to print per source (default 5)")
    ins.add_argument("--json", action="store_true", help="print the report as JSON")
    pl = sub.add_parser("plan", help="run the recipe on its first N records and estimate the whole run: "
                                     "records kept, teacher calls, tokens, time and cost")
    pl.add_argument("recipe", help="a recipe YAML file, or the name of a bundled recipe")
    pl.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    pl.add_argument("--limit", type=int, default=50, help="records in the sample, shared by the sources (default 50)")
    pl.add_argument("--out", default=None, help="keep the sample's publish here (default: a scratch folder, deleted)")
    pl.add_argument("--no-cache", action="store_true", help="call the teacher for every sample record, to time it")
    pl.add_argument("--json", action="store_true", help="print the estimate as JSON")
    cmp = sub.add_parser("compare", help="run the same records through two or more teachers and compare them side by side")
    cmp.add_argument("recipe", help="a recipe YAML file, or the name of a bundled recipe")
    cmp.add_argument("--teacher", dest="arms", action="append", nargs="+", required=True, metavar="NAME [KEY=VALUE",
                     help="an arm: its name, then the recipe overrides that make its teacher, e.g. "
                          "--teacher big teacher.model=Qwen/Qwen3-VL-32B-Instruct (repeat for each arm; at least two)")
    cmp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="an override for every arm (repeatable)")
    cmp.add_argument("--limit", type=int, default=None, help="records in all, shared by the sources (default: all)")
    cmp.add_argument("--out", default=None, help="the comparison's folder (default out/compare-<recipe>)")
    cmp.add_argument("--gallery", type=int, default=24, help="records shown where the arms disagree (default 24)")
    _progress_flags(cmp)
    sub.add_parser("recipes", help="list the bundled recipes")
    pub = sub.add_parser("publish", help="push a finished local publish to the Hugging Face Hub")
    pub.add_argument("out", help="the output folder of `extract-think run`")
    pub.add_argument("--repo", required=True, help="the dataset repo, owner/name (created if missing)")
    pub.add_argument("--private", action="store_true", help="create the repo private")
    pub.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    pub.add_argument("--message", default=None, help="commit message")
    pub.add_argument("--dry-run", action="store_true", help="list what would be added, changed, deleted and kept; send nothing")
    pub.add_argument("--delete-unmanaged", action="store_true",
                     help="also delete the repo's files that this tool did not write (by default they are kept)")
    exp = sub.add_parser("export", help="export a config for TRL or LLaVA-style trainers")
    exp.add_argument("out", help="the output folder of `extract-think run`")
    exp.add_argument("--format", required=True, choices=["trl", "llava"])
    exp.add_argument("--config", default="extraction", choices=["extraction", "reasoning"],
                     help="extraction: the perception model's data (default); reasoning: the reasoner's (text only)")
    exp.add_argument("--to", required=True, dest="dest", help="the folder to write: new, empty, or an earlier export (replaced)")
    exp.add_argument("--source-dataset", default=None, metavar="OWNER/NAME",
                     help="the Hub id the publish was pushed to: the export's card links it as its source")
    review.add_arguments(sub)
    calibrate.add_arguments(sub)
    return p


def _export(args) -> int:
    from pipelines.publishing.exports import ExportRefused, export

    try:
        dest = export(args.out, args.format, args.dest, args.config, args.source_dataset)
    except ExportRefused as e:
        print(f"extract-think: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"extract-think: {e}", file=sys.stderr)
        return 1
    print(f"{args.format} export of the {args.config} config of {args.out}: {dest}")
    return 0


def _plan(args) -> int:
    import json

    from pipelines import plan_recipe
    from pipelines.commands.plan import render

    if args.limit < 1:
        raise ConfigError("plan: --limit must be at least 1")
    overrides = [*args.overrides, *(["cache.dir=null"] if args.no_cache else [])]
    recipe = read_recipe(args.recipe, overrides)
    print(f"Planning recipe {recipe.name!r} on its first {args.limit} records", file=sys.stderr, flush=True)
    result = plan_recipe(recipe, limit=args.limit, out_dir=args.out)
    print(json.dumps(result, indent=1) if args.json else "\n".join(render(result)))
    return 0


def _compare(args) -> int:
    from pipelines.commands.compare import compare, parse_arm

    if args.limit is not None and args.limit < 1:
        raise ConfigError("compare: --limit must be at least 1")
    arms = [parse_arm(spec) for spec in args.arms]
    from pipelines.publishing.output import safe_name

    name = read_recipe(args.recipe, args.overrides).name
    out = args.out or f"out/compare-{safe_name(name)}"  # a recipe's name is data: `x/../../y` names no path
    from pipelines.observe.progress import bars_fit

    progress = "bars" if args.progress == "auto" and bars_fit() else "log" if args.progress == "auto" else args.progress
    result = compare(args.recipe, arms, args.limit, out, args.overrides, args.gallery, progress, args.progress_every,
                     say=lambda line: print(printable(line), flush=True))
    print(f"\n{'arm':<16} {'kept':>9} {'errors':>8} {'calls':>8} {'tokens':>10} {'cost/kept':>10} {'flow s':>8}")
    for a in result["arms"]:
        errors = "-" if a["truth"]["error_rate"] is None else f"{a['truth']['error_rate']:.1%}"
        cost = "-" if a["cost_per_kept"] is None else f"{a['cost_per_kept']:.6f}"
        print(f"{a['name']:<16} {a['kept']:>4}/{a['in']:<4} {errors:>8} {a['teacher_calls']:>8} {a['tokens']:>10} {cost:>10} "
              f"{a['flow_seconds']:>8.1f}")
    for p in result["pairs"]:
        agree = "-" if p["fact_agreement"] is None else f"{p['fact_agreement']:.1%}"
        print(f"{p['a']} / {p['b']}: kept by both {p['both']}, only {p['a']} {len(p['only_a'])}, only {p['b']} {len(p['only_b'])}, "
              f"neither {p['neither']}; facts agree on {agree} of those kept by both")
    print(f"\nReport: {Path(out).resolve() / 'compare.html'}  (and compare.json; each arm's dataset under arms/)")
    return 0


def _inspect(args) -> int:
    import json

    from pipelines.commands.inspect import inspect, render

    if args.limit < 1 or args.show < 0:
        raise ConfigError("inspect: --limit must be at least 1 and --show at least 0")
    report = inspect(read_recipe(args.recipe, args.overrides), args.limit, args.show)
    if args.json:
        print(json.dumps(report, indent=1, default=str))  # ASCII: no control or bidi character reaches the terminal
    else:
        for line in render(report):
            print(printable(line))  # rows are data: no escape sequence reaches the terminal
    return 0


def _publish(args) -> int:
    from pipelines.publishing.hub import PushError, push

    try:
        pushed = push(args.out, args.repo, private=args.private, revision=args.revision, message=args.message,
                      dry_run=args.dry_run, delete_unmanaged=args.delete_unmanaged)
    except PushError as e:
        print(f"extract-think: {e}", file=sys.stderr)
        return 1
    plan = pushed.plan
    if args.dry_run:
        print(f"dry run: publishing {args.out} to the dataset repo {args.repo} would (nothing was sent):")
        for verb, paths in (("add", plan.add), ("change", plan.change), ("keep as is", plan.same), ("delete", plan.delete),
                            ("replace (not written by this tool)", plan.overwrite), ("keep (not written by this tool)", plan.keep)):
            for path in paths:
                print(f"  {verb:<36} {printable(path)}")
        return 0
    print(f"pushed {args.out} to the dataset repo {args.repo}: {pushed.url}")
    print(f"  commit: {pushed.commit_url}")
    print(f"  {len(plan.add)} added, {len(plan.change)} changed, {len(plan.same)} unchanged")
    if plan.delete:
        print(f"  removed {len(plan.delete)} files the earlier publish wrote (e.g. {printable(plan.delete[0])})")
    if plan.overwrite:
        print(f"  replaced {len(plan.overwrite)} files this tool had not written: {', '.join(map(printable, plan.overwrite))}")
    if plan.keep:
        print(f"  kept {len(plan.keep)} files this tool did not write: {', '.join(map(printable, plan.keep[:10]))}"
              f"{' ...' if len(plan.keep) > 10 else ''} (--delete-unmanaged removes them)")
    return 0


def _print_funnel(funnel, out_dir, seconds: float) -> None:
    _print_counts(funnel, seconds)
    rows = funnel.config_rows()
    empty = [c for c, n in rows.items() if not n]
    print(f"\nDataset: {out_dir}  (card: {out_dir}/README.md)")
    if empty:
        print(f"  empty, so left out: {', '.join(empty)}")
    for c, n in rows.items():
        if n:
            print(f"  {c}: " + ", ".join(f"{k} {split}" for split, k in funnel.split_rows(c).items()))
    config = next((c for c, n in rows.items() if n), None)  # the hint names a config that exists
    if config and "://" in str(out_dir):
        files = {split: f"{out_dir}/{config}/{split}-*.parquet" for split in funnel.split_rows(config)}
        print(f"  from datasets import load_dataset; load_dataset('parquet', data_files={files!r})")
    elif config:
        print(f"  from datasets import load_dataset; load_dataset({str(out_dir)!r}, {config!r})")


def _print_counts(funnel, seconds: float) -> None:
    print(f"\nFunnel ({seconds:.1f} s): {funnel.records_in} in -> {funnel.kept} kept, "
          f"{funnel.rejected} rejected, {funnel.failed} failed")
    for status, reasons in (("rejected", funnel.rejected_by_reason), ("failed", funnel.failed_by_reason)):
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            print(f"  {status:>8}  {reason:<28} {n:>7}")
    calls = funnel.teacher_requests + funnel.cache_hits
    answered = f"{calls} teacher calls: {funnel.teacher_requests} sent" + (f", {funnel.cache_hits} answered from the cache"
                                                                           if funnel.cache_hits else "")
    print(f"  {answered}; {funnel.prompt_tokens} prompt + {funnel.completion_tokens} completion tokens paid")
    if len(funnel.endpoints) > 1:  # a fleet: how the calls spread, and which endpoints failed
        print("  endpoints: " + ", ".join(f"{printable(label)} {e['calls']} calls ({e['failures']} failed)"
                                          for label, e in funnel.endpoints.items()))
    if funnel.cost is not None:
        unpriced = f" (without {', '.join(funnel.unpriced_stages)}: no price)" if funnel.unpriced_stages else ""
        print(f"  cost: {funnel.cost:.4f} this run, {funnel.per_kept(funnel.cost):.6f} per kept record; "
              f"{funnel.cost_with_cache:.4f} with the cached replies{unpriced}")


def _run(args) -> int:
    from pipelines import run_recipe
    from pipelines.commands.run import NotPublished
    from pipelines.teachers.base import TeacherDown

    recipe = read_recipe(args.recipe, args.overrides)
    print(f"Running recipe {recipe.name!r} -> {recipe.output.dir}", flush=True)
    mode = args.progress
    if mode == "auto":
        from pipelines.observe.progress import bars_fit

        mode = "bars" if bars_fit() else "log"
    if args.progress_every <= 0:
        raise ConfigError("run: --progress-every must be more than 0")
    start = time.perf_counter()
    try:
        outcome = run_recipe(recipe, progress=mode, progress_every=args.progress_every)
    except NotPublished as e:
        _print_counts(e.funnel, time.perf_counter() - start)
        print(f"\nextract-think: not published: {e.why}; {recipe.output.dir} is left as it was.", file=sys.stderr)
        if e.example:
            print(printable(f"  e.g. {e.example['origin']}: {e.example['reason']}: {e.example['detail']}"), file=sys.stderr)
        if e.funnel.failed and recipe.cache.dir:
            print("  Replies that did arrive are in the cache: a rerun pays only for the failed calls.", file=sys.stderr)
        return 1
    except TeacherDown as e:
        print(printable(f"\nextract-think: stopped: {e}; {recipe.output.dir} is left as it was."), file=sys.stderr)
        if recipe.cache.dir:
            print("  Replies that did arrive are in the cache: the same command, once the teacher is back, goes on from them.",
                  file=sys.stderr)
        return 1
    _print_funnel(outcome.funnel, outcome.out_dir, time.perf_counter() - start)
    return 0


def _recipes(args) -> int:
    names = bundled_recipes()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {recipe_description(name)}".rstrip())
    return 0


def _validate(args) -> int:
    print(dump_recipe(read_recipe(args.recipe, args.overrides)), end="")
    return 0


COMMANDS = {"recipes": _recipes, "validate": _validate, "inspect": _inspect, "plan": _plan, "compare": _compare,
            "publish": _publish, "export": _export, "run": _run, "review": review.command, "calibrate": calibrate.command}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubFilter())
    try:
        return COMMANDS[args.command](args)
    except PreflightError as e:
        print(printable(f"extract-think: pre-flight: {e}"), file=sys.stderr)
        return 2
    except ConfigError as e:  # every problem found, one line each
        for line in str(e).splitlines():
            print(f"extract-think: recipe error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
