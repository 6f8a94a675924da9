"""Settings per process, composed from shared groups; see `processes` for who reads what.

Each process builds only its own class, once, at its edge (`get_api_settings()`, ...) and passes
it in. No other module reads the environment, and nothing here connects to anything.
"""

from backend.settings.base import SettingsBase, child_environment
from backend.settings.groups import (
    DEFAULT_SOURCES,
    DEFAULT_SYMBOLS,
    AlertSettings,
    ApiKeySettings,
    BusSettings,
    DeploySettings,
    FeedSettings,
    IngestAuthSettings,
    LoggingSettings,
    MetricsAccessSettings,
    StorageSettings,
    ViewSettings,
)
from backend.settings.processes import (
    ApiSettings,
    FeederBenchSettings,
    FeederSettings,
    GatewaySettings,
    LauncherSettings,
    Settings,
    UiSettings,
    WorkerSettings,
    get_api_settings,
    get_feeder_bench_settings,
    get_feeder_settings,
    get_gateway_settings,
    get_settings,
    get_ui_settings,
    get_worker_settings,
)

__all__ = [
    "DEFAULT_SOURCES",
    "DEFAULT_SYMBOLS",
    "AlertSettings",
    "ApiKeySettings",
    "ApiSettings",
    "BusSettings",
    "DeploySettings",
    "FeedSettings",
    "FeederBenchSettings",
    "FeederSettings",
    "GatewaySettings",
    "IngestAuthSettings",
    "LauncherSettings",
    "LoggingSettings",
    "MetricsAccessSettings",
    "Settings",
    "SettingsBase",
    "StorageSettings",
    "UiSettings",
    "ViewSettings",
    "WorkerSettings",
    "child_environment",
    "get_api_settings",
    "get_feeder_bench_settings",
    "get_feeder_settings",
    "get_gateway_settings",
    "get_settings",
    "get_ui_settings",
    "get_worker_settings",
]
