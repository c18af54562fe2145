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
# A local run spreads its jobs over --cores (mofsieve.config.job_names): resume it with the
# same --cores, or its featurize and predict jobs are regrouped and run again.
LOCAL_CORES = mconfig.local_cores(workflow)
PREDICTIONS = f"{RUN}/predictions"


# A featurize or predict job takes several consecutive shards ({shards}: its first and last,
# e.g. 00005-00009) and writes their files into its folder shards-{shards}.
wildcard_constraints:
    shards=r"\d{5}-\d{5}",
    model=r"[0-9.]+bar",


def manifest_path():
    """The run's manifest (once the manifest checkpoint has run)."""
    return checkpoints.manifest.get().output.manifest


def featurize_jobs():
    return mconfig.jobs_of(
        manifest_path(), config["featurize"]["shards_per_job"], LOCAL_CORES
    )


def predict_jobs():
    return mconfig.jobs_of(
        manifest_path(), config["predict"]["shards_per_job"], LOCAL_CORES
    )


def graph_folders(wildcards):
    """Every folder of graph shards: one per featurize job, or the one MPI job's."""
    if MPI_FEATURIZE:
        return [GRAPHS]
    return mconfig.job_folders(GRAPHS, featurize_jobs())


def graphs_of_predict_job(wildcards):
    """The graph folders that hold a predict job's shards."""
    if MPI_FEATURIZE:
        return [GRAPHS]
    return mconfig.folders_holding(GRAPHS, featurize_jobs(), wildcards.shards)


def model_json(wildcards):
    return mconfig.model_json(config, wildcards.model)


def model_folder(wildcards):
    return mconfig.model_dir(config, wildcards.model)


def predictions_of(position):
    """Input function: the prediction folders of MODELS[position] (none if absent)."""

    def inner(wildcards):
        if position >= len(MODELS):
            return []
        return mconfig.job_folders(f"{PREDICTIONS}/{MODELS[position]}", predict_jobs())

    return inner


def train_labels(wildcards):
    if not config["train"]["labels"]:
        raise ValueError(
            "set train.labels (CSV mof_id,<target>) in config.yaml to train"
        )
    return config["train"]["labels"]


def train_graphs(wildcards):
    return config["train"]["graphs"] or graph_folders(wildcards)


def folder_of(output_name):
    """Params function: the folder holding the named output file."""
    return lambda wildcards, output: os.path.dirname(output[output_name])


def final_outputs():
    return [
        f"{RUN}/ranked.csv",
        f"{RUN}/flagged.csv",
        f"{RUN}/failures.csv",
        f"{RUN}/warnings.csv",
        f"{RUN}/gcmc",
        f"{RUN}/report.html",
    ]


def mpi_memory_mb(threads):
    """The one MPI featurize job's memory: 1.5 GB a core on every rank."""
    return 1500 * threads * config["featurize"]["mpi_tasks"]
