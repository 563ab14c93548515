"""MONAH narrative rules, phrase by phrase, on constructed evidence (paper 003)."""

from __future__ import annotations

import numpy as np
import pytest

from affectflow.narrative.rules import (FAMILIES, NarrativeConfig, TurnEvidence, action_phrases,
                                        prosody_phrases, weave)

CFG = NarrativeConfig()
TIMES = np.arange(10) * 0.2  # 10 frames at 5 fps: 2.0 s


def frames(on: list[int]) -> np.ndarray:
    mask = np.zeros(10, bool)
    mask[on] = True
    return mask


def turn(**evidence) -> TurnEvidence:
    return TurnEvidence("the woman", "no", TIMES, **evidence)


def texts(phrases) -> list[str]:
    return [p.text for p in phrases]


def test_smile_needs_au06_and_au12_together_for_half_a_second() -> None:
    # together on frames 2-4: 3 frames of 0.2 s = 0.6 s
    smile = turn(au_present={"AU06": frames([2, 3, 4, 8]), "AU12": frames([1, 2, 3, 4, 9])})
    (phrase,) = action_phrases(smile, CFG)
    assert phrase.text == "smiled" and phrase.part == "a" and "0.60 s" in phrase.evidence
    # 0.4 s together, or 1.0 s in two broken runs of 0.4 s: no smile
    assert action_phrases(turn(au_present={"AU06": frames([2, 3]), "AU12": frames([2, 3])}), CFG) == []
    broken = frames([1, 2, 5, 6])
    assert action_phrases(turn(au_present={"AU06": broken, "AU12": broken}), CFG) == []
    assert action_phrases(turn(au_present={"AU06": frames(list(range(10)))}), CFG) == []  # no AU12
    assert texts(action_phrases(turn(au_present={"AU06": frames([2, 3]), "AU12": frames([2, 3])}),
                                NarrativeConfig(smile_min_s=0.4))) == ["smiled"]


def test_every_frame_actions_and_positive_expression() -> None:
    every = frames(list(range(10)))
    nine = frames(list(range(9)))
    got = action_phrases(turn(au_present={"AU12": every, "AU05": every, "AU17": nine, "AU20": every,
                                          "AU25": every}), CFG)
    assert texts(got) == ["displayed a positive expression", "raised upper lid", "stretched lip",
                          "dropped jaw"]  # AU17 misses a frame: not said
    assert got[0].evidence == "AU12 present in all 10 frames"
    assert texts(action_phrases(turn(nods=2), CFG)) == ["nodded"]
    assert action_phrases(TurnEvidence("the man", "hi"), CFG) == []  # no face evidence at all


def test_tone_is_said_above_z_two_and_the_highest_wins() -> None:
    assert prosody_phrases(turn(tone_z={"sadness": 2.0, "anger": 1.9}), CFG) == []  # not above 2
    (phrase,) = prosody_phrases(turn(tone_z={"sadness": 2.4, "anger": 3.1, "happiness": 2.2}), CFG)
    assert phrase.text == "angrily" and phrase.part == "p" and "anger z +3.10" in phrase.evidence
    assert texts(prosody_phrases(turn(tone_z={"fear": 2.5}), CFG)) == ["fearfully"]


@pytest.mark.parametrize(("z", "words"), [(-2.5, "very slowly"), (-2.0, "very slowly"),
                                          (-1.5, "slowly"), (-1.0, "slowly"), (-0.99, None),
                                          (0.0, None), (0.99, None), (1.0, "quickly"),
                                          (1.99, "quickly"), (2.0, "very quickly")])
def test_speech_rate_bins(z: float, words: str | None) -> None:
    assert texts(prosody_phrases(turn(rate_z=z), CFG)) == ([words] if words else [])


@pytest.mark.parametrize(("ms", "z", "text"), [
    (199, 0.5, None),
    (200, -0.3, "after two hundred milliseconds, a short delay,"),
    (250, 0.0, "after three hundred milliseconds, a slightly long delay,"),
    (430, 1.2, "after four hundred milliseconds, a long delay,"),
    (1200, 2.0, "after twelve hundred milliseconds, a significantly long delay,"),
    (1201, 3.0, "after more than twelve hundred milliseconds, a significantly long delay,"),
    (600, None, "after six hundred milliseconds, a short delay,"),
])
def test_pause_before_the_turn(ms: float, z: float | None, text: str | None) -> None:
    got = prosody_phrases(turn(pause_ms=ms, pause_z=z), CFG)
    assert texts(got) == ([text] if text else [])
    if text:
        assert f"pause {ms:.0f} ms" in got[0].evidence


def test_the_four_families_weave_the_papers_example() -> None:
    evidence = turn(au_present={"AU17": frames(list(range(10)))}, tone_z={"sadness": 2.6}, rate_z=-1.4)
    woven = {f: weave(evidence, f).text for f in FAMILIES}
    assert woven == {"v": "The woman said no.",
                     "vp": "The woman sadly and slowly said no.",
                     "va": "The woman raised chin. The woman said no.",
                     "vpa": "The woman raised chin. The woman sadly and slowly said no."}
    full = weave(TurnEvidence("Chandler", "Could this BE any more awkward?", TIMES,
                              {"AU06": frames([0, 1, 2, 3]), "AU12": frames([0, 1, 2, 3]),
                               "AU25": frames(list(range(10)))},
                              pause_ms=820, pause_z=2.3, rate_z=2.2), "vpa")
    assert full.text == ("Chandler smiled and dropped jaw. After eight hundred milliseconds, a "
                         "significantly long delay, Chandler very quickly said Could this BE any "
                         "more awkward?")
    assert [p.part for p in full.phrases] == ["a", "a", "p", "p"]
    with pytest.raises(ValueError, match="family must be one of"):
        weave(evidence, "pv")
