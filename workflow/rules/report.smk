rule report:
    input:
        ranked=f"{RUN}/ranked.csv",
        failures=f"{RUN}/failures.csv",
        manifest=f"{RUN}/manifest.csv",
        graphs=all_graph_shards,
        attention=ranking_attention,
    output:
        report=f"{RUN}/report.html",
    params:
        graphs=GRAPHS,
        attention=mconfig.report_attention_argument(config),
        quantity=mconfig.quantity(config),
        table_rows=config["report"]["table_rows"],
        pictures=config["report"]["pictures"],
        title=f"mofsieve screening report: {config['run']}",
    log:
        f"{RUN}/logs/report.log",
    benchmark:
        f"{RUN}/benchmarks/report.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/mofsieve.yaml"
    shell:
        "mofsieve report --ranked {input.ranked} --failures {input.failures}"
        " --manifest {input.manifest} --graphs {params.graphs}"
        " {params.attention} --quantity '{params.quantity}'"
        " --title '{params.title}' --top {params.table_rows}"
        " --pictures {params.pictures} --out {output.report} > {log} 2>&1"
