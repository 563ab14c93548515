# The embedded demo corpus, generated deterministically from a seed (see README).


rule demo_corpus:
    output:
        directory("resources/corpora/{corpus}"),
    params:
        cli=AFFECTFLOW,
        generator=lambda w: as_json(corpus_config(w.corpus)["generator"]),
    conda:
        "../../envs/demo.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/demo_corpus.log",
    threads: res("demo_corpus", "threads")
    resources:
        mem_mb=res("demo_corpus", "mem_mb"),
        runtime=res("demo_corpus", "runtime"),
    shell:
        "{params.cli} demo --out {output} --generator {params.generator:q} > {log} 2>&1"
