#!/usr/bin/env bash
# Multi-GPU evaluation: tools/dist_test.sh CONFIG CHECKPOINT NUM_GPUS [test.py args...]
exec bash "$(dirname "$0")/dist_launch.sh" test.py "$3" "$1" "$2" "${@:4}"
