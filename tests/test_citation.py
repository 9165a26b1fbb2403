"""LICENSE and CITATION.cff: present, and the citation file is valid YAML with CFF 1.2.0's required structure."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_license_is_mit_for_our_code() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 The authors of the artifact" in text


def test_citation_cff_structure() -> None:
    data = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert data["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):  # required by CFF 1.2.0
        assert data[key]
    assert data["type"] == "software" and data["license"] == "MIT"
    paper = data["preferred-citation"]
    assert paper["type"] == "conference-paper"
    assert [a["family-names"] for a in paper["authors"]] == ["Modica", "Landin", "Farahani", "Qian", "Skantze",
                                                             "Johansson"]
    assert paper["title"].startswith("Do Factual Recall Mechanisms Carry over from Text to Speech")
    assert (paper["year"], paper["start"], paper["end"]) == (2026, 401, 409)
    assert paper["conference"]["name"] == "*SEM 2026"
    assert {"type": "other", "value": "arXiv:2605.22170", "description": "arXiv identifier"} in paper["identifiers"]
    for entry in paper["identifiers"]:
        assert set(entry) <= {"type", "value", "description"} and entry["type"] in ("doi", "url", "swh", "other")
