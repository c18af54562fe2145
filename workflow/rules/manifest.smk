checkpoint manifest:
    output:
        manifest=f"{RUN}/manifest.csv",
    log:
        f"{RUN}/logs/manifest.log",
    benchmark:
        f"{RUN}/benchmarks/manifest.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        inputs=config["inputs"],
        shard_size=config["shard_size"],
    shell:
        "mofsieve manifest {params.inputs:q} --out {output.manifest:q}"
        " --shard-size {params.shard_size:q} > {log:q} 2>&1"
