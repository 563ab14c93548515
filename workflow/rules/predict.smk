# Predict and weak labels: saved models of one corpus applied to another corpus's dataset; where the
# target corpus has the weak task's labels itself (a controlled set-up), the weak labels are scored.


rule predict:
    input:
        models=lambda w: labeler_models(w.source, w.model),
        dataset=f"{RESULTS}/{{corpus}}/dataset.npz",
    output:
        f"{RESULTS}/{{corpus}}/predictions/{{source}}/{{model}}.parquet",
    wildcard_constraints:
        source="|".join(CORPORA),
        model="|".join(MODELS),
    params:
        cli=AFFECTFLOW,
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/predict/{{source}}/{{model}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} predict --model {input.models:q} --dataset {input.dataset:q}"
        " --corpus {wildcards.corpus:q} --output {output:q} > {log:q} 2>&1"


rule weak_labels:
    input:
        models=lambda w: labeler_models(weak_entry(w.corpus, w.name)["from"]["corpus"],
                                        weak_entry(w.corpus, w.name)["from"]["model"]),
        dataset=f"{RESULTS}/{{corpus}}/dataset.npz",
    output:
        f"{RESULTS}/{{corpus}}/weak/{{name}}.parquet",
    params:
        cli=AFFECTFLOW,
        task=lambda w: weak_entry(w.corpus, w.name)["task"],
        confidence=lambda w: weak_entry(w.corpus, w.name).get("confidence", "auto"),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/weak_labels/{{name}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} weak-labels --models {input.models:q} --task {params.task:q}"
        " --name {wildcards.name:q} --dataset {input.dataset:q} --confidence {params.confidence:q}"
        " --output {output:q} > {log:q} 2>&1"


rule weak_label_check:
    input:
        weak=f"{RESULTS}/{{corpus}}/weak/{{name}}.parquet",
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
    output:
        f"{RESULTS}/{{corpus}}/weak/{{name}}.check.json",
    params:
        cli=AFFECTFLOW,
        label=lambda w: weak_entry(w.corpus, w.name)["task"],
        spec=lambda w: as_json(corpus_config(w.corpus)["labels"][weak_entry(w.corpus, w.name)["task"]]),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/weak_labels/{{name}}.check.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} weak-check --weak {input.weak:q} --manifest {input.manifest:q}"
        " --label {params.label:q} --label-spec {params.spec:q} --output {output:q} > {log:q} 2>&1"
