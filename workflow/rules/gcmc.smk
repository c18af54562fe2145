rule gcmc:
    input:
        flagged=f"{RUN}/flagged.csv",
    output:
        gcmc=directory(f"{RUN}/gcmc"),
    params:
        options=mconfig.gcmc_arguments(config),
    log:
        f"{RUN}/logs/gcmc.log",
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/mofsieve.yaml"
    shell:
        "mofsieve gcmc --flagged {input.flagged} --out {output.gcmc} {params.options}"
        " > {log} 2>&1"
