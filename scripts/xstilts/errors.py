"""Errors that rule jobs report in one line (no traceback), in a module of their own.

Every rule job's wrapper (``pipeline.run_rule``) catches these, so the code fingerprint of every
rule reaches this module: keeping them here, not in ``training.py``, means an edit of the
training code re-runs training, not the tables.
"""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the job and the likely causes."""
