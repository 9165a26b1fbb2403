"""espeak-ng synthesis isolated from history: a small server process that initialises libespeak-ng once, never
speaks itself, and forks a fresh child for every request.

libespeak-ng keeps state between syntheses in one process (in 1.51, speaking the same text three times gives three
waveforms whose lengths differ by a sample and word positions by up to ~10 samples; the sequence repeats in every
new process; re-seeding `srand` does not help and `espeak_Terminate` + re-initialising hung). A child forked from an
initialised, never-speaking parent starts from exactly the state of a fresh process, so its output depends only on
the request. The audio and the word/phoneme events of a request come from the same synthesis, in one reply.

Self-contained on purpose (standard library only, run as `python -I -S espeak_worker.py`): it starts in tens of
milliseconds and nothing imported by the caller can change espeak-ng's state. `artifact.speech.espeak` is the client.

Protocol on stdin/stdout, one request at a time:
- on start, one line: {"ok": true, "sample_rate", "version", "pid"} or {"ok": false, "error"}.
- request: one JSON line {"op": "synth", "text", "voice", "rate", "pitch"} or {"op": "phonemes", "text", "voice"}.
- reply: one JSON line {"ok": true, ..., "audio_bytes": N} followed by N bytes of little-endian int16 audio
  ("synth": also "sample_rate" and "events": [[kind, text_position (0-based), length, sample, phoneme], ...];
  "phonemes": "phonemes": [...]), or {"ok": false, "error"}.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import json
import os
import select
import signal
import sys
import time

LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.1.dylib")
INSTALL_HINT = ("Install espeak-ng (Debian/Ubuntu: 'sudo apt-get install espeak-ng'; scripts/bootstrap.sh does it "
                "as root).")

# speak_lib.h constants.
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
CHARS_UTF8 = 1
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_END, EVENT_PHONEME = 0, 1, 5, 7
PARAM_RATE, PARAM_PITCH = 1, 3


class EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class RawEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position of the word in the input text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # samples at the library's rate (22050 Hz)
        ("user_data", ctypes.c_void_p),
        ("id", EventId),
    ]


CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(RawEvent))


def load_library() -> ctypes.CDLL:
    """libespeak-ng, or RuntimeError with the install command."""
    for name in (*LIBRARY_NAMES, ctypes.util.find_library("espeak-ng")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_Info.restype = ctypes.c_char_p
        return lib
    raise RuntimeError(f"The espeak-ng library (libespeak-ng) is not installed. {INSTALL_HINT}")


def initialize(lib: ctypes.CDLL) -> int:
    """espeak_Initialize (synchronous, with phoneme events); the library's sample rate."""
    rate = int(lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                     INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT))
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({rate}); is espeak-ng-data installed? {INSTALL_HINT}")
    return rate


def set_voice(lib: ctypes.CDLL, voice: str, rate: int, pitch: int) -> None:
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"espeak-ng has no voice {voice!r}; list them with 'espeak-ng --voices'.")
    lib.espeak_SetParameter(PARAM_RATE, int(rate), 0)
    lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)


def synthesize(lib: ctypes.CDLL, text: str, voice: str, rate: int, pitch: int) -> tuple[bytes, list[list]]:
    """(int16 little-endian audio bytes, events) of one synthesis of `text`."""
    chunks: list[bytes] = []
    events: list[list] = []

    def collect(wav, count, raw) -> int:
        if count > 0:
            chunks.append(ctypes.string_at(wav, 2 * count))
        i = 0
        while raw[i].type != EVENT_LIST_TERMINATED:
            e = raw[i]
            if e.type == EVENT_WORD:
                events.append(["word", e.text_position - 1, e.length, e.sample, ""])
            elif e.type == EVENT_PHONEME:
                name = bytes(e.id.string).split(b"\0")[0].decode("ascii", "replace")
                events.append(["phoneme", e.text_position - 1, 0, e.sample, name])
            elif e.type == EVENT_END:
                events.append(["end", e.text_position - 1, 0, e.sample, ""])
            i += 1
        return 0

    callback = CALLBACK(collect)  # referenced until the synthesis returns
    lib.espeak_SetSynthCallback(callback)
    set_voice(lib, voice, rate, pitch)
    data = text.encode("utf-8")
    status = lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    lib.espeak_Synchronize()
    if status != 0:
        raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}.")
    audio = b"".join(chunks)
    if sys.byteorder != "little":  # the protocol is little-endian
        samples = array.array("h", audio)
        samples.byteswap()
        audio = samples.tobytes()
    return audio, events


def phonemes(lib: ctypes.CDLL, text: str, voice: str) -> list[str]:
    """eSpeak phoneme mnemonics of `text` (stress marks removed), in order."""
    set_voice(lib, voice, 175, 50)
    pointer = ctypes.c_char_p(text.encode("utf-8"))
    out: list[str] = []
    mode = ord(" ") << 8  # eSpeak mnemonics, separated by spaces
    while pointer.value:
        chunk = lib.espeak_TextToPhonemes(ctypes.byref(pointer), CHARS_UTF8, mode)
        if chunk is None:
            break
        out += [p.strip("',") for p in chunk.decode("utf-8", "replace").split()]
    return [p for p in out if p]


def answer(lib: ctypes.CDLL, sample_rate: int, request: dict) -> tuple[dict, bytes]:
    """The reply header and payload of one request (run in the forked child)."""
    op = request.get("op")
    if op == "synth":
        audio, events = synthesize(lib, request["text"], request["voice"], request["rate"], request["pitch"])
        return {"ok": True, "sample_rate": sample_rate, "events": events, "audio_bytes": len(audio)}, audio
    if op == "phonemes":
        return {"ok": True, "phonemes": phonemes(lib, request["text"], request["voice"]), "audio_bytes": 0}, b""
    raise ValueError(f"unknown op {op!r}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _frame(header: dict, payload: bytes = b"") -> bytes:
    return json.dumps(header).encode("utf-8") + b"\n" + payload


def run_in_child(lib: ctypes.CDLL, sample_rate: int, request: dict, timeout: float) -> bytes:
    """Fork, answer `request` in the child (fresh espeak-ng state), return its reply frame (or an error frame)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, write, exit without running any Python clean-up
        code = 0
        try:
            os.close(read_fd)
            try:
                frame = _frame(*answer(lib, sample_rate, request))
            except Exception as exc:  # reported to the client
                frame, code = _frame({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), 1
            _write_all(write_fd, frame)
        finally:
            os._exit(code)
    os.close(write_fd)
    parts: list[bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            block = os.read(read_fd, 1 << 20)
            if not block:
                break
            parts.append(block)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    data = b"".join(parts)
    if timed_out:
        return _frame({"ok": False, "error": f"espeak-ng did not finish within {timeout:g} s"})
    header, _, payload = data.partition(b"\n")
    try:
        parsed = json.loads(header)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or len(payload) != parsed.get("audio_bytes", 0):
        return _frame({"ok": False, "error": f"the espeak-ng child exited with status {status} without a "
                                             "complete reply"})
    return data


def main() -> int:
    timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's business; it ends us by closing stdin
    out = sys.stdout.buffer
    try:
        lib = load_library()
        sample_rate = initialize(lib)  # initialised once here; this process never speaks
        version = lib.espeak_Info(None).decode()
    except Exception as exc:
        out.write(_frame({"ok": False, "error": str(exc)}))
        out.flush()
        return 1
    out.write(_frame({"ok": True, "sample_rate": sample_rate, "version": version, "pid": os.getpid()}))
    out.flush()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as exc:
            out.write(_frame({"ok": False, "error": f"bad request: {exc}"}))
        else:
            out.write(run_in_child(lib, sample_rate, request, timeout))
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
