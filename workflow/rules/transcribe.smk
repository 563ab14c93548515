# Transcripts and word timing: rows without a transcript get offline ASR (Whisper tiny.en) with
# word times; English rows with a transcript but no word times get forced alignment (PocketSphinx).
# Runs only for corpora with a `transcribe:` section; its output is what ingest then reads.


rule transcribe:
    input:
        source=corpus_source,
    output:
        manifest="resources/transcribed/{corpus}/manifest.csv",
        words=directory("resources/transcribed/{corpus}/words"),
    params:
        cli=AFFECTFLOW,
        manifest=corpus_manifest,
        mode=lambda w: corpus_config(w.corpus)["transcribe"].get("mode", "auto"),
        language=lambda w: corpus_config(w.corpus)["transcribe"].get("language", "en"),
    conda:
        "../../envs/transcribe.yaml"
    log:
        f"{RESULTS}/logs/{{corpus}}/transcribe.log",
    threads: res("transcribe", "threads")
    resources:
        mem_mb=res("transcribe", "mem_mb"),
        runtime=res("transcribe", "runtime"),
    shell:
        "{params.cli} transcribe --input {params.manifest:q} --output {output.manifest}"
        " --words-dir {output.words} --mode {params.mode} --language {params.language} > {log} 2>&1"
