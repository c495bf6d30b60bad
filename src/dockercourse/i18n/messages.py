"""What the toolkit says to a learner, in the notebook's language: one message catalog per language.

The English stays where it is written, in the code, as plain strings and f-strings. A message that
reaches a learner goes through :func:`tr` when it is shown (``tr(f"there is no container named {full}")``);
a message made in one place and shown in another is marked with :func:`N_` where it is made (it stays
English in the results a grader stores) and translated where it is shown. The checks' own messages
(``checks/NN_slug.py``: an exercise's ``title=``, ``nudge=``, ``hint=``, the messages of ``ctx.require``
and ``NotYet``) need no marking: the checks are read as they are.

The catalog, ``i18n/<lang>/messages.yml``, maps each English *template* to its translation::

    - en: there is no container named {1}
      zh: 没有名为 {1} 的容器

A template is the English message with ``{1}``, ``{2}``, … where the source's f-string has a replacement
field (a literal brace is written ``{{`` / ``}}``). :func:`tr` finds the template whose English matches the
whole message and fills the translation with the same values; a message no template matches is shown as it
is (English). The templates come from the source itself (:func:`extract`): ``dockercourse i18n check``
reports a template with no translation and a translation whose template is gone, and ``dockercourse i18n
extract`` adds the new ones with an empty translation.

The language: ``setup("02", lang="zh")``; else ``DOCKERCOURSE_LANG``; else the notebook's folder (a kernel
runs in its notebook's folder: ``notebooks/zh/``, or ``student/zh/`` of a class released in Chinese); else
English.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from dockercourse import config
from dockercourse.errors import CourseError

DEFAULT = "en"

#: the language chosen by setup(lang=...) or set_language(); None: not chosen (see language())
_chosen: str | None = None


def _known() -> tuple[str, ...]:
    from dockercourse.i18n import LANGUAGES

    return (DEFAULT, *LANGUAGES)


def normalise(lang: str | None) -> str | None:
    """``"zh"``, ``"zh_CN.UTF-8"``, ``"zh-Hans"`` -> ``"zh"``; ``"en_GB"`` -> ``"en"``; nothing: None."""
    if not lang:
        return None
    return re.split(r"[-_.@]", lang.strip().lower(), maxsplit=1)[0] or None


def set_language(lang: str | None) -> str:
    """Choose the language for this process (``None``: back to the environment's); the one now in use.

    Raises:
        CourseError: a language the course has no catalog for (one line naming those it has)."""
    global _chosen
    code = normalise(lang)
    if code is not None and code not in _known():
        raise CourseError(
            f"The course has no {lang!r} edition; it has: {', '.join(_known())} "
            f"(setup(..., lang='zh') or DOCKERCOURSE_LANG=zh)."
        )
    _chosen = code
    return language()


def language(cwd: Path | None = None) -> str:
    """The language learner-facing text is shown in (see the module's text for the order)."""
    if _chosen:
        return _chosen
    env = normalise(config.get("DOCKERCOURSE_LANG"))
    if env in _known():
        return env
    for where in (os.environ.get("JPY_SESSION_NAME"), str(cwd or Path.cwd())):
        folder = Path(where).parent.name if where and where.endswith(".ipynb") else Path(where or "").name
        if folder in _known():
            return folder
    return DEFAULT


#: how a language lists things ("4 containers, 2 images"; 4 个容器、2 个镜像)
_LIST_SEPARATORS = {"zh": "、"}


def join(items, lang: str | None = None) -> str:
    """``items`` as a list in a sentence of the current language."""
    return _LIST_SEPARATORS.get(lang or language(), ", ").join(items)


def N_(text: str) -> str:
    """Marks an English message for the catalog, to be translated where it is shown; returns it as it is."""
    return text


@dataclass(frozen=True)
class _Template:
    en: str
    regex: re.Pattern
    text: str  # the translation
    weight: int  # how much literal text the template has: the most specific one wins
    needle: str  # its longest literal part: a message without it is not tried (cheap, and no backtracking)


_FIELD = re.compile(r"\{(\d+)\}")


def _literal(part: str) -> str:
    return part.replace("{{", "{").replace("}}", "}")


def compile_template(en: str) -> re.Pattern:
    """The regular expression matching every message the English template ``en`` can produce."""
    parts = _FIELD.split(en)  # literal, field number, literal, ...
    pattern = "".join(re.escape(_literal(p)) if i % 2 == 0 else f"(?P<f{p}>.*?)" for i, p in enumerate(parts))
    return re.compile(pattern, re.S)


@lru_cache(maxsize=8)
def _catalog(lang: str, root: str) -> tuple[_Template, ...]:
    path = Path(root) / "i18n" / lang / "messages.yml"
    if not path.is_file():
        return ()
    rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    out = []
    for row in rows:
        en, text = row.get("en") or "", row.get(lang) or ""
        if not en or not text:
            continue
        weight = len(_FIELD.sub("", en))
        needle = max((_literal(p) for p in _FIELD.split(en)[::2]), key=len)
        out.append(_Template(en, compile_template(en), text, weight, needle))
    return tuple(sorted(out, key=lambda t: -t.weight))


def _root() -> str:
    """The course folder, whose ``i18n/`` has the catalogs: as the checks find it, else the checkout this
    package lives in (``dockercourse doctor`` run from any folder)."""
    from dockercourse.checks.loader import course_root

    try:
        return str(course_root())
    except FileNotFoundError:
        return str(Path(__file__).resolve().parents[3])


def tr(message: str, lang: str | None = None) -> str:
    """``message`` (English, as the code made it) in ``lang`` (default: :func:`language`)."""
    lang = lang or language()
    if lang == DEFAULT or not message:
        return message
    try:
        templates = _catalog(lang, _root())
    except (OSError, yaml.YAMLError, FileNotFoundError):
        return message
    for t in templates:
        if t.needle not in message:
            continue
        m = t.regex.fullmatch(message)
        if m:
            return _fill(t.text, m.groupdict())
    return message


def _fill(text: str, values: dict[str, str]) -> str:
    """A translation with its ``{n}`` fields filled (``{{``/``}}``: literal braces)."""
    parts = re.split(r"(\{\{|\}\}|\{\d+\})", text)
    out = []
    for p in parts:
        if p in ("{{", "}}"):
            out.append(p[0])
        elif _FIELD.fullmatch(p):
            out.append(values.get(f"f{p[1:-1]}", p))
        else:
            out.append(p)
    return "".join(out)


# --- the templates in the source -------------------------------------------------------------------------

#: calls whose first argument is a learner-facing message (by the called name or method)
_MESSAGE_CALLS = {"tr", "N_", "NotYet", "require", "figure_text"}
#: an exercise's texts
_EXERCISE_KEYWORDS = ("title", "nudge", "hint")


def template_of(node: ast.AST) -> str | None:
    """The template of a string constant or f-string node (None for anything else, or for a template with
    no words of its own, such as ``f"{e}"``: it would match every message)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value.replace("{", "{{").replace("}", "}}")
    elif isinstance(node, ast.JoinedStr):
        parts, n = [], 0
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value).replace("{", "{{").replace("}", "}}"))
            else:
                n += 1
                parts.append(f"{{{n}}}")
        text = "".join(parts)
    else:
        return None
    return text if re.search(r"[A-Za-z]{2}", _FIELD.sub("", text)) else None


def _called(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def templates_in(source: str, *, titles_only: bool = False) -> list[str]:
    """The message templates of one Python file, in the order they are written (``titles_only``: only the
    ``title=`` of a call, the title a notebook's code cell gives a figure)."""
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _called(node)
        args: list[ast.AST] = []
        if titles_only:
            args = [k.value for k in node.keywords if k.arg == "title"]
        elif name in _MESSAGE_CALLS:
            args = node.args[1:2] if name == "require" else node.args[:1]
        elif name == "exercise":
            args = [k.value for k in node.keywords if k.arg in _EXERCISE_KEYWORDS]
        for a in args:
            for cand in (a.body, a.orelse) if isinstance(a, ast.IfExp) else (a,):  # "x" if c else "y"
                t = template_of(cand)
                if t:
                    found.append((cand.lineno, cand.col_offset, t))
    out: list[str] = []
    for _, _, t in sorted(found):
        if t not in out:
            out.append(t)
    return out


def source_files(root: Path) -> list[Path]:
    """Where the templates are: the toolkit's modules and the chapters' checks."""
    return sorted((root / "src" / "dockercourse").rglob("*.py")) + sorted((root / "checks").glob("*.py"))


def notebook_titles(path: Path) -> list[str]:
    """The figure titles a master notebook's code cells give (``title=...``); shell and magic lines are
    left out, a cell Python cannot read is skipped."""
    import nbformat

    out: list[str] = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in cell.source.splitlines())
        try:
            out += [t for t in templates_in(code, titles_only=True) if t not in out]
        except SyntaxError:
            continue
    return out


def extract(root: Path) -> list[str]:
    """Every template of the course: the toolkit's and the checks' messages, the notebooks' figure titles."""
    out: list[str] = []
    for path in source_files(root):
        for t in templates_in(path.read_text(encoding="utf-8")):
            if t not in out:
                out.append(t)
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        out += [t for t in notebook_titles(path) if t not in out]
    return out


def catalog_path(root: Path, lang: str) -> Path:
    return root / "i18n" / lang / "messages.yml"


def load_rows(root: Path, lang: str) -> list[dict]:
    path = catalog_path(root, lang)
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or []) if path.is_file() else []


def check(root: Path, lang: str) -> list[str]:
    """Problems: a template with no translation, a translation of a template the source no longer has, a
    translation whose ``{n}`` fields are not the template's."""
    rows = load_rows(root, lang)
    have = {r.get("en"): r.get(lang) or "" for r in rows}
    rel = catalog_path(root, lang).relative_to(root)
    problems = []
    for t in extract(root):
        if not have.get(t):
            problems.append(f"{rel}: no translation of the message {t!r}")
    wanted = set(extract(root))
    for en, text in have.items():
        if en not in wanted:
            problems.append(f"{rel}: the message {en!r} is no longer in the source (remove its entry)")
        elif text and sorted(set(_FIELD.findall(text))) != sorted(set(_FIELD.findall(en))):
            problems.append(f"{rel}: the translation of {en!r} does not have the same {{n}} fields")
    return problems


def write_extracted(root: Path, lang: str) -> tuple[Path, int, int]:
    """Bring the catalog in line with the source: new templates get an empty translation, templates the
    source no longer has are dropped; (path, added, dropped)."""
    rows = {r["en"]: r.get(lang) or "" for r in load_rows(root, lang) if r.get("en")}
    templates = extract(root)
    added = sum(t not in rows for t in templates)
    dropped = sum(en not in templates for en in rows)
    out = [{"en": t, lang: rows.get(t, "")} for t in templates]
    path = catalog_path(root, lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = (
        "# The toolkit's learner-facing messages, English template -> translation (i18n.messages).\n"
        "# {1}, {2}, ... stand for the values the message shows; keep them all in the translation.\n"
    )
    body = yaml.safe_dump(out, allow_unicode=True, sort_keys=False, width=1000)
    path.write_text(head + body, encoding="utf-8")
    _catalog.cache_clear()
    return path, added, dropped
