# Media prep: decode each utterance's audio (any container/codec) to 16 kHz mono, segment it,
# and reject segments without speech. One job per shard; unchanged utterances are reused.


rule prep_audio:
    input:
        manifest=ancient(f"{RESULTS}/{{corpus}}/manifest.parquet"),
    output:
        f"{RESULTS}/{{corpus}}/features/audio/shard={{shard}}.parquet",
    params:
        cli=AFFECTFLOW,
        digest=lambda w: shard_digest(w.corpus, "audio", w.shard),
        settings=lambda w: extractor_settings(w.corpus, "audio"),
        cache=f"{CACHE}/{{corpus}}/audio/shard={{shard}}.parquet",
    conda:
        "../../envs/media.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/audio/shard={{shard}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} extract --extractor audio --corpus {wildcards.corpus:q}"
        " --manifest {input.manifest:q} --shard {wildcards.shard:q} --params {params.settings:q}"
        " --output {output:q} --cache={params.cache:q} > {log:q} 2>&1"
