#!/usr/bin/env bash
# The whole GPU check of vtrack in one short call, in priority order, each step time-boxed.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--budget SECONDS] OUT_DIR
#
# Steps (a step starts only if enough of the budget is left; a later step never delays an earlier one):
#   1. triton-gpu-tests  pytest -m gpu tests/test_kernels_triton.py      (no build needed)
#   2. cuda-build        setup.py build_ext --inplace, parallel jobs, this GPU's architecture only
#   3. cuda-tests        pytest -m gpu tests/test_cpp_cuda.py             (needs step 2)
#   4. bench-kernels     vtrack bench kernels --device cuda at the tracker shapes
#   5. ostrack-fps       vtrack bench trackers: OSTrack-256 FPS at batch 1 (fused vs reference)
#   6. triton-all-tests  the whole Triton test file natively on the GPU (lowest priority)
#
# Writes OUT_DIR/gpu_check.json, OUT_DIR/gpu_check.md and OUT_DIR/gpu_check.log, rewritten after every
# step (atomically), so a run that is killed still leaves the finished steps' results. The JSON and the
# markdown embed the benchmark tables (so three files carry everything). Prints what passed, failed,
# and was skipped (for time, or because a step it needs failed). Exit status 0 when nothing failed.
# --dry-run prints the plan (commands, time boxes) and writes the files with every step "planned";
# it runs nothing and needs no GPU.
#
# Environment: PYTHON (default python3), GPU_CHECK_BUDGET (seconds, default 540), GPU_CHECK_ARCH
# (e.g. 9.0; default: the GPU's compute capability, read with nvidia-smi or torch), GPU_CHECK_ASSUME_GPU=1
# (treat the machine as having a GPU: lets tests exercise the time-budget logic on a CPU machine).
set -u
set -o pipefail

usage() { echo "usage: $0 [--dry-run] [--budget SECONDS] OUT_DIR" >&2; exit 2; }

DRY=0
BUDGET="${GPU_CHECK_BUDGET:-540}"
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --budget) shift; [ $# -gt 0 ] || usage; BUDGET="$1" ;;
    --budget=*) BUDGET="${1#--budget=}" ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) [ -z "$OUT" ] || usage; OUT="$1" ;;
  esac
  shift
done
[ -n "$OUT" ] || usage
case "$BUDGET" in ''|*[!0-9]*) echo "--budget: expected a positive int (seconds), got '$BUDGET'" >&2; exit 2 ;; esac
[ "$BUDGET" -gt 0 ] || { echo "--budget: expected a positive int (seconds), got $BUDGET" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PY="${PYTHON:-python3}"
mkdir -p "$OUT" || exit 2
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/gpu_check.log"
STATE="$OUT/.gpu_check_steps.tsv"   # name \t status \t seconds \t timebox \t note \t command
ART="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"  # step artifacts (embedded into the JSON/markdown)
trap 'rm -rf "$ART"' EXIT
START=$(date +%s)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

# name | max seconds | min seconds worth starting | needs (step that must have passed, or -) | command
STEPS=(
  "triton-gpu-tests|150|30|-|VTRACK_NO_JIT=1 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_kernels_triton.py"
  "cuda-build|240|60|-|MAX_JOBS=\$(nproc) TORCH_CUDA_ARCH_LIST=\$ARCH VTRACK_REQUIRE_EXT=1 $PY setup.py build_ext --inplace"
  "cuda-tests|120|20|cuda-build|$PY -m pytest -q -p no:cacheprovider -m gpu tests/test_cpp_cuda.py"
  "bench-kernels|150|40|-|$PY -m vtrack.cli bench kernels --device cuda --no-flex --warmup 3 --repeat 10 --out \$ART/kernels"
  "ostrack-fps|100|40|-|$PY -m vtrack.cli bench trackers --device cuda --configs configs/ostrack/ostrack_256.yaml --batch 0 --no-macs --frames 50 --out \$ART/trackers"
  "triton-all-tests|240|60|-|VTRACK_NO_JIT=1 $PY -m pytest -q -p no:cacheprovider tests/test_kernels_triton.py"
)

: > "$STATE"
if [ "$DRY" = 1 ]; then : > "$LOG"; fi

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

write_reports() {
  # JSON + markdown from the step table, written atomically; embeds the benchmark results found.
  "$PY" - "$OUT" "$STATE" "$ART" "$DRY" "$BUDGET" "$ENV_JSON" <<'PYEOF' || echo "warning: could not write the reports" >&2
import json, os, sys, tempfile, time
out, state, art, dry, budget, env = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", int(sys.argv[5]), sys.argv[6]
steps = []
with open(state) as f:
    for line in f:
        name, status, secs, box, note, cmd = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
        steps.append({"step": name, "status": status, "seconds": float(secs) if secs else None,
                      "timebox_s": int(box) if box else None, "note": note, "command": cmd})
results = {}
tables = []
for part, fname in (("kernels", "kernels"), ("trackers", "trackers")):
    js, md = os.path.join(art, part, fname + ".json"), os.path.join(art, part, fname + ".md")
    if os.path.exists(js):
        try:
            with open(js) as f:
                results[part] = json.load(f)
        except (OSError, ValueError) as exc:
            results[part] = {"error": str(exc)}
    if os.path.exists(md):
        with open(md) as f:
            tables.append(f.read())
try:
    env = json.loads(env)
except ValueError:
    env = {}
counts = {s: sum(1 for x in steps if x["status"] == s) for s in {x["status"] for x in steps}}
doc = {"dry_run": dry, "budget_s": budget, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "environment": env, "summary": counts, "steps": steps, "results": results}

def atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp_")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)

atomic(os.path.join(out, "gpu_check.json"), json.dumps(doc, indent=2) + "\n")
md = ["# vtrack GPU check" + (" (dry run: plan only)" if dry else ""), "",
      f"Written {doc['written']}, budget {budget} s. " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())), ""]
if env:
    md += ["Environment: " + ", ".join(f"{k} = {v}" for k, v in env.items()), ""]
md += ["| step | status | seconds | time box (s) | note |", "| --- | --- | --- | --- | --- |"]
for s in steps:
    secs = "" if s["seconds"] is None else f"{s['seconds']:.0f}"
    md.append(f"| {s['step']} | {s['status']} | {secs} | {s['timebox_s'] or ''} | {s['note']} |")
md += ["", "Commands:", ""] + [f"- `{s['step']}`: `{s['command']}`" for s in steps]
for t in tables:
    md += ["", t]
atomic(os.path.join(out, "gpu_check.md"), "\n".join(md) + "\n")
PYEOF
}

record() {  # name status seconds timebox note command
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" >> "$STATE"
}

status_of() { awk -F'\t' -v n="$1" '$1 == n { s = $2 } END { print s }' "$STATE"; }

ARCH="${GPU_CHECK_ARCH:-}"
ENV_JSON="{}"
if [ "$DRY" = 0 ]; then
  : > "$LOG"
  log "vtrack GPU check in $ROOT, budget ${BUDGET}s, results in $OUT"
  if [ -z "$ARCH" ] && command -v nvidia-smi >/dev/null 2>&1; then
    ARCH="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' ')"
  fi
  ENV_JSON="$(timeout 60 "$PY" - "$ARCH" <<'PYEOF' 2>>"$LOG"
import json, subprocess, sys
env = {"arch": sys.argv[1] or None}
try:
    env["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    pass
try:
    import torch
    env.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        if not env["arch"]:
            env["arch"] = "%d.%d" % torch.cuda.get_device_capability(0)
    import triton
    env["triton"] = triton.__version__
except Exception as exc:  # report, do not stop the check
    env["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(env))
PYEOF
)" || ENV_JSON='{"error": "environment probe failed"}'
  log "environment: $ENV_JSON"
  [ -n "$ARCH" ] || ARCH="$(echo "$ENV_JSON" | sed -n 's/.*"arch": "\([0-9.]*\)".*/\1/p')"
  case "$ENV_JSON" in
    *'"cuda_available": true'*) HAVE_GPU=1 ;;
    *) HAVE_GPU=0 ;;
  esac
  [ "${GPU_CHECK_ASSUME_GPU:-0}" = 1 ] && HAVE_GPU=1
else
  echo "vtrack GPU check plan (dry run): budget ${BUDGET}s, results would go to $OUT"
  HAVE_GPU=1
fi
[ -n "$ARCH" ] || ARCH="<the GPU's compute capability>"

for spec in "${STEPS[@]}"; do
  IFS='|' read -r name tmax tmin needs cmd <<< "$spec"
  shown="${cmd//\$ARCH/$ARCH}"
  shown="${shown//\$ART/$ART}"
  now=$(date +%s)
  left=$(( BUDGET - (now - START) ))
  box=$(( tmax < left ? tmax : left ))
  if [ "$DRY" = 1 ]; then
    dep=""; [ "$needs" = "-" ] || dep=" (needs $needs)"
    printf '  %-17s time box %4ss (starts only with >= %ss left)%s\n      %s\n' "$name" "$tmax" "$tmin" "$dep" "$shown"
    record "$name" planned "" "$tmax" "needs $needs" "$shown"
    continue
  fi
  if [ "$HAVE_GPU" = 0 ]; then
    log "SKIP $name: no CUDA device"
    record "$name" "skipped-no-gpu" 0 "$box" "torch.cuda.is_available() is False" "$shown"
    write_reports; continue
  fi
  if [ "$needs" != "-" ] && [ "$(status_of "$needs")" != "passed" ]; then
    log "SKIP $name: needs $needs, which did not pass"
    record "$name" "skipped-dependency" 0 "$box" "needs $needs" "$shown"
    write_reports; continue
  fi
  if [ "$left" -lt "$tmin" ]; then
    log "SKIP $name: ${left}s of the budget left, needs >= ${tmin}s"
    record "$name" "skipped-for-time" 0 "$box" "${left}s left" "$shown"
    write_reports; continue
  fi
  log "RUN  $name (time box ${box}s): $shown"
  t0=$(date +%s)
  ARCH="$ARCH" ART="$ART" timeout --kill-after=10 "$box" bash -c "$shown" 2>&1 | tee "$ART/$name.out" >> "$LOG"
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  case $rc in
    0) st=passed; note="" ;;
    124|137) st=timed-out; note="killed after ${box}s" ;;
    *) st=failed; note="exit status $rc" ;;
  esac
  # pytest's last summary line (e.g. "12 passed, 1 failed in 30.1s") as the note
  case "$name" in *tests) note="${note:+$note; }$(grep -E '(passed|failed|skipped|error|no tests ran)' "$ART/$name.out" | tail -n1 | tr -d '=\t' | sed 's/^ *//')" ;; esac
  log "$(printf '%-4s' "${st%%-*}" | tr a-z A-Z) $name in ${secs}s ${note:+($note)}"
  record "$name" "$st" "$secs" "$box" "$note" "$shown"
  write_reports
done

write_reports
passed=$(awk -F'\t' '$2 == "passed" { printf "%s ", $1 }' "$STATE")
failed=$(awk -F'\t' '$2 == "failed" || $2 == "timed-out" { printf "%s(%s) ", $1, $2 }' "$STATE")
for_time=$(awk -F'\t' '$2 == "skipped-for-time" { printf "%s ", $1 }' "$STATE")
other=$(awk -F'\t' '$2 ~ /^skipped-(dependency|no-gpu)$/ { printf "%s(%s) ", $1, $2 }' "$STATE")
planned=$(awk -F'\t' '$2 == "planned" { printf "%s ", $1 }' "$STATE")
rm -f "$STATE"
{
  if [ "$DRY" = 1 ]; then
    echo "planned: ${planned:-none}"
    echo "(dry run: nothing was run; plan written to $OUT/gpu_check.json and gpu_check.md)"
  else
    echo "passed: ${passed:-none}"
    echo "failed: ${failed:-none}"
    echo "skipped for time: ${for_time:-none}"
    echo "skipped otherwise: ${other:-none}"
    echo "results: $OUT/gpu_check.json, $OUT/gpu_check.md, $OUT/gpu_check.log ($(( $(date +%s) - START ))s)"
  fi
} | tee -a "$LOG"
# exit 1 when a step failed or timed out, or there was no GPU (a dependency skip follows from one of those
# or from a lack of time)
[ -z "$failed" ] && [ "$HAVE_GPU" = 1 ]
