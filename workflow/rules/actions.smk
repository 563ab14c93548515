# Action units and head gestures: the corpus's face store → one actions store (per-speaker
# neutral levels need all of a speaker's frames, so this is one job per corpus, not per shard).


rule actions:
    input:
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
        face=lambda w: store_files(w.corpus, "face"),
    output:
        f"{RESULTS}/{{corpus}}/actions/au.parquet",
    params:
        cli=AFFECTFLOW,
        settings=as_json(config.get("actions", {})),
    conda:
        "../../envs/features.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/actions.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} actions --face {input.face:q} --manifest {input.manifest:q}"
        " --params {params.settings:q} --corpus {wildcards.corpus:q} --output {output:q} > {log:q} 2>&1"
