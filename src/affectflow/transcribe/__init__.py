"""Transcripts and word times for utterances: offline ASR, forced alignment, and their scores.

- `asr.transcribe`: Whisper (faster-whisper, bundled tiny.en) -> words with times, confidences.
- `align.align`: PocketSphinx forced alignment of a known English transcript -> word times.
- `evaluate`: WER, word-boundary error, `.lab` / TextGrid readers.
- `run.fill_transcripts`: the pipeline stage that fills a manifest's transcripts and words_path.

Heavy libraries (faster-whisper, pocketsphinx) are imported only when a model is first used.
The forced aligner is not re-exported here: `affectflow.transcribe.align` is its module.
"""

from affectflow.transcribe.asr import Word, transcribe
from affectflow.transcribe.evaluate import boundary_error, read_lab, read_textgrid, word_error_rate

__all__ = ["Word", "transcribe", "boundary_error", "read_lab", "read_textgrid", "word_error_rate",
           "fill_transcripts"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: `python -m affectflow.transcribe.run` stays clean
    if name == "fill_transcripts":
        from affectflow.transcribe.run import fill_transcripts

        return fill_transcripts
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
