"""Every test (and every process a test starts) times latency-table entries quickly and caches them in a
private folder: quick tables are for tests, never for the user's cache."""

import os
import tempfile

os.environ["TIGHTFIT_TIMING"] = "1:0"
os.environ["TIGHTFIT_CACHE"] = tempfile.mkdtemp(prefix="tightfit-tests-")
