"""The local runner: one stage-command subprocess per stage, independent stages in parallel."""
