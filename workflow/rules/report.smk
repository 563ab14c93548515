# Report assets: the metrics table, training curves and confusion matrices, the rejected table.
# `snakemake --report results/report.html` bundles them with their captions (workflow/report/).


rule report_tables:
    input:
        metrics=f"{RESULTS}/{{corpus}}/metrics.json",
        rejected=f"{RESULTS}/{{corpus}}/rejected.parquet",
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
        figures=f"{RESULTS}/{{corpus}}/figures",
    output:
        metrics=report(f"{RESULTS}/{{corpus}}/report/metrics.html",
                       caption="../report/metrics.rst", category="{corpus}", subcategory="Metrics"),
        rejected=report(f"{RESULTS}/{{corpus}}/report/rejected.html",
                        caption="../report/rejected.rst", category="{corpus}",
                        subcategory="Rejected utterances"),
        figures=report(directory(f"{RESULTS}/{{corpus}}/report/figures"), patterns=["{name}.png"],
                       caption="../report/figures.rst", category="{corpus}",
                       subcategory="Training curves and confusion matrices"),
    params:
        cli=AFFECTFLOW,
        protocol=lambda w: protocol(w.corpus),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/report_tables.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} report --corpus {wildcards.corpus:q} --metrics {input.metrics:q}"
        " --rejected {input.rejected:q} --manifest {input.manifest:q} --figures-in {input.figures:q}"
        " --metrics-html {output.metrics:q} --rejected-html {output.rejected:q}"
        " --figures-out {output.figures:q} --protocol {params.protocol:q} > {log:q} 2>&1"
