"""The offline aligner (pocketsphinx forced alignment of espeak-ng audio): results independent of what was aligned
before, prompts that used to fail, and the pronunciations given to the decoder."""

from __future__ import annotations

import numpy as np
import pytest

from artifact.speech import boundary_errors, create_aligner, espeak
from artifact.speech.alignment import text_words
from artifact.speech.tts import EspeakTTS

pytestmark = pytest.mark.skipif(not espeak.available(), reason="espeak-ng (libespeak-ng) is not installed")
# known_1000 prompts the aligner used to lose (pocketsphinx's full-utterance mode), with names, a foreign phrase
# with an apostrophe, and a comma pause.
KIRKPATRICK = "Kirkpatrick Glacier belongs to the continent of"
COMME = "Comme j'ai mal is written in"
GIUSEPPE = "Giuseppe Angeli, who has a citizenship of"


@pytest.fixture(scope="module")
def spoken():
    """Each prompt synthesised once: its audio and espeak-ng's word times in that same audio."""
    tts = EspeakTTS()
    return {text: tts.synthesize_with_words(text) for text in (KIRKPATRICK, COMME, GIUSEPPE)}


def _times(words):
    return [(w.word, w.start, w.end, w.char_start, w.char_end) for w in words]


def test_alignment_does_not_depend_on_what_was_aligned_before(spoken):
    (a, _), (b, _) = spoken[COMME], spoken[KIRKPATRICK]
    aligner = create_aligner("pocketsphinx")
    first_a = _times(aligner.align(a, COMME))  # adds the out-of-dictionary 'comme' and 'j'ai'
    then_b = _times(aligner.align(b, KIRKPATRICK))
    again_a = _times(aligner.align(a, COMME))
    assert again_a == first_a
    assert _times(create_aligner("pocketsphinx").align(b, KIRKPATRICK)) == then_b


def test_prompts_that_used_to_fail_align_word_for_word(spoken):
    aligner = create_aligner("pocketsphinx")
    errors = []
    for text, (audio, truth) in spoken.items():
        words = aligner.align(audio, text)
        assert [w.word for w in words] == [w for _, _, w, _ in text_words(text)] == text.split()
        starts = [w.start for w in words]
        assert starts == sorted(starts) and all(w.end > w.start for w in words)
        errors += boundary_errors(truth, words)
    assert len(errors) > 25
    assert np.median(errors) < 0.04 and np.percentile(errors, 90) < 0.1


def test_pronunciations_cover_dictionary_and_espeak_readings():
    aligner = create_aligner("pocketsphinx")
    assert aligner.pronunciations("a", "a")[:2] == ["AH", "EY"]  # both CMU dictionary entries, in order
    assert aligner.pronunciations("Comme", "comme") == ["K AH M EH"]  # not in the dictionary: espeak-ng's reading
    assert "Y UW EH S" in aligner.pronunciations("U.S.", "us")  # 'us' the pronoun in the dictionary; espeak: U S
    assert "S EH K AH N D" in aligner.pronunciations("2nd", "2nd")
    settings = aligner.settings()
    assert "fresh" in settings["decoder"] and settings["mode"] == "streaming"
