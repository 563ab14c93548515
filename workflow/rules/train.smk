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
        corpus_dir=lambda w, input: os.path.dirname(input.manifest),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/assemble_dataset/{{fold}}.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("default", "runtime"),
    shell:
        "{params.cli} assemble --manifest {input.manifest} --corpus-dir {params.corpus_dir}"
        " --modalities {params.modalities:q} --labels {params.labels:q} --tasks {params.tasks:q}"
        " --max-steps {params.max_steps} --normalise {params.normalise} --split-column {wildcards.fold} --output {output} > {log} 2>&1"


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
        "{params.cli} train --dataset {input} --model {params.architecture} --model-id {wildcards.model}"
        " --modalities={params.modalities:q} --seed {wildcards.seed}"
        " --tasks {params.tasks:q} --hparams {params.hparams:q} --device {params.device}"
        " --threads {threads} --result {output.result} --weights {output.weights} > {log} 2>&1"


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
        "{params.cli} evaluate --results {input} --metrics {output.metrics}"
        " --figures {output.figures} > {log} 2>&1"
