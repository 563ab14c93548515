# affectflow: raw recordings of people speaking → features → multi-task affect models.
# Usage: snakemake --cores 2 [--configfile other.yaml]; snakemake --report results/report.html
# Layout: workflow/rules/<stage>.smk hold thin rules calling affectflow (src/affectflow/<stage>/).

# `--configfile other.yaml` replaces config.yaml instead of being merged into it, so a dataset
# config (configs/<dataset>.yaml) is complete on its own and does not also run the demo corpus.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"



report: "workflow/report/workflow.rst"


# Machines live in workflow profiles, never in the config: each rule's `threads: 1`, `mem_mb`,
# `runtime` (and `gpu`) are a floor that profiles/default (this machine, used by default) and
# profiles/slurm (a cluster: partitions, GPUs, job groups) set per rule.
# On a cluster these run in the Snakemake process itself, not as Slurm jobs: each takes seconds
# and reads small tables, less than a job's queueing and start-up (the demo corpus, too).
localrules:
    demo_corpus,
    rejected,
    evaluate,
    search_select,
    weak_label_check,
    report_tables,
    report_narratives,


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/transcribe.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/import.smk"
include: "workflow/rules/media.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/actions.smk"
include: "workflow/rules/tone.smk"
include: "workflow/rules/narrative.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets,
    default_target: True


onsuccess:
    print_run_summary()
