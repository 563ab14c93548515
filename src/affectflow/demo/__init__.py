"""affectflow.demo: a deterministic, synthetic talking-face corpus for first runs and tests.

`build_demo_corpus` writes speech (eSpeak NG), talking-face video (the scikit-image astronaut
photo, warped per frame), transcripts, word timings and emotion/sentiment/sarcasm labels.
"""

from affectflow.demo.corpus import MANIFEST_COLUMNS, build_demo_corpus, plan_corpus

__all__ = ["MANIFEST_COLUMNS", "build_demo_corpus", "plan_corpus"]
