# Training: assemble one dataset per corpus (every fold of its protocol as an index column), train
# each model's seeds of a fold in one job, then aggregate metrics over seeds (mean ± std).


rule assemble_dataset:
    input:
        unpack(modality_stores),
        manifest=f"{RESULTS}/{{corpus}}/manifest.parquet",
    output:
        f"{RESULTS}/{{corpus}}/dataset.npz",
    params:
        cli=AFFECTFLOW,
        modalities=as_json(config["training"]["modalities"]),
        labels=lambda w: as_json(corpus_config(w.corpus).get("labels", {})),
        max_steps=config["training"].get("max_steps", 200),
        normalise=config["training"].get("normalise", "none"),
        folds=lambda w: folds(w.corpus),
        # (no inputs yet while the ingest checkpoint is pending: params are evaluated again after it)
        stores=lambda w, input: as_json({m: list(getattr(input, m, [])) for m in config["training"]["modalities"]}),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/assemble_dataset.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} assemble --manifest {input.manifest:q} --stores {params.stores:q}"
        " --modalities {params.modalities:q} --labels {params.labels:q}"
        " --max-steps {params.max_steps:q} --normalise {params.normalise:q}"
        " --split-columns {params.folds:q} --output {output:q} > {log:q} 2>&1"


rule train:
    input:
        dataset=f"{RESULTS}/{{corpus}}/dataset.npz",
        weak=lambda w: weak_tables(w.corpus, w.model),
        best=lambda w: ([f"{RESULTS}/{w.corpus}/search/{w.model}/{w.fold}/best.json"]
                        if MODEL_SPECS[w.model]["search"] else []),
    output:
        results=expand(f"{RESULTS}/{{{{corpus}}}}/models/{{{{model}}}}/{{{{fold}}}}/seed={{seed}}/result.json", seed=SEEDS),
        weights=expand(f"{RESULTS}/{{{{corpus}}}}/models/{{{{model}}}}/{{{{fold}}}}/seed={{seed}}/model.pt", seed=SEEDS),
    wildcard_constraints:
        model="|".join(MODELS),
    params:
        cli=AFFECTFLOW,
        tasks=lambda w: as_json(model_tasks(w.corpus, w.model)),
        hparams=lambda w: as_json(base_hparams(w.model)),
        device=config["training"].get("device", "auto"),
        architecture=lambda w: MODEL_SPECS[w.model]["model"],
        modalities=lambda w: ",".join(MODEL_SPECS[w.model]["modalities"] or []),
        seeds=[str(int(s)) for s in SEEDS],
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/train/{{model}}/{{fold}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=0,
    shell:
        "{params.cli} train --dataset {input.dataset:q} --fold {wildcards.fold:q} --corpus {wildcards.corpus:q}"
        " --model {params.architecture:q} --model-id {wildcards.model:q}"
        " --modalities={params.modalities:q} --seeds {params.seeds:q}"
        " --tasks {params.tasks:q} --hparams {params.hparams:q} --best-hparams {input.best:q}"
        " --device {params.device:q} --weak {input.weak:q}"
        " --threads {threads:q} --results {output.results:q} --weights {output.weights:q} > {log:q} 2>&1"


rule evaluate:
    input:
        results=run_results,
        checks=lambda w: weak_checks(w.corpus),
        search=lambda w: search_results(w.corpus),
    output:
        metrics=f"{RESULTS}/{{corpus}}/metrics.json",
        figures=directory(f"{RESULTS}/{{corpus}}/figures"),
    params:
        cli=AFFECTFLOW,
        compare=lambda w: as_json(config.get("evaluation", {})),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/evaluate.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} evaluate --results {input.results:q} --metrics {output.metrics:q}"
        " --evaluation {params.compare:q} --weak-checks {input.checks:q} --search {input.search:q}"
        " --figures {output.figures:q} > {log:q} 2>&1"


rule search_trial:
    input:
        dataset=f"{RESULTS}/{{corpus}}/dataset.npz",
        weak=lambda w: weak_tables(w.corpus, w.model),
    output:
        result=f"{RESULTS}/{{corpus}}/search/{{model}}/{{fold}}/trial={{trial}}/result.json",
        weights=temp(f"{RESULTS}/{{corpus}}/search/{{model}}/{{fold}}/trial={{trial}}/model.pt"),
    wildcard_constraints:
        model="|".join(MODELS),
        trial=r"\d+",
    params:
        cli=AFFECTFLOW,
        tasks=lambda w: as_json(model_tasks(w.corpus, w.model)),
        hparams=lambda w: as_json({**base_hparams(w.model), **search_grid(w.model)[int(w.trial)]}),
        device=config["training"].get("device", "auto"),
        architecture=lambda w: MODEL_SPECS[w.model]["model"],
        modalities=lambda w: ",".join(MODEL_SPECS[w.model]["modalities"] or []),
        seed=SEEDS[0],
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/search/{{model}}/{{fold}}/trial={{trial}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=0,
    shell:
        "{params.cli} train --dataset {input.dataset:q} --fold {wildcards.fold:q} --corpus {wildcards.corpus:q}"
        " --model {params.architecture:q} --model-id {wildcards.model:q}"
        " --modalities={params.modalities:q} --seeds {params.seed:q}"
        " --tasks {params.tasks:q} --hparams {params.hparams:q}"
        " --device {params.device:q} --weak {input.weak:q}"
        " --threads {threads:q} --results {output.result:q} --weights {output.weights:q} > {log:q} 2>&1"


rule search_select:
    input:
        lambda w: [f"{RESULTS}/{w.corpus}/search/{w.model}/{w.fold}/trial={k}/result.json"
                   for k in range(len(search_grid(w.model)))],
    output:
        f"{RESULTS}/{{corpus}}/search/{{model}}/{{fold}}/best.json",
    wildcard_constraints:
        model="|".join(MODELS),
    params:
        cli=AFFECTFLOW,
        metric=lambda w: MODEL_SPECS[w.model]["search"].get("metric", "valid_loss"),
        grid=lambda w: as_json(search_grid(w.model)),
    conda:
        "../../envs/train.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/search/{{model}}/{{fold}}/select.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} search-select --trials {input:q} --grid {params.grid:q}"
        " --metric {params.metric:q} --model {wildcards.model:q} --fold {wildcards.fold:q}"
        " --output {output:q} > {log:q} 2>&1"
