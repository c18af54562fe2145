rule train:
    input:
        labels=train_labels,
        graphs=train_graphs,
    output:
        model=f"{config['train']['out']}/model.json",
    params:
        graphs=train_graph_folders(),
        target=config["train"]["target"],
        out=folder_of("model"),
        extra=config["train"]["extra_args"],
    log:
        f"{RUN}/logs/train.log",
    benchmark:
        f"{RUN}/benchmarks/train.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
    conda:
        "../../envs/mofsieve.yaml"
    shell:
        "mofsieve train --labels {input.labels} --target {params.target}"
        " --graphs {params.graphs} --out {params.out} {params.extra} > {log} 2>&1"
