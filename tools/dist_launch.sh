#!/usr/bin/env bash
# Shared by dist_train.sh / dist_test.sh: run a tools/ script on NUM_PROCS processes with torch.distributed.run.
#   tools/dist_launch.sh SCRIPT NUM_PROCS [script args...]   (PYTHON, NNODES, NODE_RANK, PORT, MASTER_ADDR from env)
SCRIPT=$1
NPROCS=$2
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --nproc_per_node="$NPROCS" --master_port="${PORT:-29500}" \
    "$(dirname "$0")/$SCRIPT" "${@:3}" --launcher pytorch
