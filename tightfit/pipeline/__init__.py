"""The pipeline: a run as a sequence of stages from constraints to a deployed, measured artifact."""

from tightfit.pipeline.config import RunConfig, resolve
from tightfit.pipeline.constraints import Constraints, constraints_from_text, parse_quantity
from tightfit.pipeline.run import RunResult, default_stages, latest_unfinished, new_run_dir, run
from tightfit.pipeline.stages import Candidate, RunContext, Stage, StageRecord

__all__ = ["Candidate", "Constraints", "RunConfig", "RunContext", "RunResult", "Stage", "StageRecord",
           "constraints_from_text", "default_stages", "latest_unfinished", "new_run_dir", "parse_quantity",
           "resolve", "run"]
