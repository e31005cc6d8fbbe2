#!/usr/bin/env bash
# GPU-scale recipe of the shipped generalist localizer (decode_generalist): the CPU recipe
# (configs/experiment/localizer_generalist.yaml) with 4x the batch and as many optimizer steps as
# the machine's data workers (and the GPU) can feed in TRAIN_SECONDS. The step count is fixed
# before training by scripts/train_gpu.py from measured rates and recorded in the model folder's
# command, so a rerun with that step count reproduces the model on any hardware.
#
#   OUT=/path/to/out TRAIN_SECONDS=380 bash scripts/train_generalist_gpu.sh
set -euo pipefail
OUT=${OUT:?set OUT to the output folder}
export PYTHONUNBUFFERED=1
python3 scripts/train_gpu.py --experiment localizer_generalist --out "$OUT/decode_generalist" \
  --seconds "${TRAIN_SECONDS:-380}" --workers "${WORKERS:-$(( $(nproc) - 1 ))}" \
  --run-dir /tmp/gen_gpu -- data.batch_size="${BATCH:-64}" data.train_items=32768 model.lr=3e-3
