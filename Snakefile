# mofsieve: CIFs → graph shards → surrogate predictions → ranking → GCMC hand-off → report.
# Everything is in workflow/rules/; every rule body is one `mofsieve <verb>` call.
#   snakemake --cores 2                      local run of config.yaml
#   snakemake --profile slurm                on a SLURM cluster (edit slurm/config.yaml once)
#   snakemake train --cores 2                train a model on your own labels (config: train)

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/featurize.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/rank.smk"
include: "workflow/rules/gcmc.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/train.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
        validation_outputs(),
