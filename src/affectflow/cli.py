"""Command line of the pipeline stages; the Snakemake rules call these (`python -m affectflow`).

Each subcommand is a thin wrapper: parse arguments, call the stage function, log what happened.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

log = logging.getLogger("affectflow")


def _json(text: str) -> dict:
    return json.loads(text) if text else {}


def cmd_demo(args: argparse.Namespace) -> None:
    from affectflow.demo.corpus import build_demo_corpus

    generator = _json(args.generator)
    generator.pop("kind", None)
    manifest = build_demo_corpus(Path(args.out), **generator)
    log.info("demo corpus written: %s", manifest)


def cmd_adapt(args: argparse.Namespace) -> None:
    from affectflow.ingest.adapters import write_adapter_manifest

    adapter = _json(args.adapter)
    path = write_adapter_manifest(adapter["name"], Path(adapter["root"]), Path(args.output),
                                  **adapter.get("options", {}))
    log.info("%s manifest written: %s", adapter["name"], path)


def cmd_transcribe(args: argparse.Namespace) -> None:
    from affectflow.transcribe.run import fill_transcripts

    counts = fill_transcripts(Path(args.input), Path(args.output), Path(args.words_dir), args.mode,
                              language=args.language or None, encoding=args.encoding)
    for failure in counts["failures"]:
        log.warning("no transcript/word times for %s: %s", failure["utt_id"], failure["reason"])
    log.info("transcripts: %s", {k: v for k, v in counts.items() if k != "failures"})


def cmd_ingest(args: argparse.Namespace) -> None:
    from affectflow.ingest.manifest import IngestOptions
    from affectflow.ingest.run import ingest_corpus, label_specs

    options = IngestOptions(args.corpus, args.shards, label_specs(_json(args.labels)),
                            args.media_root or None, args.default_split or None, args.protocol,
                            args.encoding, args.duplicate_media, bool(args.features_only))
    accepted, rejected = ingest_corpus(args.source, args.manifest_out, args.rejected_out, options)
    log.info("ingest %s: %d accepted, %d rejection records", args.corpus, accepted, rejected)


def cmd_extract(args: argparse.Namespace) -> None:
    from affectflow.features.registry import get_extractor
    from affectflow.features.runner import run_extractor_shard

    names = get_extractor(args.extractor).stores()
    if len(args.upstream) != len(names):
        raise SystemExit(f"extract: {args.extractor} reads the stores {list(names)}; got "
                         f"{len(args.upstream)} --upstream partitions")
    stats = run_extractor_shard(args.manifest, args.shard, args.extractor, _json(args.params),
                                args.output, args.cache or None, dict(zip(names, args.upstream)),
                                args.corpus)
    for utt_id, reason in stats.rejected.items():
        log.info("rejected %s: %s", utt_id, reason)
    print(stats.to_line(), flush=True)


def cmd_actions(args: argparse.Namespace) -> None:
    from affectflow.actions.stage import ActionsConfig, compute_actions

    compute_actions(args.face, args.manifest, args.output, ActionsConfig.from_params(_json(args.params)),
                    args.corpus)


def cmd_prosody(args: argparse.Namespace) -> None:
    from affectflow.prosody.stage import compute_prosody, config_from

    compute_prosody(args.manifest, [p for p in args.egemaps if p], args.output, config_from(_json(args.params)))


def cmd_narrative(args: argparse.Namespace) -> None:
    from affectflow.narrative.stage import configs_from, write_narratives

    rules, stage = configs_from(_json(args.params))
    write_narratives(args.manifest, args.out_dir, rules, stage, actions=next((p for p in args.actions if p), None),
                     prosody=args.prosody or None, tone=next((p for p in args.tone if p), None),
                     labels=_json(args.labels))


def cmd_aux_weights(args: argparse.Namespace) -> None:
    import pandas as pd
    import yaml

    from affectflow.narrative.aux import loss_weights

    manifest = pd.read_csv(args.manifest) if args.manifest.endswith(".csv") else pd.read_parquet(args.manifest)
    weights = loss_weights(manifest, args.primary, _json(args.spec), args.aux, args.primary_weight, args.method,
                           args.seed)
    print(yaml.safe_dump({"tasks": {t: {"weight": round(w, 4)} for t, w in weights.items()}}, sort_keys=False))


def cmd_import_features(args: argparse.Namespace) -> None:
    from affectflow.ingest.features_corpus import build_features_corpus

    paths = build_features_corpus(_json(args.features), args.corpus, args.manifest_out,
                                  args.features_dir)
    log.info("%s imported: %s", args.corpus, {k: str(v) for k, v in paths.items()})


def cmd_union(args: argparse.Namespace) -> None:
    from affectflow.ingest.union import UnionPart, write_union_manifest

    union = _json(args.union)
    write_union_manifest([UnionPart(p["adapter"], p["label"], p["map"]) for p in union["parts"]],
                         union["label"], args.output)


def cmd_tone(args: argparse.Namespace) -> None:
    from affectflow.tone.stage import tone_table

    tone_table(args.predictions, args.manifest, args.task, args.output)


def cmd_rejected(args: argparse.Namespace) -> None:
    from affectflow.atomic import write_text
    from affectflow.report.tables import collect_rejected, rejection_summary, summary_line

    frame, not_applicable = collect_rejected(args.ingest, args.stores, args.output)
    summary = rejection_summary(args.corpus, args.manifest, frame, not_applicable, args.output)
    write_text(args.summary, json.dumps(summary, indent=1))
    log.info("%d rejection records in %s", len(frame), args.output)
    log.info("%s", summary_line(summary))


def cmd_assemble(args: argparse.Namespace) -> None:
    from affectflow.train.dataset import assemble_dataset, modality_histories, modality_views

    # modality → extractor name (sequence view) or {extractor, view: sequence|pooled}; the
    # stores are the partition files the workflow planned ({modality: [files]})
    _, views = modality_views(_json(args.modalities))
    stores = _json(args.stores)
    counts = assemble_dataset(args.manifest, stores, _json(args.labels), args.output,
                              args.max_steps, views=views, split_columns=args.split_columns,
                              normalise=args.normalise, histories=modality_histories(_json(args.modalities)))
    log.info("dataset %s: %s", args.output, counts)


def cmd_train(args: argparse.Namespace) -> None:
    from affectflow.devices import resolve_device
    from affectflow.train.run import train_to_files
    from affectflow.train.search import split_task_weights

    hparams = _json(args.hparams)
    for path in args.best_hparams:  # a search's choice, over the configured hyper-parameters
        with open(path) as handle:
            hparams.update(json.load(handle)["hparams"])
    tasks, hparams = split_task_weights(_json(args.tasks), hparams)  # searched loss weights λ
    train_to_files(args.dataset, args.model, args.seeds, tasks, hparams,
                   resolve_device(args.device),  # auto: the GPU Slurm gave the job, else the CPU
                   args.results, args.weights, fold=args.fold, threads=args.threads,
                   model_id=args.model_id or None,
                   modalities=args.modalities.split(",") if args.modalities else None,
                   weak=args.weak, corpus=args.corpus)


def cmd_predict(args: argparse.Namespace) -> None:
    if args.dataset:
        from affectflow.predict.corpus import predict_dataset

        if not args.output:
            raise SystemExit("predict --dataset needs --output (a Parquet file)")
        n = predict_dataset(args.model, args.dataset, args.output, args.corpus, args.device)
        log.info("predictions for %d utterances: %s", n, args.output)
        return
    if not args.input:
        raise SystemExit("predict needs --input (media files) or --dataset")
    from affectflow.predict.clip import predict_clips

    records = predict_clips(args.model, args.input, args.work_dir or None, args.device)
    text = json.dumps(records, indent=2)
    print(text)
    if args.output:
        from affectflow.atomic import write_text

        write_text(args.output, text + "\n")


def cmd_weak_labels(args: argparse.Namespace) -> None:
    from affectflow.predict.weak import make_weak_labels

    info = make_weak_labels(args.models, args.task, args.dataset, args.output, args.name,
                            None if args.confidence in ("", "auto") else float(args.confidence),
                            args.device)
    log.info("weak labels %s: %s", args.output, info)


def cmd_weak_check(args: argparse.Namespace) -> None:
    from affectflow.atomic import write_text
    from affectflow.evaluate.weak_check import check_weak_labels

    result = check_weak_labels(args.weak, args.manifest, args.label, _json(args.label_spec))
    write_text(args.output, json.dumps(result, indent=2, sort_keys=True))
    log.info("weak labels %s against %s: %s", args.weak, args.label, result["splits"].get("all"))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from affectflow.report.figures import evaluate_runs

    evaluate_runs(args.results, args.metrics, args.figures, _json(args.evaluation), args.weak_checks,
                  args.search)


def cmd_search_select(args: argparse.Namespace) -> None:
    from affectflow.train.search import select_best

    best = select_best(args.trials, json.loads(args.grid), args.metric, args.output, args.model, args.fold)
    log.info("best of %d trials on %s: %s (%s)", len(args.trials), args.metric, best["hparams"],
             best["value"])


def cmd_report(args: argparse.Namespace) -> None:
    from affectflow.report.tables import write_report_tables

    write_report_tables(args.corpus, args.metrics, args.rejected, args.manifest, args.figures_in,
                        args.metrics_html, args.rejected_html, args.figures_out, args.protocol)


def cmd_report_narratives(args: argparse.Namespace) -> None:
    from affectflow.report.narratives import write_narratives_html

    write_narratives_html(args.corpus, args.narratives, args.manifest, args.prosody,
                          [x for x in args.labels.split(",") if x], args.output)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="affectflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[Callable, list[tuple[str, dict]]]] = {
        "demo": (cmd_demo, [("--out", {"required": True}), ("--generator", {"default": "{}"})]),
        "adapt": (cmd_adapt, [("--adapter", {"required": True}), ("--output", {"required": True})]),
        "transcribe": (cmd_transcribe, [("--input", {"required": True}), ("--output", {"required": True}),
                                        ("--words-dir", {"required": True}), ("--mode", {"default": "auto"}),
                                        ("--language", {"default": "en"}),
                                        ("--encoding", {"default": "utf-8"})]),
        "ingest": (cmd_ingest, [("--source", {"required": True}), ("--corpus", {"required": True}),
                                ("--shards", {"type": int, "default": 8}), ("--labels", {"default": "{}"}),
                                ("--media-root", {"default": ""}), ("--default-split", {"default": ""}),
                                ("--protocol", {"default": "split"}), ("--encoding", {"default": "utf-8"}),
                                ("--duplicate-media", {"default": "warn"}),
                                ("--features-only", {"default": "", "help": "non-empty: a features "
                                                     "corpus (rows need no media or transcript)"}),
                                ("--manifest-out", {"required": True}),
                                ("--rejected-out", {"required": True})]),
        "extract": (cmd_extract, [("--extractor", {"required": True}), ("--corpus", {"default": ""}),
                                  ("--manifest", {"required": True}),
                                  ("--shard", {"type": int, "required": True}),
                                  ("--params", {"default": "{}"}), ("--output", {"required": True}),
                                  ("--cache", {"default": ""}),
                                  ("--upstream", {"nargs": "*", "default": [],
                                                  "help": "the partition of each store the "
                                                          "extractor reads, in its declared order"})]),
        "actions": (cmd_actions, [("--face", {"nargs": "+", "required": True}),
                                  ("--manifest", {"required": True}), ("--params", {"default": "{}"}),
                                  ("--corpus", {"default": ""}), ("--output", {"required": True})]),
        "prosody": (cmd_prosody, [("--manifest", {"required": True}), ("--egemaps", {"nargs": "*", "default": []}),
                                  ("--params", {"default": "{}"}), ("--output", {"required": True})]),
        "narrative": (cmd_narrative, [("--manifest", {"required": True}), ("--prosody", {"default": ""}),
                                      ("--actions", {"nargs": "*", "default": []}),
                                      ("--tone", {"nargs": "*", "default": []}),
                                      ("--labels", {"default": "{}"}),
                                      ("--params", {"default": "{}"}), ("--out-dir", {"required": True})]),
        "aux-weights": (cmd_aux_weights, [("--manifest", {"required": True}), ("--primary", {"required": True}),
                                          ("--spec", {"default": "{}", "help": "the primary's label type (JSON)"}),
                                          ("--aux", {"nargs": "+", "required": True}),
                                          ("--primary-weight", {"type": float, "default": 0.7}),
                                          ("--method", {"default": "mi_linear"}), ("--seed", {"type": int, "default": 0})]),
        "report-narratives": (cmd_report_narratives, [("--corpus", {"required": True}),
                                                      ("--narratives", {"required": True}),
                                                      ("--manifest", {"required": True}),
                                                      ("--prosody", {"required": True}), ("--labels", {"default": ""}),
                                                      ("--output", {"required": True})]),
        "import-features": (cmd_import_features, [
            ("--features", {"required": True, "help": "the corpus's `features` block (JSON)"}),
            ("--corpus", {"required": True}), ("--manifest-out", {"required": True}),
            ("--features-dir", {"required": True, "help": "results/<corpus>/features"})]),
        "union": (cmd_union, [("--union", {"required": True}), ("--output", {"required": True})]),
        "tone": (cmd_tone, [("--predictions", {"required": True}), ("--manifest", {"required": True}),
                            ("--task", {"default": "tone"}), ("--output", {"required": True})]),
        "rejected": (cmd_rejected, [("--ingest", {"required": True}), ("--stores", {"nargs": "*", "default": []}),
                                    ("--corpus", {"required": True}), ("--manifest", {"required": True}),
                                    ("--output", {"required": True}), ("--summary", {"required": True})]),
        "assemble": (cmd_assemble, [("--manifest", {"required": True}), ("--stores", {"required": True}),
                                    ("--modalities", {"required": True}), ("--labels", {"required": True}),
                                    ("--max-steps", {"type": int, "default": 200}),
                                    ("--split-columns", {"nargs": "+", "default": ["split"]}),
                                    ("--normalise", {"default": "none"}),
                                    ("--output", {"required": True})]),
        "train": (cmd_train, [("--dataset", {"required": True}), ("--model", {"required": True}),
                              ("--fold", {"default": "split"}),
                              ("--seeds", {"type": int, "nargs": "+", "required": True}),
                              ("--tasks", {"required": True}),
                              ("--hparams", {"default": "{}"}), ("--device", {"default": "auto"}),
                              ("--results", {"nargs": "+", "required": True}),
                              ("--weights", {"nargs": "+", "required": True}),
                              ("--threads", {"type": int, "default": 1}),
                              ("--model-id", {"default": ""}), ("--modalities", {"default": ""}),
                              ("--weak", {"nargs": "*", "default": []}),
                              ("--best-hparams", {"nargs": "*", "default": []}),
                              ("--corpus", {"default": ""})]),
        "predict": (cmd_predict, [("--model", {"nargs": "+", "required": True,
                                               "help": "model.pt files, or a trained model's "
                                                       "folder (all its seeds)"}),
                                  ("--dataset", {"default": ""}), ("--input", {"nargs": "*"}),
                                  ("--work-dir", {"default": ""}),
                                  ("--corpus", {"default": ""}), ("--output", {"default": ""}),
                                  ("--device", {"default": "cpu"})]),
        "weak-labels": (cmd_weak_labels, [("--models", {"nargs": "+", "required": True}),
                                          ("--task", {"required": True}), ("--name", {"required": True}),
                                          ("--dataset", {"required": True}), ("--output", {"required": True}),
                                          ("--confidence", {"default": "auto"}),
                                          ("--device", {"default": "cpu"})]),
        "weak-check": (cmd_weak_check, [("--weak", {"required": True}), ("--manifest", {"required": True}),
                                        ("--label", {"required": True}), ("--label-spec", {"default": "{}"}),
                                        ("--output", {"required": True})]),
        "search-select": (cmd_search_select, [("--trials", {"nargs": "+", "required": True}),
                                              ("--grid", {"required": True}),
                                              ("--metric", {"default": "valid_loss"}),
                                              ("--model", {"default": ""}), ("--fold", {"default": ""}),
                                              ("--output", {"required": True})]),
        "evaluate": (cmd_evaluate, [("--results", {"nargs": "+", "required": True}),
                                    ("--evaluation", {"default": "{}"}), ("--weak-checks", {"nargs": "*", "default": []}),
                                    ("--search", {"nargs": "*", "default": []}),
                                    ("--metrics", {"required": True}), ("--figures", {"required": True})]),
        "report": (cmd_report, [("--corpus", {"required": True}), ("--metrics", {"required": True}),
                                ("--rejected", {"required": True}), ("--manifest", {"required": True}),
                                ("--figures-in", {"required": True}), ("--metrics-html", {"required": True}),
                                ("--rejected-html", {"required": True}), ("--figures-out", {"required": True}),
                                ("--protocol", {"default": "split"})]),
    }
    for name, (function, options) in commands.items():
        command = sub.add_parser(name)
        for flag, kwargs in options:
            command.add_argument(flag, **kwargs)
        command.set_defaults(function=function)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    args.function(args)
    return 0
