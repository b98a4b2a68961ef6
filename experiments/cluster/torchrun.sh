#!/bin/bash
# Multi-node training without SLURM: run this once on every node, same arguments except NODE_RANK.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 GPUS_PER_NODE=8 experiments/cluster/torchrun.sh   # on node 0
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 GPUS_PER_NODE=8 experiments/cluster/torchrun.sh   # on node 1
#   CONFIG=experiments/stage3.yaml ... experiments/cluster/torchrun.sh --trainer.max_epochs=5   # overrides
# torchrun starts GPUS_PER_NODE processes per node; Lightning reads their ranks from the environment, and
# --trainer.devices / --trainer.num_nodes are set to match. ACCELERATOR=cpu runs it on CPUs (gloo).
# SCORESEP_DRY_RUN=1 prints the command instead of running it.
set -euo pipefail

CONFIG="${CONFIG:-experiments/stage2.yaml}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
GPUS_PER_NODE="${GPUS_PER_NODE:-1}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
ACCELERATOR="${ACCELERATOR:-gpu}"
TORCHRUN="${TORCHRUN:-torchrun}"

command=("$TORCHRUN" --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$GPUS_PER_NODE"
         --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT"
         -m scoresep fit --config "$CONFIG" --trainer.accelerator="$ACCELERATOR" --trainer.strategy=ddp
         --trainer.num_nodes="$NNODES" --trainer.devices="$GPUS_PER_NODE" --ckpt_path=last "$@")

if [[ "${SCORESEP_DRY_RUN:-0}" == "1" ]]; then
    printf '%s\n' "${command[@]}"
    exit 0
fi
exec "${command[@]}"
