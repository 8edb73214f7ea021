"""Settings are read once at start, and a value that does not parse stops the start."""

import os
import subprocess
import sys

import pytest

from connector.config import ConfigError, Settings
from tests.support.servers import ROOT


@pytest.mark.parametrize(
    "raw, expected",
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("False", False)]
    + [("no", False), ("off", False), ("", False)],
)
def test_boolean_settings_take_the_documented_words(raw, expected):
    assert Settings.from_env({"INSTAMSG_SANDBOX": raw}).sandbox is expected


@pytest.mark.parametrize("raw", ["ture", "2", "enabled", "y e s"])
def test_a_boolean_setting_that_does_not_parse_names_the_variable_and_the_words(raw):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"INSTAMSG_SANDBOX": raw})
    message = str(caught.value)
    assert message.startswith("INSTAMSG_SANDBOX must be one of 1, true, yes, on (on)")
    assert "0, false, no, off (off)" in message


@pytest.mark.parametrize(
    "name, raw, says",
    [
        ("INSTAMSG_READ_TIMEOUT", "30s", "INSTAMSG_READ_TIMEOUT must be a number, not '30s'"),
        ("MAX_REQUEST_BYTES", "16MB", "MAX_REQUEST_BYTES must be a whole number, not '16MB'"),
        ("INSTAMSG_RETRIES", "-1", "INSTAMSG_RETRIES must be 0 or more"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must start with redis://, rediss:// or"),
        ("INSTAMSG_API_URL", "api.instamsg.io", "INSTAMSG_API_URL must start with http://"),
    ],
)
def test_other_settings_that_do_not_parse_are_named(name, raw, says):
    with pytest.raises(ConfigError, match="^" + says.replace("(", r"\(").replace(".", r"\.")):
        Settings.from_env({name: raw})


def test_redis_settings_are_read():
    settings = Settings.from_env({"REDIS_URL": "redis://:pw@127.0.0.1:6390/2"})
    assert settings.redis_url == "redis://:pw@127.0.0.1:6390/2"
    assert settings.redis_prefix == "instamsg-connector:"


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import app; app.serve()"],  # what gunicorn calls
        [sys.executable, "-m", "flask", "--app", "app", "blocks", "list"],
    ],
    ids=["server", "cli"],
)
def test_a_typo_in_a_setting_stops_the_process_with_a_message_and_no_traceback(tmp_path, command):
    env = {**os.environ, "INSTAMSG_SANDBOX": "ture", "INSTAMSG_DATA_DIR": str(tmp_path)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "INSTAMSG_SANDBOX must be one of" in done.stderr
    assert "Traceback" not in done.stderr


def test_importing_app_builds_nothing(tmp_path):
    """gunicorn and Flask's CLI call the factory; importing the module starts no engine."""
    done = subprocess.run(
        [sys.executable, "-c", "import app; print(hasattr(app, 'app'))"],
        cwd=ROOT,
        env={**os.environ, "INSTAMSG_SANDBOX": "ture", "INSTAMSG_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "False", "")
    assert not list(tmp_path.iterdir())
