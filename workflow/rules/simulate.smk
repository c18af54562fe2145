# GCMC of the run's own picks, to check the predictions (config gcmc.simulate; top: 0 = off,
# and then nothing here is asked for). The picks are known only once flagged.csv exists, so
# a checkpoint writes them (and their CIFs) and the DAG grows one simulate job per pick; the
# validate job gathers every pick's result, or its failure, into validation.csv/.json.
include: "simulate_inputs.smk"


checkpoint simulate_picks:
    input:
        flagged=f"{RUN}/flagged.csv",
    output:
        picks=directory(f"{SIMULATE}/picks"),
    log:
        f"{RUN}/logs/simulate/picks.log",
    benchmark:
        f"{RUN}/benchmarks/simulate/picks.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        top=vconfig.simulate_top(config),
    shell:
        "mofsieve validate pick --flagged {input.flagged:q} --top {params.top:q}"
        " --out {output.picks:q} > {log:q} 2>&1"


# One job, one core per MOF (all the target's pressures in it); on SLURM a CPU job of
# gcmc.simulate.runtime minutes. A MOF that cannot be simulated is recorded in its
# failures.csv and the job still succeeds: validate lists it with the reason.
rule simulate:
    input:
        cif=f"{SIMULATE}/picks/{{mof_id}}.cif",
    output:
        results=f"{SIMULATE}/mofs/{{mof_id}}/results.csv",
        failures=f"{SIMULATE}/mofs/{{mof_id}}/failures.csv",
    log:
        f"{RUN}/logs/simulate/{{mof_id}}.log",
    benchmark:
        f"{RUN}/benchmarks/simulate/{{mof_id}}.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=vconfig.simulate_settings(config)["runtime"],
    params:
        out=folder_of("results"),
        options=vconfig.simulate_arguments(config),
    shell:
        "mofsieve simulate {input.cif:q} --out {params.out:q} {params.options:q}"
        " > {log:q} 2>&1"


rule validate:
    input:
        ranked=f"{RUN}/ranked.csv",
        picks=f"{SIMULATE}/picks",
        results=simulated_results,
    output:
        csv=f"{RUN}/validation.csv",
        json=f"{RUN}/validation.json",
    log:
        f"{RUN}/logs/validate.log",
    benchmark:
        f"{RUN}/benchmarks/validate.tsv"
    conda:
        "../../envs/mofsieve.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        pressures=vconfig.validate_pressure_arguments(config),
    shell:
        "mofsieve validate gather --ranked {input.ranked:q} --picks {input.picks:q}"
        " --simulated {input.results:q} {params.pressures:q}"
        " --out-csv {output.csv:q} --out-json {output.json:q} > {log:q} 2>&1"
