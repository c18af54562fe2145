rule report:
    input:
        ranked=f"{RUN}/ranked.csv",
        failures=f"{RUN}/failures.csv",
        manifest=f"{RUN}/manifest.csv",
        graphs=graph_folders,
        attention=predictions_of(0),
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
    shell:
        "mofsieve report --ranked {input.ranked:q} --failures {input.failures:q}"
        " --manifest {input.manifest:q} --graphs {input.graphs:q}"
        " --attention {input.attention:q} --quantity {params.quantity:q}"
        " --title {params.title:q} --top {params.table_rows:q} --pictures {params.pictures:q}"
        " --out {output.report:q} > {log:q} 2>&1"
