"""python3 score.py NAME SCALE REF.logits GOT.logits PROMPTS.json RESULTS.jsonl

Appends one line to RESULTS.jsonl: ||d||/||ref|| over every position's logits (the measure of
scripts/device/check_models.py), max |d|, and where the argmax differs from the reference's, with
the reference's margin between its two best logits there."""
import json
import sys

import numpy as np

name, scale, ref_path, got_path, prompts_path, results = sys.argv[1:7]
n_pos = sum(len(p) for p in json.load(open(prompts_path)))
ref = np.fromfile(ref_path, dtype=np.float32).astype(np.float64)
got = np.fromfile(got_path, dtype=np.float32).astype(np.float64)
ref, got = ref.reshape(n_pos, -1), got.reshape(n_pos, -1)
d = got - ref
top2 = np.sort(ref, axis=1)[:, -2:]
parted = [int(i) for i in np.nonzero(got.argmax(1) != ref.argmax(1))[0]]
rec = dict(name=name, scale=float(scale), rel=float(np.linalg.norm(d) / np.linalg.norm(ref)),
           maxd=float(np.abs(d).max()), agree=n_pos - len(parted), n=n_pos, parted=parted,
           margins=[float(top2[i, 1] - top2[i, 0]) for i in parted])
with open(results, "a") as f:
    f.write(json.dumps(rec) + "\n")
print(f"{name:24s} c={scale:5s} ||d||/||ref|| {rec['rel']:.3e} max|d| {rec['maxd']:.3f} "
      f"argmax {rec['agree']}/{n_pos} (parted at margins {[round(m, 4) for m in rec['margins']]})")
