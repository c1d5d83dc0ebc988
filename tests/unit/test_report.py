import io
import time

from migrate_wrapper.events import RunInfo, StepInfo
from migrate_wrapper.output.report import ConsoleListener


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_info() -> RunInfo:
    return RunInfo(command="apply", component="operational", direction="up", dry_run=False, environment="dev",
                   database="postgres://u:***@h:5432/d", server_address="h", db_namespace="d", window_seconds=600)


def test_live_line_on_a_terminal_shows_the_step_elapsed_and_time_left():
    out = Terminal()
    console = ConsoleListener(out)
    run = run_info()
    step = StepInfo(id="202601010000_a", version=202601010000, direction="up")
    console.step_started(run, step)
    time.sleep(1.2)
    console.step_finished(run, StepInfo(id=step.id, version=step.version, direction="up", duration_ms=1200.0))
    text = out.getvalue()
    assert "\r\033[K  applying 202601010000_a …" in text
    assert "left in the window" in text
    assert text.rstrip().endswith("applied 202601010000_a (1.20s)")


def test_no_live_line_off_a_terminal():
    out = io.StringIO()
    console = ConsoleListener(out)
    run = run_info()
    step = StepInfo(id="202601010000_a", version=202601010000, direction="up")
    console.step_started(run, step)
    time.sleep(0.7)
    console.step_finished(run, StepInfo(id=step.id, version=step.version, direction="up", duration_ms=5.0))
    assert out.getvalue() == "  applied 202601010000_a (5.0ms)\n"
