# One job per shard and model. Attention-pooling models also write per-atom weights for the
# report; mean/sum-pooling models have none, so their rule has no attention output.
if ATTENTION:

    rule predict:
        input:
            graphs=graph_shard,
            model=model_json,
        output:
            predictions=f"{RUN}/predictions/{{model}}/shard-{{shard}}.csv",
            attention=f"{RUN}/predictions/{{model}}/attention-{{shard}}.h5",
        params:
            graphs=f"{GRAPHS}/shard-{{shard}}.h5",
            model=model_folder,
            device=config["device"],
        log:
            f"{RUN}/logs/predict/{{model}}/{{shard}}.log",
        benchmark:
            f"{RUN}/benchmarks/predict/{{model}}/{{shard}}.tsv"
        threads: config["predict"]["threads"]
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            "../../envs/mofsieve.yaml"
        shell:
            "mofsieve predict --model {params.model} --graphs {params.graphs}"
            " --out {output.predictions} --attention {output.attention}"
            " --device {params.device} --threads {threads} > {log} 2>&1"

else:

    rule predict:
        input:
            graphs=graph_shard,
            model=model_json,
        output:
            predictions=f"{RUN}/predictions/{{model}}/shard-{{shard}}.csv",
        params:
            graphs=f"{GRAPHS}/shard-{{shard}}.h5",
            model=model_folder,
            device=config["device"],
        log:
            f"{RUN}/logs/predict/{{model}}/{{shard}}.log",
        benchmark:
            f"{RUN}/benchmarks/predict/{{model}}/{{shard}}.tsv"
        threads: config["predict"]["threads"]
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            "../../envs/mofsieve.yaml"
        shell:
            "mofsieve predict --model {params.model} --graphs {params.graphs}"
            " --out {output.predictions}"
            " --device {params.device} --threads {threads} > {log} 2>&1"
