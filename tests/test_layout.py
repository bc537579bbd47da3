"""The repository's shape: two wings over a shared core (the import rule, read from the
sources), links that resolve, and a repository that speaks of itself alone."""

from __future__ import annotations

import ast
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ssgan_jax"
CORE = ("core", "models", "data")


def _imports(path: pathlib.Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions, as dotted names
    (relative imports resolved against the package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _modules(folder: str) -> list[pathlib.Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_the_inference_wing_never_imports_the_training_wing():
    offenders = {str(p.relative_to(REPO)): sorted(m for m in _imports(p)
                                                   if m.startswith("ssgan_jax.training"))
                 for p in _modules("inference")}
    assert not {k: v for k, v in offenders.items() if v}, offenders
    assert len(_modules("inference")) >= 10  # the scan sees the wing


def test_the_core_imports_neither_wing():
    offenders = {}
    for folder in CORE:
        for p in _modules(folder):
            bad = sorted(m for m in _imports(p)
                         if m.startswith(("ssgan_jax.training", "ssgan_jax.inference")))
            if bad:
                offenders[str(p.relative_to(REPO))] = bad
    assert not offenders, offenders


def test_core_is_the_floor():
    """``core/`` (config defaults, errors, checkpoints, devices) imports no other folder of
    the package: datasets and networks build on it, never the other way round."""
    offenders = {}
    for p in _modules("core"):
        bad = sorted(m for m in _imports(p) if m.startswith("ssgan_jax.")
                     and not m.startswith("ssgan_jax.core"))
        if bad:
            offenders[str(p.relative_to(REPO))] = bad
    assert not offenders, offenders
    assert len(_modules("core")) >= 6  # the scan sees the folder


def test_the_dataset_is_prepared_and_opened_in_one_place():
    """Only ``data/__init__.py`` (``open_prepared``, ``prepare``) reaches the preparation
    module; everything else holds the opened dataset (``prepared.Prepared``), so following
    ``config`` through a run enters ``data/records.py`` once to open and once to prepare."""
    users = sorted(str(p.relative_to(REPO)) for p in _modules("")
                   if "ssgan_jax.data.records" in _imports(p))
    assert users == ["ssgan_jax/data/__init__.py"], users
    init = (PACKAGE / "data" / "__init__.py").read_text()
    assert "def open_prepared(" in init and "def prepare(" in init
    # the commands open it, once each, and pass it down: no helper opens it on its own
    def opens(path):
        return any(isinstance(n, ast.Call) and "open_prepared" in (
            getattr(n.func, "id", None), getattr(n.func, "attr", None))
            for n in ast.walk(ast.parse(path.read_text())))

    openers = sorted(str(p.relative_to(PACKAGE)) for p in _modules("") if opens(p))
    assert openers == ["inference/eval_checkpoint.py", "inference/export.py",
                       "inference/predict.py", "training/start.py"], openers


def test_the_loop_is_sequencing():
    """``training/loop.py`` sequences (resume, phases, cadence); what a run checks first, its
    networks and steps, batches and reports live in their own modules, so it stays short."""
    lines = len((PACKAGE / "training" / "loop.py").read_text().splitlines())
    assert lines < 250, f"training/loop.py has {lines} lines"
    loop_imports = _imports(PACKAGE / "training" / "loop.py")
    for owner in ("start", "experiment", "batches", "report"):
        assert f"ssgan_jax.training.{owner}" in loop_imports


def test_the_tests_mirror_the_package():
    """Each test module sits in the folder of what it tests (``tests/core``, ``training``,
    ``inference``, ``data``, ``models``, ``launch``; the package as a whole at the top), and
    none imports from another test module (shared helpers live in ``*_fixtures.py``)."""
    folders = {"core", "training", "inference", "data", "models", "launch"}
    tests = sorted((REPO / "tests").rglob("test_*.py"))
    misplaced = [str(p.relative_to(REPO)) for p in tests
                 if p.parent != REPO / "tests" and p.parent.name not in folders]
    assert len(tests) > 40 and not misplaced, misplaced
    for folder in folders:
        assert (REPO / "tests" / folder / "__init__.py").exists()
        assert (PACKAGE / folder).is_dir() or (REPO / folder).is_dir()
    crossing = {str(p.relative_to(REPO)): sorted(
        m for m in _imports(p) if m.startswith("tests.")
        and any(part.startswith("test_") for part in m.split(".")))
        for p in tests}
    assert not {k: v for k, v in crossing.items() if v}, crossing


def test_the_package_never_imports_scripts_or_tests():
    offenders = {str(p.relative_to(REPO)): sorted(m for m in _imports(p)
                                                   if m.split(".")[0] in ("launch", "tests"))
                 for p in PACKAGE.rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_scan_catches_a_crossing(tmp_path):
    """The rule's reader sees nested and relative imports (the test above could not fail
    otherwise)."""
    fake = REPO / "ssgan_jax" / "inference" / "_probe_for_the_layout_test.py"
    fake.write_text("def f():\n    from ..training import steps\n"
                    "    import ssgan_jax.training.loop\n")
    try:
        found = _imports(fake)
    finally:
        fake.unlink()
    assert "ssgan_jax.training.steps" in found and "ssgan_jax.training.loop" in found


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_every_relative_link_in_readme_and_docs_resolves():
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    broken, seen = [], 0
    for doc in docs:
        # RESULTS.md's header template is rendered into docs/RESULTS.md: links from there
        base = REPO / "docs" if doc.name == "RESULTS_header.md" else doc.parent
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor of the same page
            seen += 1
            if not (base / target.split("#")[0]).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert seen > 5 and not broken, broken
    assert (REPO / "docs" / "METHOD.md").exists()


CITED_PATH = re.compile(
    r"(?<![\w./<{-])((?:[a-z_][\w-]*/)+[\w-]+\.(?:py|md|sh|json|npz|txt|toml))\b")
CITED_MODULE = re.compile(r"python -m ((?:ssgan_jax|launch)(?:\.\w+)+)")
# what the texts name as examples or as files a run writes, not as files of the repository
NOT_REPOSITORY = ("runs/", "my_nets/", "my_losses/", "records/", "docs/results/gpu/")


def test_every_cited_module_and_path_exists():
    """Every ``python -m`` target and repository path that README, docs, the package's and
    the scripts' comments cite exists (a module renamed or moved leaves no stale name)."""
    texts = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")),
             *sorted(PACKAGE.rglob("*.py")), *sorted((REPO / "launch").rglob("*.py")),
             *sorted((REPO / "launch").rglob("*.sh")), *sorted((REPO / "configs").glob("*.py"))]
    stale, seen = [], 0
    for path in texts:
        text = path.read_text()
        for module in CITED_MODULE.findall(text):
            seen += 1
            parts = REPO.joinpath(*module.split("."))
            if not (parts.with_suffix(".py").exists() or (parts / "__init__.py").exists()):
                stale.append(f"{path.relative_to(REPO)}: python -m {module}")
        for cited in CITED_PATH.findall(text):
            if cited.startswith(NOT_REPOSITORY) or "X." in cited or "UNIT" in cited:
                continue
            seen += 1
            if not any((base / cited).exists()
                       for base in (REPO, PACKAGE, REPO / "docs", path.parent)):
                stale.append(f"{path.relative_to(REPO)}: {cited}")
    assert seen > 100 and not stale, stale


def test_no_project_history_in_code_or_docs():
    """Dates, versions and commits say when; not work periods or issue numbers."""
    pattern = re.compile(r"session [0-9]|issue [0-9]", re.I)
    hits = []
    for root in ("ssgan_jax", "configs", "launch", "docs", "tests"):
        for path in sorted((REPO / root).rglob("*")):
            if path.suffix in (".py", ".md", ".sh", ".txt") and path.is_file():
                hits += [f"{path.relative_to(REPO)}: {line.strip()}"
                         for line in path.read_text().splitlines() if pattern.search(line)]
    hits += [f"README.md: {line}" for line in (REPO / "README.md").read_text().splitlines()
             if pattern.search(line)]
    assert not hits, hits[:20]


def test_method_sections_cited_by_the_code_exist():
    """Every "METHOD.md section N" the code cites is a heading of docs/METHOD.md."""
    headings = set(re.findall(r"^## (\d+)\.", (REPO / "docs" / "METHOD.md").read_text(), re.M))
    cited = set()
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "configs").glob("*.py")]:
        for m in re.finditer(r"METHOD\.md,? sections? ([\d, and-]+)", path.read_text()):
            cited.update(re.findall(r"\d+", m.group(1)))
    assert cited and cited <= headings, (cited, headings)


def test_the_experiment_scripts_do_not_import_the_page_builder():
    """results_page imports the experiments for their sections; none imports it back (they
    rebuild the page in a child process, common.rebuild_page): no import circle."""
    import ast

    found = []
    for path in sorted((REPO / "launch" / "experiments").glob("*.py")):
        if path.name == "results_page.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.ImportFrom | ast.Import)
                     else [])
            module = getattr(node, "module", "") or ""
            if "results_page" in module or "results_page" in names:
                found.append(path.name)
    assert not found, found
