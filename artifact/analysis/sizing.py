"""How many facts a profile needs so that each claim condition's CI is narrower than half its effect, from a finished
run's comparison: CI widths shrink as 1/sqrt(n), so a condition with CI width w around an effect v (measured from its
threshold: 0, or 1 for a ratio) at n0 facts needs n > n0 (2w/|v|)^2 facts."""

from __future__ import annotations

import math
from typing import Any

from artifact.analysis.claims import margin_of, requirement_of


def facts_needed(comparison: dict[str, Any], traced: int) -> list[dict[str, Any]]:
    """Per claim condition with a numeric threshold (layer bands are skipped): its value, CI width, effect, its margin
    (the one stored in comparison.json, claims.margin_of) and the facts needed for a CI narrower than half the effect
    (inf when the value sits on the threshold)."""
    rows = []
    for claim, doc in comparison.get("claims", {}).items():
        for condition in doc.get("conditions", []):
            parsed = requirement_of(condition)
            if parsed is None or parsed[0] == "within" or condition.get("ci_low") is None \
                    or condition.get("ci_high") is None:
                continue
            effect = abs(float(condition["value"]) - parsed[1][0])
            width = float(condition["ci_high"]) - float(condition["ci_low"])
            needed = traced * (2 * width / effect) ** 2 if effect > 0 else math.inf
            rows.append({"claim": claim, "kind": condition.get("kind"), "statistic": condition["statistic"],
                         "value": float(condition["value"]), "ci_width": width, "effect": effect,
                         "margin": margin_of(condition), "facts_needed": needed})
    return rows
