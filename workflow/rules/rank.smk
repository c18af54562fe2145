rule rank:
    input:
        manifest=f"{RUN}/manifest.csv",
        predictions=predictions_of(0),
        minus_predictions=predictions_of(1),
        graphs=graph_folders,
    output:
        ranked=f"{RUN}/ranked.csv",
        flagged=f"{RUN}/flagged.csv",
        failures=f"{RUN}/failures.csv",
        warnings=f"{RUN}/warnings.csv",
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
        # the working capacity's desorption-pressure predictions, to subtract (or nothing)
        minus=lambda wildcards, input: mconfig.option_words(
            "--minus-predictions", input.minus_predictions
        ),
        model=mconfig.model_dir(config, RANKING_MODEL),
        flag=mconfig.flag_arguments(config),
        skip_checks=mconfig.skip_checks(config),
    shell:
        "mofsieve rank --manifest {input.manifest:q} --predictions {input.predictions:q}"
        " {params.minus:q} --failures {input.graphs:q} --warnings {input.graphs:q}"
        " --frameworks {input.graphs:q}"
        " --model {params.model:q} {params.flag:q} --skip-checks {params.skip_checks:q}"
        " --ranked {output.ranked:q} --flagged {output.flagged:q}"
        " --failures-out {output.failures:q} --warnings-out {output.warnings:q}"
        " > {log:q} 2>&1"
