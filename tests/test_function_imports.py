"""An import inside a function says why it is not at the top (issue 27, part 6): `# lazy: <library>` where it keeps
a heavy or optional library (torch, transformers, matplotlib, scipy, numpy, ...) from loading with the module, or
`# cycle` where the two modules import each other. Any other import belongs at the top of its module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REASON = re.compile(r"#\s*(lazy: \S.*|cycle\b.*)")


def function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every import statement inside a function of `path` with no reason on it or the line above."""
    lines = path.read_text().splitlines()
    missing = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    here, above = lines[inner.lineno - 1], lines[inner.lineno - 2].strip()
                    if not REASON.search(here) and not (above.startswith("#") and REASON.search(above)):
                        missing.append((inner.lineno, here.strip()))
    return missing


def test_every_import_inside_a_function_gives_its_reason():
    files = sorted((REPO / "artifact").rglob("*.py")) + [REPO / "verify.py"]
    unexplained = {str(p.relative_to(REPO)): found for p in files if (found := function_imports(p))}
    assert not unexplained, ("imports inside functions without '# lazy: <library>' or '# cycle' (move them to the "
                             f"top of the module, or say why they stay): {unexplained}")


def test_the_rule_notices_an_unexplained_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import json\n\n\ndef g():\n    import torch  # lazy: torch\n"
                      "\n\ndef h():\n    # lazy: torch\n    from torch import (\n        nn,\n    )\n")
    assert function_imports(source) == [(2, "import json")]
