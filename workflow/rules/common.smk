# Shared helpers: config validation, paths, the manifest-derived shard lists and digests.
import functools
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from affectflow.config import ConfigError, validate_config
from affectflow.features.registry import get_extractor, upstream
from affectflow.ingest.features_corpus import FORMATS as FEATURE_FORMATS
from affectflow.ingest.features_corpus import SOURCE_CSV, corpus_stores, prepare_features_corpora
from affectflow.ingest.features_corpus import source_files as features_source_files
from affectflow.narrative.rules import FAMILIES as NARRATIVE_FAMILIES

min_version("9.0")


try:  # one short line per error (place, value, what is allowed), never the schema itself
    validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))
    prepare_features_corpora(config)  # trust, stores vs training.modalities; default labels
except ConfigError as error:
    raise WorkflowError(str(error)) from None

# The stage command: the checkout's own package first, so --sdm conda envs need only the stack.
AFFECTFLOW = f"PYTHONPATH={shlex.quote(os.path.join(workflow.basedir, 'src'))} python -m affectflow"
RESULTS = config["results_dir"]
CACHE = config["cache_dir"]
CORPORA = list(config["corpora"])
EXTRACTORS = list(config.get("extractors", {}))
# Model runs by id: an architecture, the modalities it reads (None: all), its own
# hyper-parameters over training.hparams, its own tasks (None: the corpus's) and its search grid.
MODEL_SPECS = {
    (m if isinstance(m, str) else m["id"]): {
        "model": m if isinstance(m, str) else m["model"],
        "modalities": None if isinstance(m, str) else m.get("modalities"),
        "hparams": {} if isinstance(m, str) else m.get("hparams", {}),
        "tasks": None if isinstance(m, str) else m.get("tasks"),
        "search": None if isinstance(m, str) else m.get("search"),
    }
    for m in config["training"]["models"]
}
MODELS = list(MODEL_SPECS)
SEEDS = config["training"]["seeds"]
# Weak labels: each entry's task, as `name` (default <task>_w) in every `to` corpus.
WEAK = [{**w, "name": w.get("name") or f"{w['task']}_w"} for w in config.get("weak_labels", [])]


wildcard_constraints:
    corpus="|".join(CORPORA),
    shard=r"\d+",
    seed=r"-?\d+",
    fold=r"split(_[A-Za-z0-9_]+_\d+)?",
    name=r"[^/.]+",


def base_hparams(model):
    """training.hparams updated by the model entry's own."""
    return {**config["training"].get("hparams", {}), **MODEL_SPECS[model]["hparams"]}


def search_grid(model):
    """The hyper-parameter combinations of a model's search (sorted keys, product order)."""
    import itertools

    spec = {k: v for k, v in (MODEL_SPECS[model]["search"] or {}).items() if k != "metric"}
    keys = sorted(spec)
    return [dict(zip(keys, values)) for values in itertools.product(*(spec[k] for k in keys))]


def corpus_models(corpus):
    """The model ids trained on a corpus (its `models`, default all)."""
    return list(corpus_config(corpus).get("models", MODELS))


def model_tasks(corpus, model):
    """The tasks a model trains on a corpus: its own, else the corpus's, else training.tasks."""
    return (MODEL_SPECS[model]["tasks"] or corpus_config(corpus).get("tasks")
            or config["training"]["tasks"])


def weak_entry(corpus, name):
    for w in WEAK:
        if w["name"] == name and corpus in w["to"]:
            return w
    raise ValueError(f"no weak_labels entry gives {name!r} to corpus {corpus}")


def weak_tables(corpus, model):
    """The weak-label tables of the weak tasks a model trains on a corpus."""
    names = {w["name"] for w in WEAK if corpus in w["to"]}
    return [f"{RESULTS}/{corpus}/weak/{t}.parquet" for t in model_tasks(corpus, model) if t in names]


def search_results(corpus):
    """The search choices (best.json) of every searched model trained on a corpus, every fold."""
    return [f"{RESULTS}/{corpus}/search/{model}/{fold}/best.json" for model in corpus_models(corpus)
            if MODEL_SPECS[model]["search"] for fold in folds(corpus)]


def weak_checks(corpus):
    """The checks of the weak labels a corpus receives for a task it has labels of itself."""
    labels = corpus_config(corpus).get("labels", {})
    return [f"{RESULTS}/{corpus}/weak/{w['name']}.check.json" for w in WEAK
            if corpus in w["to"] and w["task"] in labels]


def labeler_models(corpus, model):
    """Every saved model (folds × seeds) of a model id on a corpus."""
    return [f"{RESULTS}/{corpus}/models/{model}/{fold}/seed={seed}/model.pt"
            for fold in folds(corpus) for seed in SEEDS]


def as_json(value):
    """Compact JSON for passing config sections to the command line."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def corpus_config(corpus):
    return config["corpora"][corpus]


def manifest_path(corpus):
    return f"{RESULTS}/{corpus}/manifest.parquet"


@functools.lru_cache(maxsize=16)
def _manifest_rows(path, mtime_ns):
    """shard → its manifest rows (read once per manifest version)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pandas()
    return {int(shard): rows.to_dict("records") for shard, rows in table.groupby("shard")}


def corpus_shards(corpus):
    """The non-empty shards of a corpus, once its ingest checkpoint has run."""
    path = checkpoints.ingest.get(corpus=corpus).output.manifest
    return sorted(_manifest_rows(path, os.stat(path).st_mtime_ns))


def shard_digest(corpus, extractor, shard):
    """A shard job's params digest: changes only when that shard's rows change as this extractor
    sees them, including the current size and mtime of the media files it reads, so a changed
    media file re-runs exactly the shard jobs (and then the utterances) that read it."""
    from affectflow.features.runner import shard_digest as digest

    path = checkpoints.ingest.get(corpus=corpus).output.manifest
    rows = _manifest_rows(path, os.stat(path).st_mtime_ns).get(int(shard))
    return digest(rows, get_extractor(extractor)) if rows else "empty"


def protocol(corpus):
    """The corpus's evaluation protocol: `split` (the manifest's own column) or the name of a
    cross-validation scheme whose folds are manifest columns split_<protocol>_<k>."""
    return corpus_config(corpus).get("protocol", "split")


def folds(corpus):
    """Split columns the models are trained and tested on, one dataset per column."""
    if protocol(corpus) == "split":
        return ["split"]
    import pyarrow.parquet as pq

    path = checkpoints.ingest.get(corpus=corpus).output.manifest
    prefix = f"split_{protocol(corpus)}_"
    found = sorted(n for n in pq.read_schema(path).names if n.startswith(prefix))
    if not found:
        raise ValueError(f"corpus {corpus}: protocol {protocol(corpus)!r} has no {prefix}* columns "
                         "in the manifest")
    return found


def run_results(wildcards):
    """result.json of every model × fold × seed of a corpus."""
    return [f"{RESULTS}/{wildcards.corpus}/models/{model}/{fold}/seed={seed}/result.json"
            for model in corpus_models(wildcards.corpus) for fold in folds(wildcards.corpus)
            for seed in SEEDS]


def extractor_settings(corpus, extractor):
    """An extractor's parameters for a corpus: the global ones, updated by the corpus's own
    (media prep's are the `media` section)."""
    if extractor == "audio":
        return as_json(config.get("media", {}))
    own = corpus_config(corpus).get("extractor_params", {}).get(extractor, {})
    return as_json({**config["extractors"].get(extractor, {}), **own})


def corpus_extractors(corpus):
    """Extractors run on a corpus (all configured ones unless the corpus names its own), after
    the stores they read (media prep for the audio ones), as each extractor declares. None for a
    features corpus: its stores are imported."""
    if "features" in corpus_config(corpus):
        return []
    return upstream(list(corpus_config(corpus).get("extractors", EXTRACTORS)))


def imported_stores(corpus):
    """The stores a features corpus's import writes (none for a media corpus)."""
    spec = corpus_config(corpus).get("features")
    return list(corpus_stores(spec).values()) if spec else []


def features_corpora(fmt):
    """The corpora of one feature-file format (`features.format`)."""
    return [c for c in CORPORA if corpus_config(c).get("features", {}).get("format") == fmt]


def corpus_shard_count(corpus):
    """Shards utterances are hashed into: the config's, or one for a features corpus (its
    import writes each store as one partition)."""
    return 1 if "features" in corpus_config(corpus) else corpus_config(corpus).get("shards", 8)


def corpus_store_files(corpus):
    """Every feature partition of a corpus."""
    return [f for name in corpus_extractors(corpus) + imported_stores(corpus)
            for f in store_files(corpus, name)]


def store_files(corpus, extractor):
    """All shard partitions of one (corpus, extractor) store. A deleted partition whose inputs
    did not change is put back from the cache here, while the DAG is planned (in the main process, not in a dry run):
    Snakemake plans every consumer of a job that runs, so rebuilding it as a job would re-run
    training and all after it for a byte-identical file. An imported store is one partition,
    written by its corpus's import job (no cache)."""
    if extractor in imported_stores(corpus):
        return [f"{RESULTS}/{corpus}/features/{extractor}/shard=0.parquet"]
    files = [f"{RESULTS}/{corpus}/features/{extractor}/shard={shard}.parquet"
             for shard in corpus_shards(corpus)]
    missing = [(shard, path) for shard, path in zip(corpus_shards(corpus), files)
               if not os.path.exists(path)]
    if missing and _may_write():
        _restore_from_cache(corpus, extractor, missing)
    return files


def _may_write():
    """Whether this invocation builds (the main process of a real run): not a dry run, nor
    --summary, --dag, --report, --unlock and the like, which run no executor."""
    return workflow.is_main_process and workflow.executor_plugin is not None and not workflow.dryrun


def _restore_from_cache(corpus, extractor, missing):
    from affectflow.features.runner import restore_unchanged

    for store in get_extractor(extractor).stores():
        store_files(corpus, store)  # their partitions first: their signatures are inputs here
    params = json.loads(extractor_settings(corpus, extractor))
    path = checkpoints.ingest.get(corpus=corpus).output.manifest
    rows = _manifest_rows(path, os.stat(path).st_mtime_ns)
    for shard, output in missing:
        cache = f"{CACHE}/{corpus}/{extractor}/shard={shard}.parquet"
        stores = {name: f"{RESULTS}/{corpus}/features/{name}/shard={shard}.parquet"
                  for name in get_extractor(extractor).stores()}
        if os.path.exists(cache) and restore_unchanged(rows[shard], extractor, params, output, cache, stores):
            print(f"affectflow: restored {output} from the cache (nothing it depends on changed)",
                  file=sys.stderr)


TONE_TO = config.get("tone", {}).get("to", [])


def tone_predictions(corpus):
    """The prediction table of the tone model on `corpus` (built by the predict rule)."""
    source = config["tone"]["from"]
    return f"{RESULTS}/{corpus}/predictions/{source['corpus']}/{source['model']}.parquet"


def narrative_tone(wildcards):
    return [f"{RESULTS}/{wildcards.corpus}/tone/tone.parquet"] if wildcards.corpus in TONE_TO else []


def all_targets(wildcards):
    targets = []
    for corpus in CORPORA:
        targets += [f"{RESULTS}/{corpus}/rejected.parquet", f"{RESULTS}/{corpus}/rejected_summary.json"]
        if not corpus_shards(corpus):
            continue  # nothing accepted at ingest: the rejected table says why; nothing to train
        # The feature partitions themselves, so a deleted one is rebuilt by a plain run.
        targets += corpus_store_files(corpus)
        if corpus_models(corpus):  # `models: []`: a corpus only labelled or described, not trained on
            targets += [f"{RESULTS}/{corpus}/metrics.json", f"{RESULTS}/{corpus}/report/metrics.html",
                        f"{RESULTS}/{corpus}/report/rejected.html"]
        targets += [f"{RESULTS}/{corpus}/weak/{w['name']}.parquet" for w in WEAK if corpus in w["to"]]
        if "face" in corpus_extractors(corpus):
            targets.append(f"{RESULTS}/{corpus}/actions/au.parquet")
        targets += [f"{RESULTS}/{corpus}/narrative/narratives.parquet", f"{RESULTS}/{corpus}/report/narratives.html"]
        if corpus in TONE_TO:
            targets.append(f"{RESULTS}/{corpus}/tone/tone.parquet")
    for p in config.get("predictions", []):
        for corpus in p["to"]:
            targets.append(f"{RESULTS}/{corpus}/predictions/{p['from']['corpus']}/{p['from']['model']}.parquet")
    return targets


def corpus_source(wildcards):
    """The input file of the corpus's own manifest: the generated corpus folder, an adapter's,
    union's or features import's manifest, or the manifest given in the config."""
    corpus = corpus_config(wildcards.corpus)
    if "generator" in corpus:
        return f"{RESULTS}/{wildcards.corpus}/source/generated"
    if "adapter" in corpus:
        return f"{RESULTS}/{wildcards.corpus}/source/manifest.csv"
    if "union" in corpus:
        return f"{RESULTS}/{wildcards.corpus}/source/union.csv"
    if "features" in corpus:
        return f"{RESULTS}/{wildcards.corpus}/source/{SOURCE_CSV}"
    return corpus["manifest"]


def corpus_manifest(wildcards):
    """The corpus's own manifest file (inside the folder for a generated corpus)."""
    source = corpus_source(wildcards)
    return f"{source}/manifest.csv" if "generator" in corpus_config(wildcards.corpus) else source


def transcribed(wildcards):
    return f"{RESULTS}/{wildcards.corpus}/transcribed/manifest.csv"


def ingest_source(wildcards):
    """What ingest reads: the transcribed manifest when the corpus asks for ASR/alignment."""
    if "transcribe" in corpus_config(wildcards.corpus):
        return transcribed(wildcards)
    return corpus_source(wildcards)


def ingest_source_file(wildcards):
    if "transcribe" in corpus_config(wildcards.corpus):
        return transcribed(wildcards)
    return corpus_manifest(wildcards)


def ingest_encoding(wildcards):
    """The source manifest's text encoding; a transcribed manifest is always UTF-8."""
    if "transcribe" in corpus_config(wildcards.corpus):
        return "utf-8"
    return corpus_config(wildcards.corpus).get("encoding", "utf-8")


def extractor_store_inputs(wildcards):
    """The same shard's partition of every store the extractor reads, in its declared order."""
    return [f"{RESULTS}/{wildcards.corpus}/features/{name}/shard={wildcards.shard}.parquet"
            for name in get_extractor(wildcards.extractor).stores()]


def modality_stores(wildcards):
    """Training modality → the shard files of the store feeding it (name or {extractor, view})."""
    return {modality: store_files(wildcards.corpus, source if isinstance(source, str) else source["extractor"])
            for modality, source in config["training"]["modalities"].items()}


def print_run_summary():
    """One line per corpus at the end of a run: accepted, rejected by kind, where the table is."""
    from affectflow.report.tables import summary_line

    for corpus in CORPORA:
        path = f"{RESULTS}/{corpus}/rejected_summary.json"
        if os.path.exists(path):
            with open(path) as handle:
                print(summary_line(json.load(handle)), flush=True)
