# Training: assemble the modality stores into one padded dataset, train each model × seed,
# then aggregate metrics over seeds (mean ± std).


rule assemble_dataset:
    input:
        unpack(modality_stores),
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
    output:
        f"{RESULTS}/{{corpus}}/datasets/{{fold}}.npz",
    params:
        cli=AFFECTFLOW,
        modalities=as_json(config["training"]["modalities"]),
        labels=lambda w: as_json(corpus_config(w.corpus).get("labels", {})),
        tasks=as_json(config["training"]["tasks"]),
        max_steps=config["training"].get("max_steps", 200),
        normalise=config["training"].get("normalise", "none"),
        stores=lambda w, input: as_json({m: list(getattr(input, m)) for m in config["training"]["modalities"]}),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/assemble_dataset/{{fold}}.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("default", "runtime"),
    shell:
        "{params.cli} assemble --manifest {input.manifest:q} --stores {params.stores:q}"
        " --modalities {params.modalities:q} --labels {params.labels:q} --tasks {params.tasks:q}"
        " --max-steps {params.max_steps:q} --normalise {params.normalise:q} --split-column {wildcards.fold:q} --output {output:q} > {log:q} 2>&1"


rule train:
    input:
        f"{RESULTS}/{{corpus}}/datasets/{{fold}}.npz",
    output:
        result=f"{RESULTS}/{{corpus}}/models/{{model}}/{{fold}}/seed={{seed}}/result.json",
        weights=f"{RESULTS}/{{corpus}}/models/{{model}}/{{fold}}/seed={{seed}}/model.pt",
    wildcard_constraints:
        model="|".join(MODELS),
    params:
        cli=AFFECTFLOW,
        tasks=as_json(config["training"]["tasks"]),
        hparams=model_hparams,
        device=config["training"].get("device", "auto"),
        architecture=lambda w: MODEL_SPECS[w.model]["model"],
        modalities=lambda w: ",".join(MODEL_SPECS[w.model]["modalities"] or []),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/train/{{model}}/{{fold}}/seed={{seed}}.log",
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        gpu=res("train", "gpu"),
    shell:
        "{params.cli} train --dataset {input:q} --model {params.architecture:q} --model-id {wildcards.model:q}"
        " --modalities={params.modalities:q} --seed {wildcards.seed:q}"
        " --tasks {params.tasks:q} --hparams {params.hparams:q} --device {params.device:q}"
        " --threads {threads:q} --result {output.result:q} --weights {output.weights:q} > {log:q} 2>&1"


rule evaluate:
    input:
        run_results,
    output:
        metrics=f"{RESULTS}/{{corpus}}/metrics.json",
        figures=directory(f"{RESULTS}/{{corpus}}/figures"),
    params:
        cli=AFFECTFLOW,
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/evaluate.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    shell:
        "{params.cli} evaluate --results {input:q} --metrics {output.metrics:q}"
        " --figures {output.figures:q} > {log:q} 2>&1"
