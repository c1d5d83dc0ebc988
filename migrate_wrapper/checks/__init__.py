"""Pre- and post-checks: real SQL against the real server, each returning a CheckResult."""
