"""Fact sets: known_1000 fingerprint (cache, download stand-in), record validation, the project's own fact set."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from artifact import facts as facts_module
from artifact.facts import (
    KNOWN_1000_FINGERPRINT,
    OWN_FACTS_PATH,
    Fact,
    FactsError,
    FingerprintMismatchError,
    facts_fingerprint,
    load_facts,
    parse_facts,
)

GOOD = {
    "known_id": 7,
    "subject": "Vinson Massif",
    "attribute": "Antarctica",
    "template": "{} is located in the continent",
    "prediction": "",
    "prompt": "Vinson Massif is located in the continent of",
    "relation_id": "P30",
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTIFACT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data" / "known_1000.json"


def test_known_1000_fingerprint_matches_the_brief(known_1000_path):
    raw = json.loads(known_1000_path.read_text(encoding="utf-8"))
    facts = load_facts(known_1000_path)
    assert len(facts) == 1209
    assert facts_fingerprint(facts) == KNOWN_1000_FINGERPRINT
    assert [f.to_dict() for f in facts] == raw  # records as stored: keys and value types unchanged
    assert facts[0] == Fact(0, "Vinson Massif", "Antarctica", "{} is located in the continent",
                            " Antarctica. It is the largest of the three",
                            "Vinson Massif is located in the continent of", "P30")


def test_known_1000_download_once_then_cache(known_1000_path, cache, monkeypatch):
    monkeypatch.setattr(facts_module, "KNOWN_1000_URL", known_1000_path.as_uri())  # file:// stand-in, no network
    facts = load_facts("known_1000")
    assert cache.is_file() and len(facts) == 1209
    # Second load reads the cache: the URL is no longer reachable and not needed.
    monkeypatch.setattr(facts_module, "KNOWN_1000_URL", (cache.parent / "absent.json").as_uri())
    assert load_facts("known_1000") == facts


def test_known_1000_download_modified_record_is_refused(known_1000_path, cache, monkeypatch, tmp_path):
    records = json.loads(known_1000_path.read_text(encoding="utf-8"))
    records[3]["attribute"] = "NBC"
    served = tmp_path / "served.json"
    served.write_text(json.dumps(records), encoding="utf-8")
    monkeypatch.setattr(facts_module, "KNOWN_1000_URL", served.as_uri())
    with pytest.raises(FingerprintMismatchError) as info:
        load_facts("known_1000")
    message = str(info.value)
    assert KNOWN_1000_FINGERPRINT in message
    assert info.value.actual in message and info.value.actual != KNOWN_1000_FINGERPRINT
    assert not cache.exists()  # nothing cached from a bad download


def test_known_1000_corrupt_cache_is_refused(known_1000_path, cache):
    records = json.loads(known_1000_path.read_text(encoding="utf-8"))
    records[0]["known_id"] = 5000
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(FingerprintMismatchError, match=f"(?s){KNOWN_1000_FINGERPRINT}.*delete"):
        load_facts("known_1000")


def test_known_1000_unreachable_names_the_fix(cache, monkeypatch, tmp_path):
    """Nowhere and no network: the message names the three ways out."""
    monkeypatch.delenv("ARTIFACT_FACTS_DIR", raising=False)
    monkeypatch.setattr(facts_module, "KNOWN_1000_URL", (tmp_path / "nowhere.json").as_uri())
    with pytest.raises(RuntimeError, match="--facts PATH") as info:
        load_facts("known_1000")
    assert "ARTIFACT_FACTS_DIR=DIR" in str(info.value) and "network" in str(info.value)


def _no_network(monkeypatch):
    """Any download attempt fails, as with `docker run --network none`."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in this test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_known_1000_from_the_facts_dir_without_network(known_1000_path, cache, monkeypatch, tmp_path):
    """$ARTIFACT_FACTS_DIR/known_1000.json (the image's copy) is used before the cache and any download."""
    import shutil

    _no_network(monkeypatch)
    folder = tmp_path / "image-data"
    folder.mkdir()
    shutil.copy(known_1000_path, folder / "known_1000.json")
    monkeypatch.setenv("ARTIFACT_FACTS_DIR", str(folder))
    facts = load_facts("known_1000")
    assert len(facts) == 1209 and facts_fingerprint(facts) == KNOWN_1000_FINGERPRINT
    assert not cache.exists()  # read in place: nothing downloaded or copied
    monkeypatch.setenv("ARTIFACT_FACTS_DIR", str(tmp_path / "empty"))  # a folder without it: cache, then network
    with pytest.raises(RuntimeError, match="ARTIFACT_FACTS_DIR"):
        load_facts("known_1000")


def test_known_1000_in_the_facts_dir_is_fingerprint_checked(known_1000_path, cache, monkeypatch, tmp_path):
    _no_network(monkeypatch)
    records = json.loads(known_1000_path.read_text(encoding="utf-8"))
    records[1]["attribute"] = "Mars"
    (tmp_path / "known_1000.json").write_text(json.dumps(records), encoding="utf-8")
    monkeypatch.setenv("ARTIFACT_FACTS_DIR", str(tmp_path))
    with pytest.raises(FingerprintMismatchError, match=f"(?s){tmp_path / 'known_1000.json'}.*ARTIFACT_FACTS_DIR"):
        load_facts("known_1000")


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda r: r.pop("attribute"), "missing field.*attribute"),
        (lambda r: r.update(known_id="7"), "'known_id' is str"),
        (lambda r: r.update(known_id=True), "'known_id' is bool"),
        (lambda r: r.update(prediction=None), "'prediction' is NoneType"),
        (lambda r: r.update(subject="Vinson massif"), "does not occur in prompt"),
        (lambda r: r.update(prompt=r["prompt"] + " "), "ends in whitespace"),
        (lambda r: r.update(attribute="  "), "'attribute' is empty"),
        (lambda r: r.update(template="{} lies in"), "does not start with the template"),
        (lambda r: r.update(template="is located in"), "exactly once"),
    ],
)
def test_bad_record_is_named(change, expected):
    other = dict(GOOD, known_id=3)
    bad = dict(GOOD)
    change(bad)
    with pytest.raises(FactsError, match=f"record 1 \\(known_id {bad.get('known_id', '?')}\\): .*{expected}"):
        parse_facts([other, bad], "test.json")


def test_duplicate_ids_and_non_records_are_named(tmp_path):
    with pytest.raises(FactsError, match="record 1 \\(known_id 7\\): known_id 7 duplicates record 0"):
        parse_facts([GOOD, dict(GOOD)])
    with pytest.raises(FactsError, match="record 0 \\(known_id \\?\\): it is a str"):
        parse_facts(["Vinson Massif"])
    with pytest.raises(FactsError, match="list of records"):
        parse_facts({"0": GOOD})
    path = tmp_path / "facts.json"
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(FactsError, match="not valid JSON"):
        load_facts(path)
    with pytest.raises(FactsError, match="Unknown fact source 'known1000'"):
        load_facts("known1000")


def test_fact_file_round_trip(tmp_path):
    path = tmp_path / "facts.json"
    facts = parse_facts([GOOD, dict(GOOD, known_id=8)])
    facts_module.save_facts(facts, path)
    assert load_facts(str(path)) == facts
    assert facts_fingerprint(facts) != facts_fingerprint(facts[:1])


def test_own_fact_set():
    raw = json.loads(OWN_FACTS_PATH.read_text(encoding="utf-8"))
    facts = load_facts("own")
    assert len(facts) >= 150
    relations = Counter(f.relation_id for f in facts)
    assert len(relations) >= 10, relations
    assert max(relations.values()) <= len(facts) // 4, relations  # varied: no relation dominates
    assert [f.to_dict() for f in facts] == raw
    for fact in facts:
        assert fact.prompt == fact.template.format(fact.subject), fact
        assert fact.relation_id.startswith("P") and fact.relation_id[1:].isdigit(), fact
    assert len({(f.subject, f.relation_id) for f in facts}) == len(facts)  # no fact twice
    assert len({f.prompt for f in facts}) == len(facts)
