rule rank:
    input:
        manifest=f"{RUN}/manifest.csv",
        predictions=predictions_of(0),
        minus_predictions=predictions_of(1),
        failures=featurize_failures,
    output:
        ranked=f"{RUN}/ranked.csv",
        flagged=f"{RUN}/flagged.csv",
        failures=f"{RUN}/failures.csv",
    params:
        predictions=f"{RUN}/predictions/{RANKING_MODEL}",
        minus=minus_predictions_argument(),
        failures=GRAPHS,
        model=mconfig.model_dir(config, RANKING_MODEL),
        flag=mconfig.flag_arguments(config),
    log:
        f"{RUN}/logs/rank.log",
    benchmark:
        f"{RUN}/benchmarks/rank.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/mofsieve.yaml"
    shell:
        "mofsieve rank --manifest {input.manifest} --predictions {params.predictions}"
        " {params.minus} --failures {params.failures} --model {params.model} {params.flag}"
        " --ranked {output.ranked} --flagged {output.flagged}"
        " --failures-out {output.failures} > {log} 2>&1"
