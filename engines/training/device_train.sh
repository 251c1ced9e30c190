#!/usr/bin/env bash
# Model 2.0's teachers and student in one call of the device tool (a GPU machine lent for 15 minutes in all).
#
# Here, once (writes runs/kit/, git-ignored; 52.7 MiB, about 10 s):
#   .venv/bin/python -m engines.training.pack --out runs/kit/ferplus-train-public.npz
# Then the `run` tool, from the repository root, with carry ["runs/kit"] and timeout_s 590:
#   bash engines/training/device_train.sh
# What comes back under $OUT (the tool returns 8 files of at most 16 MiB): logs.tgz (each run's train.log and
# output), the student's best.pt, and each teacher's best.pt, in half precision where float would not fit.
# Then here: export the student (engines.training.export --prior-tau ...), quantize it (engines.quantize) and
# evaluate it (engines.evaluation); PrivateTest once, for the file that ships. docs/engines.md has the steps.
#
# Three teachers train side by side on the one GPU (two 7.8 M-parameter nets of 638 M multiply-adds a face, one of
# 3.5 M / 287 M), each finishing its schedule within TEACHER_MINUTES; then the shipped 0-1-2 architecture is
# distilled from their ensemble within STUDENT_MINUTES. Augmentation runs on the CPU in worker processes
# (engines/training/batches.py); they pass batches through /dev/shm, so a small /dev/shm gets none.
# EXTRA_TEACHERS: float model files (space-separated, carried or tracked) that teach the student beside the three,
# run through their graph in torch on the GPU (engines/training/onnx_graph.py), e.g. 1.1.0 with a refitted head
# (docs/engines.md says how to make it; carry it too): EXTRA_TEACHERS="runs/teachers/1.1.0-refit.onnx".
# A dry run on the CPU (minutes of a tiny pack): DEVICE=cpu PY=.venv/bin/python TEACHER_MINUTES=0.05 ...
set -euo pipefail
export PYTHONUNBUFFERED=1
PACK=${PACK:-runs/kit/ferplus-train-public.npz}
TEACHER_MINUTES=${TEACHER_MINUTES:-3.5}
STUDENT_MINUTES=${STUDENT_MINUTES:-3.5}
EXTRA_TEACHERS=${EXTRA_TEACHERS:-}
OUT=${OUT:-runs/device-out}
RUNS=runs/device
mkdir -p "$OUT" "$RUNS"
[ -f "$PACK" ] || { echo "no training pack at $PACK: write it first (engines.training.pack), carry runs/kit" >&2
                    exit 2; }

PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
shm_mib=$(df -Pm /dev/shm 2>/dev/null | awk 'NR == 2 {print $2}')
WORKERS=$([ "${shm_mib:-0}" -ge 1024 ] && echo 4 || echo 0)
echo "/dev/shm ${shm_mib:-?} MiB -> $WORKERS augmenting workers per run; cores: $(nproc)"

common=(--data "$PACK" --device "$DEVICE" --workers "$WORKERS" --threads 2 --augment domain --epochs 80)
teacher() {  # name, seed, widths..., blocks..., stem
  local name=$1 seed=$2; shift 2
  $PY -m engines.training.train "${common[@]}" --run-dir "$RUNS/$name" --seed "$seed" --dropout 0.3 \
      --budget-minutes "$TEACHER_MINUTES" "$@" > "$OUT/$name.out" 2>&1
}
teacher teacher-w96a 20261204 --widths 96 192 384 --blocks 2 2 2 --stem 32 & pids=($!)
teacher teacher-w96b 20261205 --widths 96 192 384 --blocks 2 2 2 --stem 32 & pids+=($!)
teacher teacher-w64 20261206 --widths 64 128 256 --blocks 2 2 2 --stem 32 & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid" || echo "a teacher failed (exit $?): its output is in logs.tgz"; done
teachers=()
for name in teacher-w96a teacher-w96b teacher-w64; do
  tail -n 2 "$OUT/$name.out"
  [ -f "$RUNS/$name/best.pt" ] && teachers+=("$RUNS/$name/best.pt")
done
for extra in $EXTRA_TEACHERS; do
  [ -f "$extra" ] && teachers+=("$extra") || echo "no extra teacher at $extra: was it carried?"
done

if [ ${#teachers[@]} -gt 0 ]; then
  $PY -m engines.training.train "${common[@]}" --run-dir "$RUNS/student" --seed 20261207 \
      --widths 32 64 128 --blocks 0 1 2 --budget-minutes "$STUDENT_MINUTES" --teacher "${teachers[@]}" \
      > "$OUT/student.out" 2>&1 || echo "the student failed (exit $?): its output is in logs.tgz"
  tail -n 2 "$OUT/student.out"
else
  echo "no teacher finished an epoch: no student"
fi

# Back to this session: one archive of the logs, and each best.pt (half precision when float is over 16 MiB;
# engines.training.export loads either).
tar -czf "$OUT/logs.tgz" -C "$RUNS" $(cd "$RUNS" && ls */train.log) -C "$OUT" $(cd "$OUT" && ls *.out)
for run in "$RUNS"/*/; do
  name=$(basename "$run")
  [ -f "$run/best.pt" ] || continue
  $PY - "$run/best.pt" "$OUT/$name.pt" <<'PY'
import os, sys
import torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
weights = sum(v.numel() * v.element_size() for v in ckpt["ema"].values())
if weights > 15 * 2**20:  # float weights would not leave room under 16 MiB: keep them in half precision
    ckpt["ema"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["ema"].items()}
torch.save(ckpt, sys.argv[2])
print(f"{sys.argv[2]}: epoch {ckpt['epoch']}, PublicTest {ckpt['val_majority_acc']:.4f}, "
      f"{os.path.getsize(sys.argv[2]) / 2**20:.1f} MiB")
PY
done
rm -f "$OUT"/*.out
ls -la "$OUT"
