# One job per shard and model: predictions, and every atom's weight in the readout (the
# attention weights of attention pooling; uniform weights, with the readout recorded, for
# mean/sum pooling) for the report's pictures.
rule predict:
    input:
        graphs=graph_shard,
        model=model_json,
    output:
        predictions=f"{RUN}/predictions/{{model}}/shard-{{shard}}.csv",
        attention=f"{RUN}/predictions/{{model}}/attention-{{shard}}.h5",
    log:
        f"{RUN}/logs/predict/{{model}}/{{shard}}.log",
    benchmark:
        f"{RUN}/benchmarks/predict/{{model}}/{{shard}}.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    threads: config["predict"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        graphs=f"{GRAPHS}/shard-{{shard}}.h5",
        model=model_folder,
        device=config["device"],
    shell:
        "mofsieve predict --model {params.model:q} --graphs {params.graphs:q}"
        " --out {output.predictions:q} --attention {output.attention:q}"
        " --device {params.device:q} --threads {threads:q} > {log:q} 2>&1"
