if not MPI_FEATURIZE:

    # One job per featurize.shards_per_job consecutive shards (locally: evened out over the
    # cores, mofsieve.config.job_names), one process for all of them: shard-K.h5,
    # failures-K.csv, warnings-K.csv and frameworks-K.csv (the keys rank groups duplicate
    # frameworks by) of each, into the job's folder. Featurize jobs go before predict jobs
    # when both are ready: the longest work first keeps every core busy to the end (make
    # screen: 25 shards, 4 featurize + 4 predict jobs on 2 cores).
    rule featurize:
        input:
            manifest=f"{RUN}/manifest.csv",
        output:
            graphs=directory(f"{GRAPHS}/shards-{{shards}}"),
        log:
            f"{RUN}/logs/featurize/{{shards}}.log",
        benchmark:
            f"{RUN}/benchmarks/featurize/{{shards}}.tsv"
        priority: 1
        conda:
            "../../envs/mofsieve.yaml"
        threads: config["featurize"]["threads"]
        resources:
            mem_mb=lambda wildcards, threads: 1500 * threads,
            runtime=120,
        params:
            shards=lambda wildcards: mconfig.job_shards(wildcards.shards),
            options=mconfig.featurize_arguments(config),
            partial_occupancy=config["ingest"]["partial_occupancy"],
        shell:
            "mofsieve featurize --manifest {input.manifest:q} --shard {params.shards:q}"
            " --out {output.graphs:q} --jobs {threads:q} {params.options:q}"
            " --partial-occupancy {params.partial_occupancy:q} > {log:q} 2>&1"

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
            partial_occupancy=config["ingest"]["partial_occupancy"],
        shell:
            # the launcher is a command prefix of several words ("srun --mpi=pmi2")
            "{resources.mpi} -n {resources.tasks:q} mofsieve featurize --mpi"
            " --manifest {input.manifest:q} --out {output.graphs:q} --jobs {threads:q}"
            " {params.options:q} --partial-occupancy {params.partial_occupancy:q}"
            " > {log:q} 2>&1"
