"""Transcripts and sentiment scores for the demo corpus.

Sentences come from small template pools. Which pool an utterance draws from is what makes the
text modality informative but incomplete:

* ``POSITIVE``  positive wording. Used for sincere *happy* utterances **and** for every sarcastic
  utterance (said with angry or sad prosody and face), so the words alone cannot tell sarcasm.
* ``HAPPY`` / ``SAD`` / ``ANGRY``  wording that carries the emotion.
* ``NEUTRAL``  matter-of-fact wording, used by neutral utterances and by a share of the emotional
  ones ("The report is on your desk." said angrily), so text cannot see every emotion.

Each template has a lexical polarity in [-2, 2]; the sentiment label mixes the *intended*
polarity (negated for sarcasm), the speaker's emotion and its intensity, plus seeded noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry")

# (sentence, lexical polarity in [-2, 2])
POSITIVE: tuple[tuple[str, float], ...] = (
    ("Oh great, another meeting this afternoon.", 1.5),
    ("Wow, what a wonderful surprise this is.", 2.0),
    ("I just love working on the weekends.", 1.5),
    ("Perfect, that is exactly what I needed today.", 1.5),
    ("Well, that went really well, didn't it.", 1.5),
    ("Sure, I would love to help you with that.", 1.0),
    ("Fantastic, they changed the whole plan again.", 1.5),
    ("This is the best news I have heard all week.", 2.0),
    ("Nice, the new schedule starts on Monday.", 1.0),
    ("Brilliant, we get to do it all over again.", 1.5),
)
HAPPY: tuple[tuple[str, float], ...] = (
    ("We finally won the match this morning.", 1.5),
    ("I am so glad you came to visit us.", 2.0),
    ("Thank you so much, this gift is lovely.", 2.0),
    ("My sister is getting married in June.", 1.0),
    ("The whole family will be here for dinner.", 1.0),
    ("I passed the exam on my first try.", 1.5),
)
SAD: tuple[tuple[str, float], ...] = (
    ("I miss them more than I can say.", -1.5),
    ("Nothing has gone right for me this week.", -1.5),
    ("She never called me back after that.", -1.0),
    ("I lost my keys and my wallet today.", -1.5),
    ("The old dog passed away last night.", -2.0),
    ("I don't think I can do this anymore.", -1.5),
)
ANGRY: tuple[tuple[str, float], ...] = (
    ("I told you not to touch my things.", -1.5),
    ("This is completely unacceptable, fix it now.", -2.0),
    ("Stop wasting my time with these excuses.", -2.0),
    ("You never listen to a single word I say.", -1.5),
    ("Who left the door open again last night?", -1.0),
    ("I am sick of cleaning up after you.", -2.0),
)
NEUTRAL: tuple[tuple[str, float], ...] = (
    ("The meeting starts at nine tomorrow morning.", 0.0),
    ("I put the boxes in the kitchen.", 0.0),
    ("We took the bus to the station.", 0.0),
    ("The report is on your desk now.", 0.0),
    ("It will probably rain later this evening.", -0.25),
    ("He moved to another city last year.", 0.0),
    ("The shop closes at six on Sundays.", 0.0),
    ("I read the second chapter on the train.", 0.0),
)
_OWN_POOL = {"happy": HAPPY, "sad": SAD, "angry": ANGRY}

# Valence of each emotion on the sentiment scale, before intensity and noise.
VALENCE = {"neutral": 0.0, "happy": 1.6, "sad": -1.3, "angry": -1.7}
# Chance that an emotional, non-sarcastic utterance uses neutral wording (text cannot see it).
P_NEUTRAL_WORDING = 0.35
# Chance that a sincere happy utterance uses the shared positive pool (rather than HAPPY).
P_HAPPY_SHARED = 0.8
# Chance that a neutral utterance uses mildly positive wording from the shared pool.
P_NEUTRAL_SHARED = 0.25


@dataclass(frozen=True)
class TextChoice:
    """The sentence an utterance says, which pool it came from, and its lexical polarity."""

    transcript: str
    pool: str
    polarity: float


def choose_text(emotion: str, sarcasm: bool, rng: np.random.Generator) -> TextChoice:
    """Pick a sentence for an utterance with this emotion and sarcasm flag."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}")
    if sarcasm:
        if emotion not in ("sad", "angry"):
            raise ValueError("sarcastic utterances must carry a negative emotion (sad or angry)")
        pool_name, pool = "positive", POSITIVE
    elif emotion == "neutral":
        shared = rng.random() < P_NEUTRAL_SHARED
        pool_name, pool = ("positive", POSITIVE) if shared else ("neutral", NEUTRAL)
    elif rng.random() < P_NEUTRAL_WORDING:
        pool_name, pool = "neutral", NEUTRAL
    elif emotion == "happy" and rng.random() < P_HAPPY_SHARED:
        pool_name, pool = "positive", POSITIVE
    else:
        pool_name, pool = emotion, _OWN_POOL[emotion]
    sentence, polarity = pool[int(rng.integers(len(pool)))]
    return TextChoice(transcript=sentence, pool=pool_name, polarity=polarity)


def sentiment_score(
    emotion: str, sarcasm: bool, polarity: float, intensity: float, rng: np.random.Generator
) -> float:
    """Sentiment in [-3, 3]: intended meaning + emotion valence scaled by intensity + noise.

    Sarcasm flips the lexical polarity (the speaker means the opposite of the words), so the
    sentiment of a sarcastic line is negative although its words are positive.
    """
    meaning = -abs(polarity) if sarcasm else polarity
    score = 0.45 * meaning + VALENCE[emotion] * (0.5 + 0.7 * intensity) + rng.normal(0.0, 0.45)
    return float(np.round(np.clip(score, -3.0, 3.0), 2))
