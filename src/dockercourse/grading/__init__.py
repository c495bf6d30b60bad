"""Release (student copies) and grading (submissions run cell by cell, checks from the grader)."""
