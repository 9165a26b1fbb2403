"""Fact sets in ROME's known_1000 schema: ROME's `known_1000.json` (fingerprint-checked) and the project's own set.

A record is `{known_id, subject, attribute, template, prediction, prompt, relation_id}` (BRIEF section 3). Sources:

- `"known_1000"`: ROME's file, found without network first: `$ARTIFACT_FACTS_DIR/known_1000.json` (the container
  image carries one there), then the project cache; else downloaded once from `KNOWN_1000_URL` into the cache. Its
  canonical content fingerprint (`facts_fingerprint`) must equal `KNOWN_1000_FINGERPRINT` wherever it comes from.
- `"own"`: the project's own fact set, `artifact/data/own_facts.json`, shipped in the repo (offline smoke profile).
- any other string: the path of a JSON file holding a list of records in the same schema.

Every record is validated; an error names the record (its index and known_id), the problem and the fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)

KNOWN_1000_URL = "https://rome.baulab.info/data/dsets/known_1000.json"
KNOWN_1000_FINGERPRINT = "6996e736e3a3851268758b86628b22df5331e8e2e1b0bcc3e407ed9daa8e6bab"
KNOWN_1000_RECORDS = 1209
KNOWN_1000_FILE = "known_1000.json"
FACTS_DIR_ENV = "ARTIFACT_FACTS_DIR"  # a folder that may hold ROME's known_1000.json (offline runs, the image)
OWN_FACTS_PATH = Path(__file__).resolve().parent / "data" / "own_facts.json"
SOURCES = ("known_1000", "own")


class FactsError(ValueError):
    """A fact file cannot be used as it is; the message names the record, the problem and the fix."""


class FingerprintMismatchError(FactsError):
    """A fact file's canonical content fingerprint differs from the expected one."""

    def __init__(self, source: str, expected: str, actual: str, fix: str):
        self.expected, self.actual = expected, actual
        super().__init__(
            f"Fact file {source} has content fingerprint {actual}, expected {expected} (sha256 of the canonical "
            f"JSON of its records). {fix}"
        )


@dataclass(frozen=True)
class Fact:
    """One fact in ROME's known_1000 schema. `prompt` contains `subject` verbatim; `attribute` is the answer."""

    known_id: int  # unique id within its file
    subject: str  # as it appears in the prompt (the span ROME corrupts)
    attribute: str  # the expected answer, e.g. "Paris"
    template: str  # the relation's template with "{}" for the subject
    prediction: str  # a model's continuation recorded with the file (ROME: GPT-2 XL's); "" when none
    prompt: str  # the text the model continues; ends before the answer, with no trailing space
    relation_id: str  # Wikidata property, e.g. "P36" (capital)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FACT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Fact))
_FIELD_TYPES: dict[str, type] = {"known_id": int, **{name: str for name in FACT_FIELDS if name != "known_id"}}


def facts_fingerprint(facts: Sequence[Fact]) -> str:
    """sha256 of `json.dumps([f.to_dict() ...], sort_keys=True, separators=(",", ":"), ensure_ascii=False)` in UTF-8.

    For ROME's known_1000.json this equals the fingerprint of the records as stored (KNOWN_1000_FINGERPRINT).
    """
    text = json.dumps([f.to_dict() for f in facts], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _record_problems(record: Any) -> list[str]:
    """What is wrong with one record, each with its fix; empty when it is valid."""
    if not isinstance(record, dict):
        return [f"it is a {type(record).__name__}, not an object; each record must be a JSON object with the fields "
                f"{', '.join(FACT_FIELDS)}"]
    missing = [name for name in FACT_FIELDS if name not in record]
    if missing:
        return [f"missing field(s) {', '.join(missing)}; every record needs {', '.join(FACT_FIELDS)}"]
    problems = []
    for name, kind in _FIELD_TYPES.items():
        value = record[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            problems.append(f"field {name!r} is {type(value).__name__} {value!r}, expected {kind.__name__}")
    if problems:
        return problems
    for name in ("subject", "attribute", "prompt", "relation_id"):
        if not record[name].strip():
            problems.append(f"field {name!r} is empty; give it a value")
    if problems:
        return problems
    if record["subject"] not in record["prompt"]:
        problems.append(f"subject {record['subject']!r} does not occur in prompt {record['prompt']!r}; the subject "
                        "must appear verbatim (same case and spelling) in the prompt")
    if record["prompt"] != record["prompt"].rstrip():
        problems.append(f"prompt {record['prompt']!r} ends in whitespace; remove it (the answer token is the first "
                        "token of prompt + ' ' + attribute)")
    if record["template"].count("{}") != 1:
        problems.append(f"template {record['template']!r} must contain '{{}}' exactly once, where the subject goes")
    elif not record["prompt"].startswith(record["template"].format(record["subject"])):
        # known_1000's prompts are the template filled in, sometimes followed by a few more words.
        problems.append(f"prompt {record['prompt']!r} does not start with the template filled with the subject "
                        f"({record['template'].format(record['subject'])!r}); fix the template, subject or prompt")
    return problems


def parse_facts(records: Any, source: str = "<records>") -> list[Fact]:
    """Validated Facts from a list of known_1000-schema records; FactsError naming every bad record otherwise."""
    if not isinstance(records, list):
        raise FactsError(f"Fact file {source} holds a JSON {type(records).__name__}; it must hold a list of records "
                         f"with the fields {', '.join(FACT_FIELDS)} (ROME's known_1000.json schema).")
    if not records:
        raise FactsError(f"Fact file {source} holds no records; add at least one.")
    errors: list[str] = []
    seen: dict[int, int] = {}
    facts: list[Fact] = []
    extra: set[str] = set()
    for index, record in enumerate(records):
        known_id = record.get("known_id", "?") if isinstance(record, dict) else "?"
        problems = _record_problems(record)
        if not problems and known_id in seen:
            problems = [f"known_id {known_id} duplicates record {seen[known_id]}'s; give every record a unique "
                        "known_id"]
        if problems:
            errors.extend(f"record {index} (known_id {known_id}): {problem}" for problem in problems)
            continue
        seen[known_id] = index
        extra.update(set(record) - set(FACT_FIELDS))
        facts.append(Fact(**{name: record[name] for name in FACT_FIELDS}))
    if len(errors) == 1:
        raise FactsError(f"Fact file {source} has an invalid record: {errors[0]}")
    if errors:
        shown = errors[:10] + ([f"... and {len(errors) - 10} more problem(s)"] if len(errors) > 10 else [])
        raise FactsError(f"Fact file {source} has {len(errors)} invalid record problem(s):\n  " + "\n  ".join(shown))
    if extra:
        log.warning("Fact file %s: ignoring fields outside the known_1000 schema: %s", source, ", ".join(sorted(extra)))
    return facts


def read_facts_file(path: str | os.PathLike[str]) -> list[Fact]:
    """Validated Facts from a JSON file in the known_1000 schema."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Fact file {path} does not exist. Pass 'known_1000', 'own' or the path of a JSON "
                                "file in ROME's known_1000 schema.")
    try:
        records = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FactsError(f"Fact file {path} is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset "
                         f"{exc.start} cannot be decoded; save the file as UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise FactsError(f"Fact file {path} is not valid JSON ({exc}); fix or replace it.") from None
    return parse_facts(records, str(path))


def known_1000_cache_path() -> Path:
    """Where ROME's known_1000.json is kept once downloaded: <cache_root>/data/known_1000.json."""
    from artifact.models.loading import cache_root  # lazy: torch

    return cache_root() / "data" / "known_1000.json"


def check_fingerprint(facts: Sequence[Fact], source: str, expected: str = KNOWN_1000_FINGERPRINT, fix: str = "") -> str:
    """The facts' fingerprint; FingerprintMismatchError naming both fingerprints when it is not `expected`."""
    actual = facts_fingerprint(facts)
    if actual != expected:
        raise FingerprintMismatchError(source, expected, actual, fix)
    return actual


def download_known_1000(url: str | None = None, dest: Path | None = None, timeout: float = 60.0) -> Path:
    """Download ROME's known_1000.json from `url` (default KNOWN_1000_URL) to `dest` (default the cache) atomically,
    after checking its fingerprint; nothing is written when the check fails."""
    url = url or KNOWN_1000_URL
    dest = dest or known_1000_cache_path()
    log.info("Downloading %s (once; cached in %s)", url, dest)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(
            f"Could not download ROME's known_1000.json from {url} ({exc}), and no copy was found without network. "
            f"Give one of: --facts PATH (a copy of ROME's known_1000.json; run_all.sh and every command that reads "
            f"facts take it), {FACTS_DIR_ENV}=DIR with DIR/{KNOWN_1000_FILE} (the container image sets it), or "
            f"network access once (the file is then cached at {dest})."
        ) from None
    try:
        records = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FactsError(f"The file downloaded from {url} is not valid JSON ({exc}); check the URL.") from None
    facts = parse_facts(records, url)
    check_fingerprint(facts, url, fix="The published file has changed or the download is corrupt; nothing was "
                                      "cached. Pass a verified copy with --facts PATH.")
    # lazy: artifact.core (the image build checks known_1000.json with this module alone on the path)
    from artifact.core.fileio import write_atomic

    write_atomic(dest, lambda out: out.write(payload))  # readable by others (umask), no partial file left
    return dest


def provided_known_1000_path() -> Path | None:
    """ROME's file where the environment provides it without network: `$ARTIFACT_FACTS_DIR/known_1000.json` (the
    container image bakes it there at build time), or None when the variable is unset or the folder lacks it."""
    folder = os.environ.get(FACTS_DIR_ENV)
    if not folder:
        return None
    path = Path(folder) / KNOWN_1000_FILE
    if path.is_file():
        return path
    if not Path(folder).is_dir():
        log.warning("%s=%s is not a folder; looking for %s in the cache", FACTS_DIR_ENV, folder, KNOWN_1000_FILE)
    return None


def load_known_1000(url: str | None = None) -> list[Fact]:
    """ROME's known_1000 facts: from `$ARTIFACT_FACTS_DIR` when it holds the file, else from the cache, else
    downloaded once into the cache; fingerprint checked whichever source it is (a mismatch names the file)."""
    provided = provided_known_1000_path()
    if provided is not None:
        facts = read_facts_file(provided)
        check_fingerprint(facts, str(provided), fix=f"It is not ROME's file: replace it with ROME's "
                                                    f"{KNOWN_1000_FILE}, or unset {FACTS_DIR_ENV} to use the cache "
                                                    "or a download.")
        log.info("ROME's %s from %s (%s)", KNOWN_1000_FILE, provided, FACTS_DIR_ENV)
        return facts
    path = known_1000_cache_path()
    if not path.is_file():
        download_known_1000(url, path)
    facts = read_facts_file(path)
    check_fingerprint(facts, str(path), fix=f"The cached copy is not ROME's file; delete {path} to download it again.")
    return facts


def load_facts(source: str | os.PathLike[str]) -> list[Fact]:
    """Facts from 'known_1000' (ROME's file, cached, fingerprint-checked), 'own' (the project's set) or a JSON path."""
    if isinstance(source, str) and source == "known_1000":
        return load_known_1000()
    if isinstance(source, str) and source == "own":
        return read_facts_file(OWN_FACTS_PATH)
    path = Path(source)
    if not path.is_file() and isinstance(source, str) and not path.suffix:
        raise FactsError(f"Unknown fact source {source!r}. Use one of {', '.join(SOURCES)} or the path of a JSON "
                         "file in ROME's known_1000 schema.")
    facts = read_facts_file(path)
    if len(facts) == KNOWN_1000_RECORDS and facts_fingerprint(facts) != KNOWN_1000_FINGERPRINT:
        log.warning("%s has %d records like ROME's known_1000.json but a different content fingerprint (%s, "
                    "expected %s)", path, len(facts), facts_fingerprint(facts), KNOWN_1000_FINGERPRINT)
    return facts


def save_facts(facts: Sequence[Fact], path: str | os.PathLike[str]) -> None:
    """Write facts as a known_1000-schema JSON list (UTF-8, one record per block, stable key order)."""
    Path(path).write_text(json.dumps([f.to_dict() for f in facts], indent=2, ensure_ascii=False) + "\n",
                          encoding="utf-8")
