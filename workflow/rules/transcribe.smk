# Transcripts and word timing: rows without a transcript get offline ASR (Whisper tiny.en) with
# word times; English rows with a transcript but no word times get forced alignment (PocketSphinx).
# Runs only for corpora with a `transcribe:` section; its output is what ingest then reads.


rule transcribe:
    input:
        source=corpus_source,
    output:
        manifest=f"{RESULTS}/{{corpus}}/transcribed/manifest.csv",
        words=directory(f"{RESULTS}/{{corpus}}/transcribed/words"),
    params:
        cli=AFFECTFLOW,
        manifest=corpus_manifest,
        mode=lambda w: corpus_config(w.corpus)["transcribe"].get("mode", "auto"),
        language=lambda w: corpus_config(w.corpus)["transcribe"].get("language", "en"),
        encoding=lambda w: corpus_config(w.corpus).get("encoding", "utf-8"),
    conda:
        "../../envs/transcribe.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/transcribe.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "{params.cli} transcribe --input {params.manifest:q} --output {output.manifest:q}"
        " --words-dir {output.words:q} --mode {params.mode:q} --language {params.language:q}"
        " --encoding {params.encoding:q} > {log:q} 2>&1"
