#!/bin/bash
# Submits the shard array, then the merge to run after every shard
# succeeded. `batchtrans status products-de.yaml` shows each shard.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p logs
array=$(sbatch --parsable translate.sbatch)
sbatch --dependency=afterok:"$array" merge.sbatch
