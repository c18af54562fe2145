# Input functions of the GCMC check of the top picks (workflow/rules/simulate.smk), apart
# from its rules as the linter asks; no logic beyond calling mofsieve.validation_config and
# mofsieve.picks.
from mofsieve import validation_config as vconfig
from mofsieve.picks import pick_ids

SIMULATE = f"{RUN}/simulate"


wildcard_constraints:
    mof_id=r"[^/]+",


def simulated_results(wildcards):
    """Every pick's simulate results.csv (once the picks checkpoint has run)."""
    picks = checkpoints.simulate_picks.get().output.picks
    return [f"{SIMULATE}/mofs/{mof_id}/results.csv" for mof_id in pick_ids(picks)]


def validation_outputs():
    """validation.csv and validation.json, or nothing when gcmc.simulate.top is 0."""
    return vconfig.validation_files(config, RUN)
