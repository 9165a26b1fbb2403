"""Speech front end: a fact's prompt spoken (TTS), checked (recognition + WER), aligned (word times), tokenized into
SpiritLM speech units, with the subject located in time and in speech tokens (the S->T prompt itself is built by
`artifact.prompts.speech_prompt`).

Each stage is one small abstract interface with backends chosen by name (lazy imports):

| stage | offline (default) | paper / container |
| --- | --- | --- |
| text to speech | `espeak-ng` | `melotts` (subprocess into its own venv, `$MELOTTS_PYTHON`) |
| recognition | `pocketsphinx` | `whisper-small` |
| word alignment | `pocketsphinx` | `mms-fa` (torchaudio) |
| speech units | `kmeans-logmel` | `spiritlm` (`spiritlm_hubert()`'s HuBERT 25 Hz + quantizer) |
"""

from artifact.speech.alignment import ALIGNERS, Aligner, boundary_errors, create_aligner, subject_time_span
from artifact.speech.base import SAMPLE_RATE, UNIT_RATE, VOCABULARY, SpeechUnits, WordTime
from artifact.speech.front_end import FrontEndConfig, SpeechFrontEnd, SpokenFact
from artifact.speech.recognition import RECOGNIZERS, Recognizer, create_recognizer
from artifact.speech.registry import Registry, UnknownBackendError
from artifact.speech.text import normalize_text, word_error_rate
from artifact.speech.tts import TTS, TTS_BACKENDS, create_tts
from artifact.speech.units import UNIT_TOKENIZERS, UnitTokenizer, create_unit_tokenizer

__all__ = [
    "ALIGNERS", "Aligner", "FrontEndConfig", "RECOGNIZERS", "Recognizer", "Registry", "SAMPLE_RATE", "SpeechFrontEnd",
    "SpeechUnits", "SpokenFact", "TTS", "TTS_BACKENDS", "UNIT_RATE", "UNIT_TOKENIZERS", "UnitTokenizer",
    "UnknownBackendError", "VOCABULARY", "WordTime", "boundary_errors", "create_aligner", "create_recognizer",
    "create_tts", "create_unit_tokenizer", "normalize_text", "subject_time_span", "word_error_rate",
]
