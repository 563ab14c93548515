# Feature extractors, one store per (corpus, extractor), one partition per shard.
# Changing an extractor's parameters re-runs that extractor only (params are part of the job).


rule extract:
    input:
        manifest=ancient(f"{RESULTS}/{{corpus}}/manifest.parquet"),
        upstream=extractor_store_inputs,
    output:
        f"{RESULTS}/{{corpus}}/features/{{extractor}}/shard={{shard}}.parquet",
    wildcard_constraints:
        extractor="|".join(EXTRACTORS) if EXTRACTORS else "none",
    params:
        cli=AFFECTFLOW,
        digest=lambda w: shard_digest(w.corpus, w.extractor, w.shard),
        settings=lambda w: extractor_settings(w.corpus, w.extractor),
        cache=f"{CACHE}/{{corpus}}/{{extractor}}/shard={{shard}}.parquet",
    conda:
        "../../envs/features.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/{{extractor}}/shard={{shard}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=0,
    shell:
        "{params.cli} extract --extractor {wildcards.extractor:q} --corpus {wildcards.corpus:q}"
        " --manifest {input.manifest:q} --shard {wildcards.shard:q} --params {params.settings:q}"
        " --output {output:q} --cache={params.cache:q} --upstream {input.upstream:q} > {log:q} 2>&1"


rule rejected:
    input:
        ingest=f"{RESULTS}/{{corpus}}/rejected/ingest.parquet",
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
        stores=lambda w: corpus_store_files(w.corpus),
    output:
        table=f"{RESULTS}/{{corpus}}/rejected.parquet",
        summary=f"{RESULTS}/{{corpus}}/rejected_summary.json",
    params:
        cli=AFFECTFLOW,
    conda:
        "../../envs/ingest.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/rejected.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} rejected --corpus {wildcards.corpus:q} --ingest {input.ingest:q}"
        " --manifest {input.manifest:q} --stores {input.stores:q}"
        " --output {output.table:q} --summary {output.summary:q} > {log:q} 2>&1"
