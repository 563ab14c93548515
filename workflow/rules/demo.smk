# The embedded demo corpus, generated deterministically from a seed (see README).


rule demo_corpus:
    output:
        directory("resources/corpora/{corpus}"),
    params:
        generator=lambda w: as_json(corpus_config(w.corpus)["generator"]),
    log:
        f"{RESULTS}/logs/{{corpus}}/demo_corpus.log",
    threads: res("demo_corpus", "threads")
    resources:
        mem_mb=res("demo_corpus", "mem_mb"),
        runtime=res("demo_corpus", "runtime"),
    shell:
        "python -m affectflow demo --out {output} --generator {params.generator:q} > {log} 2>&1"
