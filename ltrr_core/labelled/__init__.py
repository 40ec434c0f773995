"""Labelled queries and how they are graded, beneath both the learners and the evaluation:
``datasets`` (CPCD searches with liked tracks by split part, any CPCD-format file, BEIR folders)
and ``labels`` (the one grading rule: a liked track intended, its artist entity related)."""
