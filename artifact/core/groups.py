"""ROME's six token groups of a traced prompt, and representative positions for affordable (speech) traces."""

from __future__ import annotations

from typing import Literal

PositionPolicy = Literal["all"] | str  # "all" or "representatives:K"


def token_groups(n_tokens: int, subject_range: tuple[int, int],
                 last_position: int | None = None) -> dict[str, list[int]]:
    """Token positions of ROME's six groups in a prompt of `n_tokens` tokens with subject tokens [b, e).

    As ROME's `average_causal_effects` notebook, with every edge case made explicit:

    - first_subject = [b]; last_subject = [e - 1]. A one-token subject has first = last = [b].
    - middle_subject = b+1 .. e-2; empty for subjects of one or two tokens.
    - last = [last_position] (default n_tokens - 1): where the answer is read (T->T: the final prompt token;
      S->T: the [Text] marker).
    - first_subsequent = [e] when e <= last_position. When the subject ends right before the last token (e == last),
      the first subsequent token IS the last token and belongs to both groups (ROME does the same). When the subject
      reaches the last token (e > last), it is empty.
    - further = e+1 .. last-1; empty when fewer than two tokens follow the subject.
    - Tokens before the subject (BOS, "The", ...) belong to no group: restoring them cannot change the output.

    A group's effect for one fact is the mean over its positions (NaN-mean, so untraced positions are skipped); an
    empty group gives NaN and the fact is left out of that group's average.
    """
    b, e = int(subject_range[0]), int(subject_range[1])
    last = n_tokens - 1 if last_position is None else int(last_position)
    if not (0 <= b < e <= n_tokens):
        raise ValueError(f"subject_range {subject_range} must satisfy 0 <= b < e <= n_tokens ({n_tokens}).")
    if not 0 <= last < n_tokens:
        raise ValueError(f"last_position {last_position} is outside the prompt's {n_tokens} tokens.")
    return {
        "first_subject": [b],
        "middle_subject": list(range(b + 1, e - 1)),
        "last_subject": [e - 1],
        "first_subsequent": [e] if e <= last else [],
        "further": list(range(e + 1, last)),
        "last": [last],
    }


def _spread(positions: list[int], k: int) -> list[int]:
    """Up to `k` positions evenly spread over `positions` (all of them when there are at most k)."""
    if len(positions) <= k:
        return list(positions)
    if k <= 0:
        return []
    if k == 1:
        return [positions[len(positions) // 2]]
    step = (len(positions) - 1) / (k - 1)
    return sorted({positions[round(i * step)] for i in range(k)})


def parse_position_policy(policy: str) -> int | None:
    """'all' -> None (trace every position); 'representatives:K' -> K (K >= 0). Anything else is an error."""
    if policy == "all":
        return None
    if policy.startswith("representatives:"):
        try:
            k = int(policy.split(":", 1)[1])
        except ValueError:
            k = -1
        if k >= 0:
            return k
    raise ValueError(f"positions must be 'all' or 'representatives:K' (K >= 0 middle/further tokens); got {policy!r}")


def representative_positions(
    n_tokens: int, subject_range: tuple[int, int], k: int, last_position: int | None = None
) -> tuple[int, ...]:
    """Positions that represent every group: first, last and up to k middle subject tokens, the first subsequent
    token, up to k further tokens, and the last token (sorted, unique). Other positions stay untraced (NaN)."""
    groups = token_groups(n_tokens, subject_range, last_position)
    chosen: set[int] = set()
    for name, positions in groups.items():
        chosen.update(_spread(positions, k) if name in ("middle_subject", "further") else positions)
    return tuple(sorted(chosen))


def positions_for(policy: str, n_tokens: int, subject_range: tuple[int, int],
                  last_position: int | None = None) -> tuple[int, ...] | None:
    """The positions a trace covers under a run's position policy (None = all, as TraceConfig expects)."""
    k = parse_position_policy(policy)
    if k is None:
        return None
    return representative_positions(n_tokens, subject_range, k, last_position)
