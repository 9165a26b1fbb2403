#!/usr/bin/env python3
"""One torch for two virtual environments: MeloTTS's venv uses the artifact's torch instead of a copy of its own.

    ARTIFACT_VENV/bin/python scripts/share_torch.py --lock requirements-melotts.lock --out REST.lock --shared DIR

Run by the artifact venv's Python (scripts/install_melotts.sh --torch-from does). The torch set of the lock (torch,
torchaudio, triton and the nvidia-* packages: about 5 GB with the CUDA wheels) is not installed a second time:
- each of them that the running venv has must be the version the lock pins (else exit 1, naming the difference:
  the locks must be recompiled together, scripts/compile_locks.sh);
- DIR gets a symbolic link to every top-level file or folder of those distributions (their RECORD), dist-info
  included, so that a .pth file naming DIR makes them importable, with their metadata, in the other venv; DIR is
  outside that venv's site-packages, so uv never sees them there (and never uninstalls the artifact's copies);
- REST.lock is the lock without the torch set, for `uv pip sync --require-hashes`. A package of the set that the
  running venv lacks (the CPU image leaves triton and three nvidia-* packages out) is left out of both.
Prints one line naming what was linked and what was left out.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import re
import sys
from pathlib import Path

SHARED = re.compile(r"(torch|torchaudio|triton|nvidia-[a-z0-9-]+)==(\S+)\s")


def lock_blocks(text: str) -> list[str]:
    """The requirement blocks of a uv-compiled lock (a pin line with its hash and comment lines), header first."""
    return re.split(r"\n(?=[a-z0-9])", text.rstrip("\n") + "\n")


def shared_pins(blocks: list[str]) -> dict[str, str]:
    """{name: version} of the torch set pinned in the lock."""
    return {m.group(1): m.group(2) for block in blocks if (m := SHARED.match(block))}


def top_levels(dist: metadata.Distribution) -> list[str]:
    """The first path components of a distribution's installed files (console scripts in ../bin left out)."""
    return sorted({Path(f).parts[0] for f in dist.files or [] if Path(f).parts[0] != ".."})


def share(lock: Path, out: Path, shared: Path) -> tuple[list[str], list[str]]:
    """Write `out` (the lock without the torch set) and the links in `shared`; (linked, left out) as name==version.
    ValueError naming every version that differs between the lock and this venv."""
    blocks = lock_blocks(lock.read_text())
    pins = shared_pins(blocks)
    found: dict[str, metadata.Distribution] = {}
    for name in pins:
        try:
            found[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
    wrong = [f"{name} {dist.version} here, {pins[name]} in {lock.name}" for name, dist in found.items()
             if dist.version != pins[name]]
    if wrong:
        raise ValueError(f"the torch set differs: {'; '.join(wrong)}. Recompile the locks together "
                         "(scripts/compile_locks.sh)")
    shared.mkdir(parents=True, exist_ok=True)
    for dist in found.values():
        site = Path(str(dist.locate_file("")))
        for top in top_levels(dist):
            link = shared / top
            if not os.path.lexists(link):
                link.symlink_to(site / top)
    rest = [block for block in blocks if not ((m := SHARED.match(block)) and m.group(1) in pins)]
    out.write_text("\n".join(rest))
    linked = [f"{name}=={found[name].version}" for name in sorted(found)]
    return linked, [f"{name}=={pins[name]}" for name in sorted(set(pins) - set(found))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, required=True, help="MeloTTS's lock (requirements-melotts.lock)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the lock without the torch set")
    parser.add_argument("--shared", type=Path, required=True, help="folder for the links (outside site-packages)")
    args = parser.parse_args(argv)
    try:
        linked, left_out = share(args.lock, args.out, args.shared)
    except ValueError as exc:
        print(f"share_torch: error: {exc}", file=sys.stderr)
        return 1
    print(f"linked from {sys.prefix}: {', '.join(linked) or 'nothing'}; left out (not in {sys.prefix}): "
          f"{', '.join(left_out) or 'nothing'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
