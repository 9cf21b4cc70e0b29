import pytest
from pydantic import ValidationError

from activities.settings import describe_validation_error
from api.settings import ApiSettings
from worker.settings import WorkerSettings


def test_defaults_point_at_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DESKPOOL_TEMPORAL_ADDRESS", "DESKPOOL_DATABASE_URL", "DESKPOOL_TASK_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    settings = WorkerSettings()
    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.task_queue == "deskpool"


def test_environment_with_prefix_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKPOOL_TASK_QUEUE", "pools-eu")
    monkeypatch.setenv("DESKPOOL_API_PORT", "9001")
    settings = ApiSettings()
    assert settings.task_queue == "pools-eu"
    assert settings.api_port == 9001


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("DESKPOOL_TEMPORAL_ADDRESS", "localhost", "host:port"),
        ("DESKPOOL_TEMPORAL_ADDRESS", "localhost:99999", "host:port"),
        ("DESKPOOL_DATABASE_URL", "mysql://x@y/z", "sqlite:// or postgresql://"),
        ("DESKPOOL_DATABASE_URL", "not a url", "not a database URL"),
        ("DESKPOOL_TASK_QUEUE", "  ", "must not be empty"),
        ("DESKPOOL_API_PORT", "0", "greater than or equal to 1"),
    ],
)
def test_bad_values_are_named_with_the_rule(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, rule: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        ApiSettings()
    message = describe_validation_error(caught.value)
    assert variable in message
    assert rule in message


def test_loader_exits_with_readable_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import load_worker_settings

    monkeypatch.setenv("DESKPOOL_TEMPORAL_ADDRESS", "nope")
    with pytest.raises(SystemExit) as caught:
        load_worker_settings()
    assert "DESKPOOL_TEMPORAL_ADDRESS" in str(caught.value.code)


def test_worker_applies_the_configured_cloud_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.main import cloud_activities

    monkeypatch.setenv("DESKPOOL_CLOUD_MAX_CONCURRENT_BUILDS", "7")
    monkeypatch.setenv("DESKPOOL_CLOUD_MAX_CONCURRENT_DELETES", "3")
    monkeypatch.setenv("DESKPOOL_SECRET_KEY", "k")
    activities = cloud_activities(WorkerSettings())
    assert activities.limits._sizes == {"build": 7, "delete": 3}
    assert activities._agent_key == b"k"
