"""DuML's tracker with NCHW vs channels-last convolutions on the synthetic val split (issue 13).

Both trackers are the zoo's ``duml_cpu``; one has its model put back to the NCHW layout. Every
frame goes through both in turn; prints per sequence the mean IoU of each, the largest box
difference, and the thread CPU time per frame of each.

    OMP_NUM_THREADS=1 python benchmarks/duml_channels_last_val.py data/synthetic 10
"""
import sys, time, numpy as np, torch
torch.set_num_threads(1)
from vtrack.data import load_dataset
from vtrack.tracking import build_tracker
seqs = list(load_dataset("synthetic", sys.argv[1], "val"))[: int(sys.argv[2])]
tot = {"nchw": 0.0, "cl": 0.0}; nfr = 0; ious = {}
from vtrack.eval.metrics import iou
for seq in seqs:
    trs = {k: build_tracker("duml_cpu") for k in ("nchw", "cl")}
    trs["nchw"].model.to(memory_format=torch.contiguous_format)
    res = {k: [seq.init_box] for k in trs}
    for k, tr in trs.items(): tr.initialize(seq.frame(0), seq.init_box)
    for i in range(1, len(seq)):
        img = seq.frame(i); nfr += 1
        for k, tr in trs.items():
            c = time.thread_time(); res[k].append(tr.track(img).box); tot[k] += time.thread_time() - c
    d = np.abs(np.asarray(res["nchw"], float) - np.asarray(res["cl"], float))
    for k in trs:
        v = seq.valid[1:]
        ious.setdefault(k, []).append(float(np.nanmean(iou(np.asarray(res[k][1:], float)[v], seq.boxes[1:][v]))))
    print(seq.name, len(seq), {k: round(x[-1], 4) for k, x in ious.items()}, "max box diff px %.3g" % d.max(), "frames >0.01px:", int((d.max(1) > 0.01).sum()), flush=True)
print({k: f"{1e3*v/nfr:.2f} ms CPU/frame, FPS(CPU) {nfr/v:.1f}" for k, v in tot.items()})
print("mean IoU over sequences", {k: round(float(np.mean(v)), 4) for k, v in ious.items()})
