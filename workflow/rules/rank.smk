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
    log:
        f"{RUN}/logs/rank.log",
    benchmark:
        f"{RUN}/benchmarks/rank.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        predictions=RANKING_PREDICTIONS,
        minus=minus_predictions_arguments(),
        failures=GRAPHS,
        model=mconfig.model_dir(config, RANKING_MODEL),
        flag=mconfig.flag_arguments(config),
    shell:
        "mofsieve rank --manifest {input.manifest:q} --predictions {params.predictions:q}"
        " {params.minus:q} --failures {params.failures:q} --model {params.model:q}"
        " {params.flag:q} --ranked {output.ranked:q} --flagged {output.flagged:q}"
        " --failures-out {output.failures:q} > {log:q} 2>&1"
