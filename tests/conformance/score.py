#!/usr/bin/env python3
"""Scores a run of the W3C VoiceXML tests from server.py's verdicts.

Prints "vxml-w3c: N/T passed" (T: the tests listed as run) and every
failure by test number: its reason, or "no verdict" when none came.  The
last verdict of a test counts (a test run again overrides).

Tests without any conf:pass (the W3C's manual tests: "pass if you hear
...", "pass if it just exits") have no verdict of their own.  With
--features (convert.py's output) and --manual exit, such a test passes
when the harness reported that its session ended by <exit> (GET
/_ended/TEST?how=exit) and no failure was recorded; they are listed apart,
since what the caller heard is not checked.  --manual fail (the default
without --features) counts them as failures.

Usage: score.py --tests ENTRY-NO-ASR.txt --scores scores.jsonl
                [--features features.json] [--manual exit|fail] [--min PCT]
Exits 1 when fewer than --min percent passed, else 0.
"""
import argparse
import json
import os
import re
import sys


def test_ids(path):
    ids = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            ids.append(os.path.splitext(line)[0] if line.endswith(".txml")
                       else line)
    return ids


def load_scores(path):
    verdicts, ended, fails = {}, {}, {}
    if not os.path.exists(path):
        return verdicts, ended, fails
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                r = json.loads(line)
            except ValueError:
                print("score: %s:%d: not JSON, ignored" % (path, n),
                      file=sys.stderr)
                continue
            t, v = r.get("test"), r.get("verdict")
            if v in ("pass", "fail"):
                verdicts[t] = r
                if v == "fail":
                    fails[t] = r
            elif v == "ended":
                ended[t] = r
    return verdicts, ended, fails


def sort_key(t):
    """Natural order: 42 before 216 before 1026, then a002, assert96..."""
    return [int(c) if c.isdigit() else c for c in re.split(r"(\d+)", t)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tests", required=True,
                    help="the test ids run, one a line (NAME or NAME.txml)")
    ap.add_argument("--scores", required=True)
    ap.add_argument("--features", help="convert.py --features output")
    ap.add_argument("--manual", choices=("exit", "fail"), default=None)
    ap.add_argument("--min", type=float, default=0.0,
                    help="exit 1 below this pass percentage")
    args = ap.parse_args()
    manual_rule = args.manual or ("exit" if args.features else "fail")
    features = {}
    if args.features:
        with open(args.features) as f:
            features = json.load(f)

    ids = test_ids(args.tests)
    verdicts, ended, fails = load_scores(args.scores)
    passed, failures, by_exit = 0, [], []
    for t in ids:
        v = verdicts.get(t)
        manual = "manual" in features.get(t, {}).get("needs", [])
        if v is not None and v["verdict"] == "pass":
            passed += 1
        elif v is not None:
            why = v.get("reason") or "fail without a reason"
            if v.get("doc") and v["doc"] != t:
                why += " (in %s)" % v["doc"]
            failures.append((t, why))
        elif manual and manual_rule == "exit" and t not in fails and \
                ended.get(t, {}).get("how") == "exit":
            passed += 1
            by_exit.append(t)
        elif t in ended:
            failures.append((t, "no verdict (session ended: %s)" %
                             (ended[t].get("how") or "?")))
        else:
            failures.append((t, "no verdict"))
    total = len(ids)
    print("vxml-w3c: %d/%d passed" % (passed, total))
    if failures:
        print("failures (%d):" % len(failures))
        for t, why in sorted(failures, key=lambda x: sort_key(x[0])):
            print("  %s: %s" % (t, why))
    if by_exit:
        print("manual tests passed on their exit alone (%d): %s" %
              (len(by_exit), " ".join(sorted(by_exit, key=sort_key))))
    if total and 100.0 * passed / total < args.min:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
