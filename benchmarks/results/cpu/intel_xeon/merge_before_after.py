"""Merge before/after cpu_vs_sdpa runs: per row, min fused and min sdpa over rounds; ratio = min fused / min sdpa."""
import json, sys, glob
def load(pat):
    rows = {}
    env = None
    for f in sorted(glob.glob(pat)):
        d = json.load(open(f)); env = d['environment']
        for r in d['rows']:
            key = (r['op'], r['shape'], r['mode'], r['threads'])
            cur = rows.setdefault(key, dict(r))
            cur['fused_ms'] = min(cur['fused_ms'], r['fused_ms']); cur['sdpa_ms'] = min(cur['sdpa_ms'], r['sdpa_ms'])
    for r in rows.values(): r['ratio'] = r['fused_ms'] / r['sdpa_ms']
    return rows, env
b, envb = load(sys.argv[1]); a, enva = load(sys.argv[2])
out = {"before": {"environment": envb, "rows": list(b.values())}, "after": {"environment": enva, "rows": list(a.values())}}
json.dump(out, open(sys.argv[3], 'w'), indent=1)
print("| op | shape (B,H,N,D) | mode | threads | before cpp/SDPA | after cpp/SDPA | target | met | cpp speed-up (before/after time) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for k, r in b.items():
    x = a[k]
    t = r['target']
    met = '' if t is None else ('yes' if x['ratio'] <= t else 'no')
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {r['ratio']:.2f} | {x['ratio']:.2f} | {'' if t is None else '≤ '+str(t)} | {met} | {r['fused_ms']/x['fused_ms']:.2f}x |")
