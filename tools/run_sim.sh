#!/usr/bin/env bash
# 'make run': the whole graph with simulators under the sensorhub supervisor (runs inside env.sh).
# Extra arguments go to 'sensorhub up', e.g. tools/run_sim.sh --record. Ctrl-C stops everything.
set -euo pipefail
exec sensorhub up --profile sim "$@"
