# Feature extractors, one store per (corpus, extractor), one partition per shard.
# Changing an extractor's parameters re-runs that extractor only (params are part of the job).


rule extract:
    input:
        manifest=ancient(f"{RESULTS}/{{corpus}}/manifest.parquet"),
        audio=extractor_audio_input,
    output:
        f"{RESULTS}/{{corpus}}/features/{{extractor}}/shard={{shard}}.parquet",
    wildcard_constraints:
        extractor="|".join(EXTRACTORS) if EXTRACTORS else "none",
    params:
        cli=AFFECTFLOW,
        digest=shard_digest,
        settings=lambda w: extractor_settings(w.corpus, w.extractor),
        cache=f"{CACHE}/{{corpus}}/{{extractor}}/shard={{shard}}.parquet",
        audio_arg=lambda w, input: f"--audio-store {input.audio}" if input.audio else "",
    conda:
        "../../envs/features.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/{{extractor}}/shard={{shard}}.log",
    threads: lambda w: res(f"extract_{w.extractor}", "threads")
    resources:
        mem_mb=lambda w: res(f"extract_{w.extractor}", "mem_mb"),
        runtime=lambda w: res(f"extract_{w.extractor}", "runtime"),
        gpu=lambda w: res(f"extract_{w.extractor}", "gpu"),
    shell:
        "{params.cli} extract --extractor {wildcards.extractor} --corpus {wildcards.corpus}"
        " --manifest {input.manifest} --shard {wildcards.shard} --params {params.settings:q}"
        " --output {output} --cache={params.cache:q} {params.audio_arg} > {log} 2>&1"


rule rejected:
    input:
        ingest=f"{RESULTS}/{{corpus}}/rejected/ingest.parquet",
        stores=lambda w: corpus_store_files(w.corpus),
    output:
        f"{RESULTS}/{{corpus}}/rejected.parquet",
    params:
        cli=AFFECTFLOW,
    conda:
        "../../envs/ingest.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/rejected.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    shell:
        "{params.cli} rejected --ingest {input.ingest} --stores {input.stores}"
        " --output {output} > {log} 2>&1"
