# Media prep: decode each utterance's audio (any container/codec) to 16 kHz mono, segment it,
# and reject segments without speech. One job per shard; unchanged utterances are reused.


rule prep_audio:
    input:
        manifest=ancient(f"{RESULTS}/{{corpus}}/manifest.parquet"),
    output:
        f"{RESULTS}/{{corpus}}/features/audio/shard={{shard}}.parquet",
    params:
        cli=AFFECTFLOW,
        digest=shard_digest,
        settings=as_json(config.get("media", {})),
        cache=f"{CACHE}/{{corpus}}/audio/shard={{shard}}.parquet",
    conda:
        "../../envs/media.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/audio/shard={{shard}}.log",
    threads: res("prep_audio", "threads")
    resources:
        mem_mb=res("prep_audio", "mem_mb"),
        runtime=res("prep_audio", "runtime"),
    shell:
        "{params.cli} extract --extractor audio --corpus {wildcards.corpus}"
        " --manifest {input.manifest} --shard {wildcards.shard} --params {params.settings:q}"
        " --output {output} --cache={params.cache:q} > {log} 2>&1"
