checkpoint manifest:
    output:
        manifest=f"{RUN}/manifest.csv",
    params:
        inputs=mconfig.shell_words(config["inputs"]),
        shard_size=config["shard_size"],
    log:
        f"{RUN}/logs/manifest.log",
    benchmark:
        f"{RUN}/benchmarks/manifest.tsv"
    resources:
        mem_mb=2000,
        runtime=120,
    conda:
        "../../envs/mofsieve.yaml"
    shell:
        "mofsieve manifest {params.inputs} --out {output.manifest}"
        " --shard-size {params.shard_size} > {log} 2>&1"
