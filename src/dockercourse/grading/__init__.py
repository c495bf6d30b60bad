"""Release (student copies) and grading (submissions run cell by cell, checks run by the grader).

    release     student copies of the master notebooks, their stale check, lint of the masters
    submission  reading submissions, student ids, a batch's chapter, check points by exercise id
    execute     one submission cell by cell with nbclient (timeouts, kernel death), checks from the grader
    namespaces  the grader's engine client; cleaning a submission's namespace, sweeping a batch
    batch       grade_folder: the worker pool, crash triage, resume/force, the VM-engine workers
    results     ExerciseGrade, SubmissionGrade, BatchReport, statuses
    report      grades.csv, feedback/<student>.html (templates/feedback.html.j2), results/<student>.json

The notebook format they rely on is :mod:`dockercourse.core.notebooks`; the commands are
:mod:`dockercourse.cli.release` and :mod:`dockercourse.cli.grade`.
"""
