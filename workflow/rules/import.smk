# Features corpora (`features:` in a corpus config): one job reads the feature files (an MMSA
# pickle, the MFN release's HDF5), writes each store where an extractor's would be and the source
# manifest that ingest validates; the rest of the DAG is that of any corpus. One rule per format,
# since the stores it writes (its outputs) are the format's.

for _format, _stores in {f: list(v.stores.values()) for f, v in FEATURE_FORMATS.items()}.items():

    rule:
        name:
            f"import_{_format}"
        input:
            lambda w: features_source_files(corpus_config(w.corpus)["features"]),
        output:
            manifest=f"{RESULTS}/{{corpus}}/source/{SOURCE_CSV}",
            stores=[f"{RESULTS}/{{corpus}}/features/{s}/shard=0.parquet" for s in _stores],
        wildcard_constraints:
            corpus="|".join(features_corpora(_format)) or "(?!)",
        params:
            cli=AFFECTFLOW,
            features=lambda w: as_json(corpus_config(w.corpus)["features"]),
            features_dir=lambda w: f"{RESULTS}/{w.corpus}/features",
        conda:
            "../../envs/ingest.yaml"
        log:
            f"{RESULTS}/logs/{{corpus}}/import_features.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        shell:
            "{params.cli} import-features --features {params.features:q} --corpus {wildcards.corpus:q}"
            " --manifest-out {output.manifest:q} --features-dir {params.features_dir:q} > {log:q} 2>&1"
