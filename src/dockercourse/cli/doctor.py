"""``dockercourse doctor``: can this machine run the course? And if not, the fix.

It speaks the course's language: ``--lang zh``, else ``DOCKERCOURSE_LANG``, else the folder it is run in
(``notebooks/zh``), else English (:func:`dockercourse.i18n.messages.language`).
"""

from __future__ import annotations

import unicodedata

HELP = "check the engine, images and machine; print fixes"


def register(sub) -> None:
    p = sub.add_parser(
        "doctor",
        help=HELP,
        description=(
            "Check the engine (kind, version, API, who started it), the storage driver, cgroups, free disk "
            "and the course images, and print the fix for each problem. Exits 1 when the course cannot run."
        ),
    )
    p.add_argument(
        "--lang",
        metavar="LANG",
        help="the language to answer in (en, zh; default: DOCKERCOURSE_LANG, else the folder's, else en)",
    )
    p.set_defaults(run=run)


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal (a Chinese character takes two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def run(args) -> int:
    from dockercourse.core.doctor import diagnose
    from dockercourse.i18n.messages import set_language, tr

    if getattr(args, "lang", None):
        set_language(args.lang)  # an unknown language: one line naming those the course has
    findings = diagnose()
    topics = [tr(f.topic) for f in findings]
    cols = max(map(width, topics))
    for f, topic in zip(findings, topics, strict=True):
        mark = "ok " if f.ok else ("ERR" if f.fatal else "!! ")
        print(f"[{mark}] {topic}{' ' * (cols - width(topic))}  {f.detail}")
        if f.fix and not f.ok:
            for line in f.fix.splitlines():
                print(" " * (cols + 8) + line)
    if any(f.fatal for f in findings):
        print("\n" + tr("The course cannot run yet: fix the ERR lines above."))
        return 1
    warn = [f for f in findings if not f.ok]
    print(
        "\n"
        + (tr(f"The course can run. {len(warn)} warning(s) above.") if warn else tr("The course can run."))
    )
    return 0
