"""``dockercourse i18n``: the course's translations (catalogs in ``i18n/<lang>/``, notebooks in
``notebooks/<lang>/``; see docs/i18n.md)."""

from __future__ import annotations

from dockercourse.cli._args import chapter
from dockercourse.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "i18n",
        help="check and build the translated notebooks",
        description=(
            "The English notebooks are the source; a language's text lives in one catalog per chapter "
            "(i18n/LANG/NN_slug.yml), keyed by cell id with the hash of the English it translates. "
            "`check` names every cell whose translation is missing or stale, `build` writes "
            "notebooks/LANG/ and lessons/LANG/, `extract` adds the entries a chapter's catalogs lack. "
            "The toolkit's own messages (setup, checks, errors) are in i18n/LANG/messages.yml."
        ),
    )
    isub = p.add_subparsers(dest="action", metavar="check|build|extract", required=True)
    for action, text in (
        ("check", "report missing and stale translations, and translated notebooks out of date (exit 1)"),
        ("build", "write notebooks/LANG/NN_slug.ipynb and lessons/LANG/NN_slug.md from the catalogs"),
        (
            "extract",
            "refresh the toolkit's message catalog and (given a chapter) that chapter's catalogs: "
            "new messages, cells and sections get an empty entry",
        ),
    ):
        a = isub.add_parser(action, help=text, description=text)
        a.add_argument("--lang", default="zh", help="the language (default: zh)")
        if action == "extract":
            a.add_argument("chapter", nargs="?", type=chapter, help="the chapter (e.g. 02)")
        elif action == "build":
            a.add_argument("chapters", nargs="*", type=chapter, help="only these chapters")
        a.set_defaults(run=run)


def run(args) -> int:
    from dockercourse.checks.loader import course_root
    from dockercourse.i18n import LANGUAGES, lessons, messages
    from dockercourse.i18n import notebooks as tr

    if args.lang not in LANGUAGES:
        raise UsageError(f"no catalogs for language {args.lang!r}; the course has: {', '.join(LANGUAGES)}")
    root = course_root()
    if args.action == "extract":
        path, added, dropped = messages.write_extracted(root, args.lang)
        print(
            f"{path.relative_to(root)}: {added} new message(s) to translate"
            + (f", {dropped} the source no longer has removed" if dropped else "")
        )
        for part in (tr, lessons) if args.chapter else ():
            path, added, dropped = part.extract(root, args.lang, args.chapter)
            print(
                f"{path.relative_to(root)}: {added} new entr{'y' if added == 1 else 'ies'} to translate"
                + (f", {dropped} the English no longer has removed" if dropped else "")
            )
        return 0
    if args.action == "build":
        for part in (tr, lessons):
            for out in part.build(root, args.lang, list(args.chapters) or None):
                print(f"wrote {out.relative_to(root)}")
        return 0
    problems = messages.check(root, args.lang)
    for p in problems:
        print(p)
    for what, part in (("notebook", tr), ("lesson", lessons)):
        found, untranslated = part.check(root, args.lang)
        problems += found
        for p in found:
            print(p)
        if untranslated:
            print(f"chapters with no {args.lang} {what} catalog yet: {', '.join(untranslated)}")
    current = f"{args.lang}: every catalog, notebook, lesson and message is current"
    print(f"{len(problems)} problem(s)" if problems else current)
    return 1 if problems else 0
