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


def test_the_live_line_shows_the_position_and_a_ctrl_c_gets_its_own_line():
    stream = Terminal()
    console = ConsoleListener(stream)
    run = run_info()
    run.window_seconds = None
    console.run_started(run, ["1_a", "2_b", "3_c"])
    console.step_started(run, StepInfo("1_a", 1, "up"))
    console.step_finished(run, StepInfo("1_a", 1, "up", duration_ms=3.0))
    second = StepInfo("2_b", 2, "up")
    console.step_started(run, second)
    console._show(run, second, 1.5)  # what the ticker draws every half second
    assert stream.getvalue().endswith("\r\033[K  step 2/3: applying 2_b … 1.50s")
    console.note(run, "migration_stopping", "stopping after the running step; Ctrl-C again to cancel it")
    assert stream.getvalue().endswith("1.50s\r\033[Kstopping after the running step; Ctrl-C again to cancel it\n")
    console.run_finished(run, "interrupted", KeyboardInterrupt())


def test_colour_on_a_terminal_unless_no_color(monkeypatch):
    from migrate_wrapper.events import CheckResult

    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = Terminal()
    ConsoleListener(stream).check(run_info(), CheckResult("pre", "dirty", "fail", "dirty at 5"))
    assert "[\033[31mfail\033[0m] pre-check dirty: dirty at 5" in stream.getvalue()

    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    ConsoleListener(plain).check(run_info(), CheckResult("pre", "dirty", "fail", "dirty at 5"))
    assert "[fail] pre-check dirty: dirty at 5" in plain.getvalue() and "\033[" not in plain.getvalue()

    monkeypatch.delenv("NO_COLOR")
    piped = io.StringIO()  # not a terminal
    ConsoleListener(piped).check(run_info(), CheckResult("pre", "dirty", "ok", "clean"))
    assert "\033[" not in piped.getvalue()
