# Input functions of `snakemake retrain` (workflow/rules/train.smk), apart from its rules as
# the linter asks; no logic beyond calling mofsieve.config.
RETRAINED = f"{RUN}/retrained"


def retrain_source(wildcards):
    """The ranking model's model.json: the model that is fine-tuned."""
    if config["target"]["pressure"] == mconfig.WORKING_CAPACITY:
        raise ValueError(
            "snakemake retrain fine-tunes one uptake model on simulated uptakes at its "
            "pressure; it does not retrain for a working capacity target"
        )
    return mconfig.model_json(config, RANKING_MODEL)


def retrain_graphs(wildcards):
    """The graphs of the original labels (train.graphs) and of this run's MOFs."""
    return [*config["train"]["graphs"], *graph_folders(wildcards)]


def retrained_predictions(wildcards):
    """The fine-tuned model's prediction folders, one per predict job."""
    return mconfig.job_folders(f"{RETRAINED}/predictions", predict_jobs())
