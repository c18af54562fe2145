# One job per predict.shards_per_job consecutive shards and model, one process that loads the
# model once: each shard's predictions, and every atom's weight in the readout (the attention
# weights of attention pooling; uniform weights, with the readout recorded, for mean/sum
# pooling) for the report's pictures, into the job's folder (shard-K.csv, attention-K.h5).
# A multi-target model folder may serve several pressures: each job passes --target, the
# model's target at its label's pressure (mofsieve.config.model_target); working capacity is
# then two jobs per shard range, one per pressure, of the same model.
rule predict:
    input:
        graphs=graphs_of_predict_job,
        model=model_json,
    output:
        predictions=directory(f"{PREDICTIONS}/{{model}}/shards-{{shards}}"),
    log:
        f"{RUN}/logs/predict/{{model}}/{{shards}}.log",
    benchmark:
        f"{RUN}/benchmarks/predict/{{model}}/{{shards}}.tsv"
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
        model=model_folder,
        target=lambda wildcards: mconfig.predict_target_arguments(
            config, wildcards.model
        ),
        device=config["device"],
    shell:
        "mofsieve predict --model {params.model:q} {params.target:q} --graphs {params.graphs:q}"
        " --out-dir {output.predictions:q} --attention {output.predictions:q}"
        " --device {params.device:q} --threads {threads:q} > {log:q} 2>&1"
