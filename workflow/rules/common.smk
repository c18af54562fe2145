# Config validation and input functions only: no rules here, no logic beyond calling
# mofsieve.config (where the logic lives and is unit-tested).
import os

from mofsieve import config as mconfig

# config.yaml, then each --configfile, then --config: rebuilt from the sources (snakemake's
# deep merge cannot replace a choice such as flag), validated, defaults filled in
_validated = mconfig.workflow_config(
    workflow,
    os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"),
)
config.clear()
config.update(_validated)

RUN = mconfig.run_dir(config)
# e.g. ["0.15bar"], or ["16bar", "0.15bar"] (working capacity): the ranking model first
MODELS = mconfig.model_labels(config)
RANKING_MODEL = MODELS[0]
MPI_FEATURIZE = config["featurize"]["mpi"]
GRAPHS = f"{RUN}/graphs"
RANKING_PREDICTIONS = f"{RUN}/predictions/{RANKING_MODEL}"


wildcard_constraints:
    shard=r"\d{5}",
    model=r"[0-9.]+bar",


def shards(wildcards):
    """Shard ids of this run's manifest (known once the manifest checkpoint has run)."""
    return mconfig.shard_ids(checkpoints.manifest.get().output.manifest)


def graph_shard(wildcards):
    """What a predict job waits for: its shard, or the one MPI job's graph folder."""
    return GRAPHS if MPI_FEATURIZE else f"{GRAPHS}/shard-{wildcards.shard}.h5"


def all_graph_shards(wildcards):
    if MPI_FEATURIZE:
        return [GRAPHS]
    return expand(f"{GRAPHS}/shard-{{shard}}.h5", shard=shards(wildcards))


def featurize_failures(wildcards):
    if MPI_FEATURIZE:
        return [GRAPHS]
    return expand(f"{GRAPHS}/failures-{{shard}}.csv", shard=shards(wildcards))


def model_json(wildcards):
    return mconfig.model_json(config, wildcards.model)


def model_folder(wildcards):
    return mconfig.model_dir(config, wildcards.model)


def predictions_of(position):
    """Input function: every shard's predictions of MODELS[position] (none if absent)."""

    def inner(wildcards):
        if position >= len(MODELS):
            return []
        return expand(
            f"{RUN}/predictions/{MODELS[position]}/shard-{{shard}}.csv",
            shard=shards(wildcards),
        )

    return inner


def ranking_attention(wildcards):
    """Every shard's per-atom weights of the ranking model (uniform for mean/sum pooling)."""
    return expand(
        f"{RANKING_PREDICTIONS}/attention-{{shard}}.h5", shard=shards(wildcards)
    )


def minus_predictions_arguments():
    if len(MODELS) < 2:
        return []
    return ["--minus-predictions", f"{RUN}/predictions/{MODELS[1]}"]


def train_labels(wildcards):
    if not config["train"]["labels"]:
        raise ValueError(
            "set train.labels (CSV mof_id,<target>) in config.yaml to train"
        )
    return config["train"]["labels"]


def train_graphs(wildcards):
    return config["train"]["graphs"] or all_graph_shards(wildcards)


def train_graph_folders():
    return config["train"]["graphs"] or [GRAPHS]


def folder_of(output_name):
    """Params function: the folder holding the named output file."""
    return lambda wildcards, output: os.path.dirname(output[output_name])


def final_outputs():
    return [
        f"{RUN}/ranked.csv",
        f"{RUN}/flagged.csv",
        f"{RUN}/failures.csv",
        f"{RUN}/gcmc",
        f"{RUN}/report.html",
    ]


def mpi_memory_mb(threads):
    """The one MPI featurize job's memory: 1.5 GB a core on every rank."""
    return 1500 * threads * config["featurize"]["mpi_tasks"]
