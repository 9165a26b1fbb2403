"""MeloTTS worker, run by MeloTTS's own Python (its venv): one JSON request per stdin line, one JSON reply per line.

Self-contained on purpose (it must not import the artifact, whose dependencies clash with MeloTTS's pins).
Request: {"text", "speaker", "speed", "path"}; reply: {"ok": true} or {"ok": false, "error": "..."}.
"""

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--language", default="EN")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    replies = sys.stdout
    sys.stdout = sys.stderr  # MeloTTS prints progress; keep the reply channel clean
    from melo.api import TTS

    model = TTS(language=args.language, device=args.device)
    speakers = model.hps.data.spk2id
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            model.tts_to_file(request["text"], speakers[request["speaker"]], request["path"],
                              speed=float(request.get("speed", 1.0)))
            reply = {"ok": True}
        except Exception as exc:  # report to the parent, keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
