"""Loading the functions' entry points and invoking them the way Lambda does."""

from __future__ import annotations

import importlib.util
import itertools
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
_loaded = itertools.count()


def load_function(name: str) -> ModuleType:
    """Import `functions/<name>/app.py` as a fresh module, as a Lambda cold start would.

    The module reads its settings from the environment while it is imported.
    """
    path = FUNCTIONS_DIR / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"{name}_function_{next(_loaded)}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the {name} function from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LocalContext:
    """The parts of Lambda's context object that the handlers and Powertools read."""

    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))
