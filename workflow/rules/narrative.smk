# Prosody (speech rate, pauses, pitch, loudness, per-speaker z) and MONAH narratives, one job per
# corpus each (z-scores and pauses need the speaker's and the dialogue's other rows). A corpus
# whose `manifest` is results/<corpus>/narrative/manifest_<family>.csv trains on narratives.


rule prosody:
    input:
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
        egemaps=lambda w: store_files(w.corpus, "egemaps") if "egemaps" in corpus_extractors(w.corpus) else [],
    output:
        f"{RESULTS}/{{corpus}}/prosody/prosody.parquet",
    params:
        cli=AFFECTFLOW,
        settings=as_json(config.get("prosody", {})),
    conda:
        "../../envs/features.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/prosody.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} prosody --manifest {input.manifest:q} --egemaps {input.egemaps:q}"
        " --params {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule narrative:
    input:
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
        prosody=f"{RESULTS}/{{corpus}}/prosody/prosody.parquet",
        actions=lambda w: [f"{RESULTS}/{w.corpus}/actions/au.parquet"] if "face" in corpus_extractors(w.corpus) else [],
        tone=narrative_tone,
    output:
        table=f"{RESULTS}/{{corpus}}/narrative/narratives.parquet",
        manifests=expand(f"{RESULTS}/{{{{corpus}}}}/narrative/manifest_{{family}}.csv", family=NARRATIVE_FAMILIES),
    params:
        cli=AFFECTFLOW,
        settings=as_json(config.get("narrative", {})),
        out_dir=lambda w: f"{RESULTS}/{w.corpus}/narrative",
        labels=lambda w: as_json(corpus_config(w.corpus).get("labels", {})),
    conda:
        "../../envs/features.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/narrative.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} narrative --manifest {input.manifest:q} --prosody {input.prosody:q}"
        " --actions {input.actions:q} --tone {input.tone:q} --params {params.settings:q}"
        " --labels {params.labels:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule report_narratives:
    input:
        narratives=f"{RESULTS}/{{corpus}}/narrative/narratives.parquet",
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
        prosody=f"{RESULTS}/{{corpus}}/prosody/prosody.parquet",
    output:
        report(f"{RESULTS}/{{corpus}}/report/narratives.html", caption="../report/narratives.rst",
               category="{corpus}", subcategory="Narratives"),
    params:
        cli=AFFECTFLOW,
        labels=lambda w: ",".join(corpus_config(w.corpus).get("labels", {})),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/report_narratives.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} report-narratives --corpus {wildcards.corpus:q} --narratives {input.narratives:q}"
        " --manifest {input.manifest:q} --prosody {input.prosody:q} --labels={params.labels:q}"
        " --output {output:q} > {log:q} 2>&1"
