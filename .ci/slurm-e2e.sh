#!/usr/bin/env bash
# CI after `make test`: a real single-node SLURM on loopback, then
#  1. the plan of a 300,000-CIF screen under the SLURM profile (dry run): at most 300 jobs
#  2. `snakemake --profile slurm` (+ the CI overlay) end to end on 60 real CoRE MOF CIFs + 1 broken,
#     with GCMC of the three best flagged MOFs (one SLURM job each) validated against the
#     predictions (validation.csv, validation.json, the report's validation section)
#  3. the generated RASPA sbatch array, with a stand-in for `simulate`
#  4. featurize as one 2-rank MPI job under `srun --mpi=pmi2`, asserting both ranks ran
# The daemons are stopped by their recorded PIDs on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
SMK_TIMEOUT=${SMK_TIMEOUT:-1800}
PROFILE=(--profile slurm --workflow-profile .ci/slurm-profile)
say() { printf '\n=== [%(%H:%M:%S)T] %s\n' -1 "$*"; }

# the shipped 0.15 bar model (CI_MODEL=DIR tries another, e.g. a freshly trained one)
MODEL=${CI_MODEL:-models/co2_298K_0.15bar}
[[ -f $MODEL/model.json ]] || { echo "model $MODEL missing (no model.json)" >&2; exit 1; }
MODEL_CONFIG="models={\"0.15\": $MODEL}"
command -v slurmctld >/dev/null || { say "installing SLURM"; .ci/slurm.sh install; }
say "SLURM up"
up=0
.ci/slurm.sh up || up=$?
if [[ $up -eq 3 ]]; then
    echo "a loopback SLURM started by another run is up; not touching it" >&2
    exit 1
fi
trap '.ci/slurm.sh down' EXIT  # ours from here on, also after a partial bring-up
[[ $up -eq 0 ]] || exit "$up"

rm -rf results/ci-slurm results/ci-mpi results/ci-plan
say "plan of 300,000 CIFs under the SLURM profile (dry run)"
timeout -k 60 600 python .ci/plan_jobs.py --cifs 300000 --max-jobs 300 --out results/ci-plan \
    -- "${PROFILE[@]}"
rm -rf results/ci-plan

python .ci/make_ci_input.py --count 60 --out results/ci-input/core60.tar.gz

say "snakemake --profile slurm: end to end"
t0=$SECONDS
timeout -k 60 "$SMK_TIMEOUT" snakemake "${PROFILE[@]}" \
    --configfile .ci/config-slurm.yaml .ci/config-slurm-simulate.yaml --config "$MODEL_CONFIG"
echo "end-to-end SLURM run: $((SECONDS - t0)) s"
python .ci/assert_run.py results/ci-slurm --min-mofs 50 --expect-failure BROKEN_ci
python .ci/assert_validation.py results/ci-slurm --min-simulated 2 \
    --slurm-logs results/ci-slurm/logs/slurm
jobs=$(sacct -n -X -S today -o JobName%60,State | grep -c COMPLETED || true)
echo "sacct: $jobs completed jobs so far"

say "RASPA sbatch array with a stand-in simulate"
(cd results/ci-slurm/gcmc &&
    RASPA_SIMULATE="$PWD/../../../.ci/fake-simulate" timeout -k 60 600 \
        sbatch --wait --mem-per-cpu=100 run_raspa.sbatch)
listed=$(wc -l < results/ci-slurm/gcmc/mofs.txt)
done_count=$(ls results/ci-slurm/gcmc/*/fake-simulate.done | wc -l)
[[ $listed -eq $done_count ]] || { echo "array ran $done_count of $listed tasks" >&2; exit 1; }
echo "array: $done_count of $listed tasks ran in their folders"

say "featurize as one 2-rank MPI job"
t0=$SECONDS
timeout -k 60 "$SMK_TIMEOUT" snakemake "${PROFILE[@]}" --configfile .ci/config-slurm-mpi.yaml \
    --config "$MODEL_CONFIG" -- featurize_mpi
echo "MPI featurize: $((SECONDS - t0)) s"
python - <<'PY'
import re
from pathlib import Path

from mofsieve.store import ShardReader

log = Path("results/ci-mpi/logs/featurize_mpi.log").read_text()
ranks = sorted(set(re.findall(r"MPI rank (\d+) of (\d+)", log)))
assert ranks == [("0", "2"), ("1", "2")], f"ranks seen in the log: {ranks}"
mpi = sorted(Path("results/ci-mpi/graphs").glob("shard-*.h5"))
# the per-job run: one folder of shards per featurize job
single = sorted(Path("results/ci-slurm/graphs").glob("shards-*/shard-*.h5"), key=lambda p: p.name)
assert [p.name for p in mpi] == [p.name for p in single] and mpi, (mpi, single)
for a, b in zip(mpi, single):
    assert ShardReader(a).ids == ShardReader(b).ids, a
print(f"MPI: ranks {ranks} ran; {len(mpi)} shards identical in content to the per-shard run")
PY
say "SLURM CI passed"
