"""Test support code: generators of fixtures in the exact formats of the real artifacts (tokenizers, checkpoints)."""
