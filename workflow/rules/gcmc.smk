rule gcmc:
    input:
        flagged=f"{RUN}/flagged.csv",
    output:
        gcmc=directory(f"{RUN}/gcmc"),
    log:
        f"{RUN}/logs/gcmc.log",
    benchmark:
        f"{RUN}/benchmarks/gcmc.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        options=mconfig.gcmc_arguments(config),
    shell:
        "mofsieve gcmc --flagged {input.flagged:q} --out {output.gcmc:q} {params.options:q}"
        " > {log:q} 2>&1"
