rule report:
    input:
        ranked=f"{RUN}/ranked.csv",
        failures=f"{RUN}/failures.csv",
        manifest=f"{RUN}/manifest.csv",
        graphs=graph_folders,
        attention=predictions_of(0),
        # GCMC validation of the top picks (nothing when gcmc.simulate.top is 0)
        validation=validation_outputs(),
    output:
        report=f"{RUN}/report.html",
    log:
        f"{RUN}/logs/report.log",
    benchmark:
        f"{RUN}/benchmarks/report.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        quantity=mconfig.quantity(config),
        table_rows=config["report"]["table_rows"],
        pictures=config["report"]["pictures"],
        title=f"mofsieve screening report: {config['run']}",
        validation=vconfig.report_validation_arguments(config, RUN),
        models=[
            mconfig.model_dir(config, label) for label in mconfig.model_labels(config)
        ],
    shell:
        "mofsieve report --ranked {input.ranked:q} --failures {input.failures:q}"
        " --manifest {input.manifest:q} --graphs {input.graphs:q}"
        " --attention {input.attention:q} --quantity {params.quantity:q}"
        " --title {params.title:q} --top {params.table_rows:q} --pictures {params.pictures:q}"
        " {params.validation:q} --models {params.models:q}"
        " --out {output.report:q} > {log:q} 2>&1"
