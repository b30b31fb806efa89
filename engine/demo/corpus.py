"""The demo's two bodies of English prose, read at run time from the Python standard library.

* ``pretrain_text()``: docstrings (and comment blocks) of standard-library modules,
  classes and functions. Pure-Python modules are read as source text -- nothing is
  imported or executed, so no module can print, open a window or touch the network;
  the docstrings of the built-in C modules are read from the imported modules
  (GUI, terminal, audio and test modules excepted).
* ``finetune_text()``: the Language Reference topics in ``pydoc_data.topics`` (the
  text behind ``help('if')`` etc.). This is the demo fine-tuning corpus.

The two do not overlap: ``pydoc_data`` (and anything else that carries the Language
Reference) is excluded from the pretraining text. No torch import here.
"""

from __future__ import annotations

import functools
import gzip
import importlib
import inspect
import re
import sys
import sysconfig
import warnings
from pathlib import Path

__all__ = ["pretrain_text", "pretrain_source", "finetune_text", "finetune_source"]

# Top-level stdlib packages / modules that are skipped entirely: tests, GUIs, jokes,
# vendored third-party code, and pydoc_data (that is the fine-tuning text).
_SKIP_TOP = {
    "test",
    "tests",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "this",
    "antigravity",
    "pydoc_data",
    "lib2to3",
    "ensurepip",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "__phello__",
    "config",  # lib/pythonX.Y/config-X.Y-...: build files, no prose
}
_SKIP_PARTS = {"test", "tests", "__pycache__", "idle_test", "site-packages", "dist-packages"}

_DOCTEST = re.compile(r"^\s*(>>>|\.\.\.( |$))")
_WORD = re.compile(r"[A-Za-z]{2,}")
# A triple-quoted string that starts a line: module/class/function docstrings (and the
# occasional bare string statement). A regex is ~25x faster than ast.parse over the
# whole stdlib, and the prose filter below drops the rare code template it catches.
_DOCSTRING = re.compile(r"^[ \t]*[rRuU]?(\"\"\"|\'\'\')(.*?)\1", re.S | re.M)
_COMMENT_BLOCK = re.compile(r"(?:^[ \t]*#[^\n]*\n)+", re.M)
_COMMENT_MARK = re.compile(r"^\s*#+:? ?")

# C modules whose docstrings are included (imported; all of them are side-effect free).
# Skipped: test/example modules, GUI/terminal/audio modules.
_SKIP_C = ("_test", "xx", "_xx", "_tkinter", "_ctypes_test", "readline", "_curses", "ossaudiodev")


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _source_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        parts = rel.parts
        top = parts[0][:-3] if len(parts) == 1 else parts[0]
        if top in _SKIP_TOP or top.startswith(("config-", "test_")):
            continue
        if any(p in _SKIP_PARTS or p.startswith("test_") for p in parts[:-1]):
            continue
        if parts[-1].startswith("test_"):
            continue
        files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _prose_line(line: str) -> bool:
    """True for a line that reads like English rather than code."""
    s = line.strip()
    if not s:
        return True  # keep paragraph breaks
    if _DOCTEST.match(s) or s.startswith(("--", "==", "**", "-*-", "!")):
        return False
    letters = sum(c.isalpha() or c == " " for c in s)
    if letters < 0.7 * len(s):
        return False
    return len(_WORD.findall(s)) >= 2 or len(s) < 20


def _clean(doc: str) -> str:
    lines = [ln.rstrip() for ln in doc.splitlines() if _prose_line(ln)]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _python_docs(source: str) -> list[str]:
    """Docstrings, then comment blocks, of one source file."""
    out = [inspect.cleandoc(m.group(2)) for m in _DOCSTRING.finditer(source)]
    for m in _COMMENT_BLOCK.finditer(source):
        lines = [_COMMENT_MARK.sub("", ln) for ln in m.group(0).splitlines()]
        out.append("\n".join(lines).strip())
    return out


def _c_module_names(root: Path) -> list[str]:
    names = set(sys.builtin_module_names)
    dyn = root / "lib-dynload"
    if dyn.is_dir():
        names.update(p.name.split(".")[0] for p in dyn.iterdir() if p.name.endswith(".so"))
    return sorted(n for n in names if not n.startswith(_SKIP_C))


def _c_docs(name: str) -> list[str]:
    """Docstrings of a C module, its classes/functions and their methods."""
    try:
        with warnings.catch_warnings():  # e.g. "'audioop' is deprecated"
            warnings.simplefilter("ignore")
            module = importlib.import_module(name)
    except Exception:
        return []
    out: list[str] = []

    def visit(obj: object, depth: int) -> None:
        doc = getattr(obj, "__doc__", None)
        if isinstance(doc, str):
            # Argument Clinic signatures: "name(args)\n--\n\n" before the prose.
            doc = doc.split("\n--\n\n", 1)[-1]
            out.append(inspect.cleandoc(doc))
        if depth >= 2:
            return
        try:
            items = sorted(vars(obj).items())
        except TypeError:
            return
        for key, value in items:
            if key.startswith("__"):
                continue
            if isinstance(value, type) or callable(value):
                visit(value, depth + 1)

    visit(module, 0)
    return out


@functools.lru_cache(maxsize=1)
def _pretrain() -> tuple[str, int, int]:
    root = _stdlib_dir()
    seen: set[str] = set()
    chunks: list[str] = []
    used = 0

    def take(docs: list[str]) -> None:
        nonlocal used
        took = False
        for doc in docs:
            text = _clean(doc)
            if len(text) < 40 or len(_WORD.findall(text)) < 6 or text in seen:
                continue
            seen.add(text)
            chunks.append(text)
            took = True
        used += took

    for path in _source_files(root):
        try:
            take(_python_docs(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    for name in _c_module_names(root):
        take(_c_docs(name))
    return "\n\n".join(chunks) + "\n", used, len(chunks)


def pretrain_text() -> str:
    """Docstrings of the standard library (deterministic order, deduplicated)."""
    return _pretrain()[0]


def pretrain_source() -> str:
    text, files, docs = _pretrain()
    v = sys.version_info
    return (
        f"Python {v.major}.{v.minor} standard-library docstrings "
        f"({docs} docstrings and comment blocks from {files} modules)"
    )


def _topics() -> dict[str, str]:
    from pydoc_data.topics import topics

    return topics


FINETUNE_FILE = Path(__file__).with_name("finetune.txt.gz")


def topics_text() -> str:
    """The running Python's Language Reference topics (``pydoc_data.topics``), sorted by key: how
    ``finetune.txt.gz`` was made (``python -m tools.build_demo --write-finetune-text``)."""
    topics = _topics()
    return "\n\n".join(topics[k].strip() for k in sorted(topics)) + "\n"


def finetune_text() -> str:
    """The demo fine-tuning text: Python 3.11's Language Reference topics, shipped in the package so
    the demo and its recorded runs are the same on every Python (each version's pydoc_data differs)."""
    return _read_gz(FINETUNE_FILE)


def write_finetune_text(text: str) -> None:
    _write_gz(FINETUNE_FILE, text)


def _read_gz(path: Path) -> str:
    return gzip.decompress(path.read_bytes()).decode("utf-8")


def _write_gz(path: Path, text: str) -> None:
    """Store a shipped text reproducibly (gzip without a time stamp: the same text gives the same bytes)."""
    with open(path, "wb") as f, gzip.GzipFile(path.stem, "wb", 9, f, mtime=0) as g:
        g.write(text.encode("utf-8"))


def finetune_source() -> str:
    return "Python 3.11 Language Reference (pydoc_data.topics, 79 topics; shipped as engine/demo/finetune.txt.gz)"


# The retain set: the tail of the pretraining text that the demo's build held out (its last
# `val_fraction` of tokens were never trained on; see tools/build_demo.py, heldout_pretrain_text).
RETAIN_FILE = Path(__file__).with_name("retain.txt.gz")


def retain_text() -> str:
    """The demo's default retain set (see RETAIN-NOTICE.md)."""
    return _read_gz(RETAIN_FILE)


def write_retain_text(text: str) -> None:
    _write_gz(RETAIN_FILE, text)


def retain_source() -> str:
    return "Python 3.11 stdlib docstrings held out of the demo's pretraining (retain.txt.gz)"
