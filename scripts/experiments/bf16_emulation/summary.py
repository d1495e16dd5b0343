"""python3 summary.py RESULTS.jsonl: per configuration, ||d||/||ref|| at the exact bf16 grid
(scale 1) and its mean and spread over all grid scales; then each rounding point's share of the
squared error, from the runs with that point alone."""
import collections
import json
import sys

import numpy as np

runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[r["name"]].append(r)
print(f"{'config':24s} {'exact':>8s} {'max|d|':>7s} {'argmax':>8s} | {'mean':>7s} {'sd':>7s} {'min':>7s} {'max':>7s} n  (x 1e-3)")
for name, rs in runs.items():
    v = np.array([r["rel"] for r in rs]) * 1e3
    exact = next((r for r in rs if r["scale"] == 1.0), rs[0])
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    print(f"{name:24s} {exact['rel'] * 1e3:8.2f} {exact['maxd']:7.3f} {exact['agree']:4d}/{exact['n']} | "
          f"{v.mean():7.2f} {sd:7.2f} {v.min():7.2f} {v.max():7.2f} {len(v)}")
points = "W N QKV ROPE P ATT GU GLU".split()
if all("only_" + p in runs for p in points):
    ms = {p: np.mean([r["rel"] ** 2 for r in runs["only_" + p]]) for p in points}
    total = sum(ms.values())
    print(f"root of the summed 'only' errors {np.sqrt(total) * 1e3:.2f}e-3; "
          f"'all' measured {np.sqrt(np.mean([r['rel'] ** 2 for r in runs['all']])) * 1e3:.2f}e-3")
    for p in points:
        print(f"  {p:5s} {100 * ms[p] / total:5.1f}% of the squared error")
