# Corpora made of several datasets (`union`), and the tone-of-voice table: a model trained on such
# a corpus (configs/tone.yaml: EmoDB + RAVDESS) predicts on the corpora in `tone.to`, and its
# class probabilities become four tone scores with per-speaker z, read by the narratives.


rule union_manifest:
    output:
        f"{RESULTS}/{{corpus}}/source/union.csv",
    params:
        cli=AFFECTFLOW,
        union=lambda w: as_json(corpus_config(w.corpus)["union"]),
    conda:
        "../../envs/ingest.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/union_manifest.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} union --union {params.union:q} --output {output:q} > {log:q} 2>&1"


rule tone:
    input:
        predictions=lambda w: tone_predictions(w.corpus),
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
    output:
        f"{RESULTS}/{{corpus}}/tone/tone.parquet",
    params:
        cli=AFFECTFLOW,
        task=lambda w: config["tone"].get("task", "tone"),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/tone.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} tone --predictions {input.predictions:q} --manifest {input.manifest:q}"
        " --task {params.task:q} --output {output:q} > {log:q} 2>&1"
