#!/usr/bin/env bash
# GPU-scale recipe of the shipped generalist localizer (decode_generalist): the CPU recipe
# (configs/experiment/localizer_generalist.yaml) with 4x the batch and as many optimizer steps as
# the machine's data workers can feed in TRAIN_SECONDS. The step count is fixed before training
# from a measured simulation rate and recorded in the model folder's command, so a rerun with
# that step count reproduces the model on any hardware (only slower without the workers).
#
#   OUT=/path/to/out TRAIN_SECONDS=380 bash scripts/train_generalist_gpu.sh
set -euo pipefail
OUT=${OUT:?set OUT to the output folder}
TRAIN_SECONDS=${TRAIN_SECONDS:-380}
WORKERS=${WORKERS:-$(( $(nproc) - 1 ))}
BATCH=${BATCH:-64}
export PYTHONUNBUFFERED=1
STEPS=${STEPS:-$(python3 - "$WORKERS" "$BATCH" "$TRAIN_SECONDS" <<'PY'
import sys, time
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
import os
workers, batch, seconds = map(int, sys.argv[1:])
with initialize_config_dir(config_dir=os.path.abspath("configs"), version_base="1.3"):
    cfg = compose("train", overrides=["experiment=localizer_generalist", "logger=none"])
dm = instantiate(cfg.data)
dm.setup("fit")
ds = dm.train_set
ds.make_item(0)
t0 = time.perf_counter(); n = 96
for i in range(n):
    ds.make_item(i + 1)
per_window = (time.perf_counter() - t0) / n
rate = 0.8 * workers / per_window                       # windows/s, 80 % worker efficiency
steps = int(min(20000, max(200, rate * seconds / batch)) // 100 * 100)
print(f"simulation: {1e3 * per_window:.1f} ms/window on one core; {workers} workers; "
      f"{rate:.0f} windows/s expected -> {steps} steps of batch {batch}", file=sys.stderr)
print(steps)
PY
)}
CAP=$(( TRAIN_SECONDS * 3 / 2 ))   # safety cap only: the step count ends a normal run
echo "steps: $STEPS"
python3 train.py experiment=localizer_generalist trainer.accelerator=auto \
  data.num_workers="$WORKERS" data.batch_size="$BATCH" data.train_items=32768 \
  trainer.max_steps="$STEPS" model.lr=3e-3 torch_threads=null trainer.enable_progress_bar=false \
  hydra.run.dir=/tmp/gen_gpu export_pretrained="$OUT/decode_generalist" \
  +trainer.max_time="$(printf '00:00:%02d:%02d' $(( CAP / 60 )) $(( CAP % 60 )))" \
  "trained_on='one GPU, data simulated by $WORKERS CPU workers; steps fixed before training'"
