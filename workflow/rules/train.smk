# `snakemake train`: a new model from your own labels (config: train).
rule train:
    input:
        labels=train_labels,
        graphs=train_graphs,
    output:
        model=mconfig.train_model_json(config),
    log:
        f"{RUN}/logs/train.log",
    benchmark:
        f"{RUN}/benchmarks/train.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
    params:
        target=config["train"]["target"],
        out=folder_of("model"),
        extra=mconfig.train_extra_arguments(config),
    shell:
        "mofsieve train --labels {input.labels:q} --target {params.target:q}"
        " --graphs {input.graphs:q} --out {params.out:q} {params.extra:q} > {log:q} 2>&1"


# `snakemake boost`: the model of `snakemake train` blended with gradient-boosted trees on its
# descriptors and composition (mofsieve boost; blend weight chosen on its validation split)
rule boost:
    input:
        labels=train_labels,
        graphs=train_graphs,
        model=mconfig.train_model_json(config),
    output:
        model=mconfig.boosted_model_json(config),
    log:
        f"{RUN}/logs/boost.log",
    benchmark:
        f"{RUN}/benchmarks/boost.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model=lambda wildcards, input: os.path.dirname(input.model),
        out=folder_of("model"),
    shell:
        "mofsieve boost --model {params.model:q} --labels {input.labels:q}"
        " --graphs {input.graphs:q} --out {params.out:q} --threads {threads:q} > {log:q} 2>&1"


# `snakemake retrain`: fine-tune the ranking model on this run's GCMC results
# ({RUN}/validation.csv, column `simulated`) laid over train.labels, then rank the run again
# with it into {RUN}/retrained/ (the first ranking stays as it was).
include: "retrain_inputs.smk"


rule retrain_model:
    input:
        labels=train_labels,
        simulated=f"{RUN}/validation.csv",
        graphs=retrain_graphs,
        source=retrain_source,
    output:
        model=f"{RETRAINED}/model/model.json",
    log:
        f"{RUN}/logs/retrain_model.log",
    benchmark:
        f"{RUN}/benchmarks/retrain_model.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
    params:
        source=lambda wildcards, input: os.path.dirname(input.source),
        out=folder_of("model"),
        epochs=config["train"]["retrain_epochs"],
        lr=config["train"]["retrain_lr"],
        # a multi-target model: the run's uptakes are those of its ranking target
        target=lambda wildcards: mconfig.simulated_target_arguments(
            config, RANKING_MODEL
        ),
    shell:
        "mofsieve train --init-from {params.source:q} --labels {input.labels:q}"
        " --simulated-labels {input.simulated:q} {params.target:q} --graphs {input.graphs:q}"
        " --out {params.out:q} --epochs {params.epochs:q} --lr {params.lr:q}"
        " --threads {threads:q} > {log:q} 2>&1"


rule predict_retrained:
    input:
        graphs=graphs_of_predict_job,
        model=f"{RETRAINED}/model/model.json",
    output:
        predictions=directory(f"{RETRAINED}/predictions/shards-{{shards}}"),
    log:
        f"{RUN}/logs/predict_retrained/{{shards}}.log",
    benchmark:
        f"{RUN}/benchmarks/predict_retrained/{{shards}}.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    threads: config["predict"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        graphs=lambda wildcards, input: mconfig.shard_files(
            input.graphs, wildcards.shards, "shard-{}.h5"
        ),
        model=lambda wildcards, input: os.path.dirname(input.model),
        target=lambda wildcards: mconfig.predict_target_arguments(config, RANKING_MODEL),
        device=config["device"],
    shell:
        "mofsieve predict --model {params.model:q} {params.target:q} --graphs {params.graphs:q}"
        " --out-dir {output.predictions:q} --device {params.device:q}"
        " --threads {threads:q} > {log:q} 2>&1"


# the target of `snakemake retrain`: this run ranked again by the fine-tuned model
rule retrain:
    input:
        manifest=f"{RUN}/manifest.csv",
        predictions=retrained_predictions,
        graphs=graph_folders,
        model=f"{RETRAINED}/model/model.json",
    output:
        ranked=f"{RETRAINED}/ranked.csv",
        flagged=f"{RETRAINED}/flagged.csv",
        failures=f"{RETRAINED}/failures.csv",
        warnings=f"{RETRAINED}/warnings.csv",
    log:
        f"{RUN}/logs/retrain_rank.log",
    benchmark:
        f"{RUN}/benchmarks/retrain_rank.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        model=lambda wildcards, input: os.path.dirname(input.model),
        flag=mconfig.flag_arguments(config),
        skip_checks=mconfig.skip_checks(config),
    shell:
        "mofsieve rank --manifest {input.manifest:q} --predictions {input.predictions:q}"
        " --failures {input.graphs:q} --warnings {input.graphs:q}"
        " --model {params.model:q} {params.flag:q} --skip-checks {params.skip_checks:q}"
        " --ranked {output.ranked:q} --flagged {output.flagged:q}"
        " --failures-out {output.failures:q} --warnings-out {output.warnings:q}"
        " > {log:q} 2>&1"
