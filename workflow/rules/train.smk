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
