if not MPI_FEATURIZE:

    rule featurize:
        input:
            manifest=f"{RUN}/manifest.csv",
        output:
            graphs=f"{GRAPHS}/shard-{{shard}}.h5",
            failures=f"{GRAPHS}/failures-{{shard}}.csv",
        params:
            out=folder_of("graphs"),
            options=mconfig.featurize_arguments(config),
        log:
            f"{RUN}/logs/featurize/{{shard}}.log",
        benchmark:
            f"{RUN}/benchmarks/featurize/{{shard}}.tsv"
        threads: config["featurize"]["threads"]
        resources:
            mem_mb=lambda wildcards, threads: 1500 * threads,
            runtime=120,
        conda:
            "../../envs/mofsieve.yaml"
        shell:
            "mofsieve featurize --manifest {input.manifest} --shard {wildcards.shard}"
            " --out {params.out} --jobs {threads} {params.options} > {log} 2>&1"

else:

    rule featurize_mpi:
        input:
            manifest=f"{RUN}/manifest.csv",
        output:
            graphs=directory(GRAPHS),
        params:
            options=mconfig.featurize_arguments(config),
        log:
            f"{RUN}/logs/featurize_mpi.log",
        benchmark:
            f"{RUN}/benchmarks/featurize_mpi.tsv"
        threads: config["featurize"]["threads"]
        resources:
            mem_mb=lambda wildcards, threads: 1500 * threads * config["featurize"]["mpi_tasks"],
            runtime=720,
            tasks=config["featurize"]["mpi_tasks"],
            mpi=config["featurize"]["mpi_launcher"],
        conda:
            "../../envs/mofsieve.yaml"
        shell:
            "{resources.mpi} -n {resources.tasks} mofsieve featurize --mpi"
            " --manifest {input.manifest} --out {output.graphs} --jobs {threads}"
            " {params.options} > {log} 2>&1"
