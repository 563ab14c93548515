# Corpora the pipeline makes itself: the embedded demo corpus (generated deterministically from
# a seed), and manifests built by a dataset adapter from a native layout (EmoDB, MELD, ...).
# Both live under results_dir, so two configs never overwrite each other's sources.


rule demo_corpus:
    output:
        directory(f"{RESULTS}/{{corpus}}/source/generated"),
    params:
        cli=AFFECTFLOW,
        generator=lambda w: as_json(corpus_config(w.corpus)["generator"]),
    conda:
        "../../envs/demo.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/demo_corpus.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} demo --out {output:q} --generator {params.generator:q} > {log:q} 2>&1"


rule adapter_manifest:
    output:
        f"{RESULTS}/{{corpus}}/source/manifest.csv",
    params:
        cli=AFFECTFLOW,
        adapter=lambda w: as_json(corpus_config(w.corpus)["adapter"]),
    conda:
        "../../envs/ingest.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/adapter_manifest.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} adapt --adapter {params.adapter:q} --output {output:q} > {log:q} 2>&1"
