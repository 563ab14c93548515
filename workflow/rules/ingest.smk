# Ingest: a source manifest (or the generated demo corpus) → validated Parquet manifest + rejected rows.
# A checkpoint, because the shard list of every later stage is read from its output.


checkpoint ingest:
    input:
        source=ingest_source,
    output:
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
        rejected=f"{RESULTS}/{{corpus}}/rejected/ingest.parquet",
    params:
        cli=AFFECTFLOW,
        source=ingest_source_file,
        shards=lambda w: corpus_shard_count(w.corpus),
        labels=lambda w: as_json(corpus_config(w.corpus).get("labels", {})),
        media_root=lambda w: corpus_config(w.corpus).get("media_root", ""),
        default_split=lambda w: corpus_config(w.corpus).get("default_split", ""),
        protocol=lambda w: protocol(w.corpus),
        encoding=ingest_encoding,
        duplicate_media=lambda w: corpus_config(w.corpus).get("duplicate_media", "warn"),
        features_only=lambda w: "yes" if "features" in corpus_config(w.corpus) else "",
    conda:
        "../../envs/ingest.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/ingest.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} ingest --source {params.source:q} --corpus {wildcards.corpus:q}"
        " --shards {params.shards:q} --labels {params.labels:q} --media-root={params.media_root:q}"
        " --default-split={params.default_split:q} --protocol {params.protocol:q}"
        " --encoding {params.encoding:q} --duplicate-media {params.duplicate_media:q}"
        " --features-only={params.features_only:q}"
        " --manifest-out {output.manifest:q} --rejected-out {output.rejected:q} > {log:q} 2>&1"
