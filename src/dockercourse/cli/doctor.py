"""``dockercourse doctor``: can this machine run the course? And if not, the fix."""

from __future__ import annotations

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
    p.set_defaults(run=run)


def run(args) -> int:
    from dockercourse.core.doctor import diagnose

    findings = diagnose()
    width = max(len(f.topic) for f in findings)
    for f in findings:
        mark = "ok " if f.ok else ("ERR" if f.fatal else "!! ")
        print(f"[{mark}] {f.topic.ljust(width)}  {f.detail}")
        if f.fix and not f.ok:
            for line in f.fix.splitlines():
                print(" " * (width + 8) + line)
    if any(f.fatal for f in findings):
        print("\nThe course cannot run yet: fix the ERR lines above.")
        return 1
    warn = [f for f in findings if not f.ok]
    print("\nThe course can run." + (f" {len(warn)} warning(s) above." if warn else ""))
    return 0
