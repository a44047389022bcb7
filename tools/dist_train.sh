#!/usr/bin/env bash
# Multi-GPU training: tools/dist_train.sh CONFIG NUM_GPUS [train.py args...]
exec bash "$(dirname "$0")/dist_launch.sh" train.py "$2" "$1" "${@:3}"
