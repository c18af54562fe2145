if not MPI_FEATURIZE:

    rule featurize:
        input:
            manifest=f"{RUN}/manifest.csv",
        output:
            graphs=f"{GRAPHS}/shard-{{shard}}.h5",
            failures=f"{GRAPHS}/failures-{{shard}}.csv",
        log:
            f"{RUN}/logs/featurize/{{shard}}.log",
        benchmark:
            f"{RUN}/benchmarks/featurize/{{shard}}.tsv"
        conda:
            "../../envs/mofsieve.yaml"
        threads: config["featurize"]["threads"]
        resources:
            mem_mb=lambda wildcards, threads: 1500 * threads,
            runtime=120,
        params:
            out=folder_of("graphs"),
            options=mconfig.featurize_arguments(config),
        shell:
            "mofsieve featurize --manifest {input.manifest:q} --shard {wildcards.shard:q}"
            " --out {params.out:q} --jobs {threads:q} {params.options:q} > {log:q} 2>&1"

else:

    rule featurize_mpi:
        input:
            manifest=f"{RUN}/manifest.csv",
        output:
            graphs=directory(GRAPHS),
        log:
            f"{RUN}/logs/featurize_mpi.log",
        benchmark:
            f"{RUN}/benchmarks/featurize_mpi.tsv"
        conda:
            "../../envs/mofsieve.yaml"
        threads: config["featurize"]["threads"]
        resources:
            mem_mb=lambda wildcards, threads: mpi_memory_mb(threads),
            runtime=720,
            tasks=config["featurize"]["mpi_tasks"],
            mpi=config["featurize"]["mpi_launcher"],
        params:
            options=mconfig.featurize_arguments(config),
        shell:
            # the launcher is a command prefix of several words ("srun --mpi=pmi2")
            "{resources.mpi} -n {resources.tasks:q} mofsieve featurize --mpi"
            " --manifest {input.manifest:q} --out {output.graphs:q} --jobs {threads:q}"
            " {params.options:q} > {log:q} 2>&1"
