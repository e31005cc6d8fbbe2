#!/usr/bin/env bash
# Third stage of the generalist localizer on one GPU: fine-tune the shipped `decode_generalist`
# (experiment=localizer_generalist_finetune: preset windows mixed into the randomization, 15 %
# movie-edge windows) at 4x the CPU batch, as many steps as the data workers feed in
# TRAIN_SECONDS. Two preset shares train side by side on one GPU (half the CPU workers each);
# which one ships is chosen afterwards on the tuning split (benchmarks/bench_preset_thresholds.py
# seeds 101-120) and reported on held-out seeds and the external renderers.
#
#   OUT=/path/to/out TRAIN_SECONDS=390 SHARES="0.35 0.5" bash scripts/finetune_generalist_gpu.sh
#
# Each run's step count is fixed before training (scripts/train_gpu.py) and recorded in its
# model folder's training command, so `python train.py <that command>` reproduces it on any
# hardware (a CPU only slower).
set -euo pipefail
OUT=${OUT:?set OUT to the output folder}
SECONDS_PLANNED=${TRAIN_SECONDS:-390}
SHARES=${SHARES:-"0.35 0.5"}
n=$(echo $SHARES | wc -w)
WORKERS=${WORKERS:-$(( ($(nproc) - n) / n ))}
export PYTHONUNBUFFERED=1
pids=()
for share in $SHARES; do
  tag=p${share/./}
  python3 scripts/train_gpu.py --experiment localizer_generalist_finetune \
    --out "$OUT/gen_$tag/model" --seconds "$SECONDS_PLANNED" --workers "$WORKERS" \
    --max-time-factor "${MAX_TIME_FACTOR:-1.12}" ${STEPS:+--steps $STEPS} --run-dir "$OUT/gen_$tag/run" -- \
    data.randomization.preset_probability="$share" data.batch_size="${BATCH:-64}" \
    data.train_items=32768 model.lr="${LR:-5e-4}" model.init_from=decode_generalist \
    ${EXTRA:-} > "$OUT/gen_$tag.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
