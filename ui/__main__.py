"""`python -m ui [Streamlit options]`: the analyst web app (`streamlit run ui/app.py`).

The Procfile's `ui` entry point: the UI process's edge, where its logging is set up before
Streamlit starts, then Streamlit's own CLI runs the app with the options given.
"""

from __future__ import annotations

import sys
from pathlib import Path

from backend.logs import configure_logging, route_streamlit_logs
from backend.settings import get_ui_settings
from backend.settings.production import enforce_deploy_policy

APP = Path(__file__).resolve().parent / "app.py"


def main(argv: list[str] | None = None) -> int:
    options = sys.argv[1:] if argv is None else argv
    settings = get_ui_settings()
    configure_logging(settings, service="ui")
    route_streamlit_logs()  # Streamlit's own loggers and console messages: JSON lines too
    route_streamlit_logs()  # Streamlit's own loggers: JSON through our handler too
    enforce_deploy_policy(settings, "ui")
    from streamlit.web import cli as streamlit_cli

    sys.argv = ["streamlit", "run", str(APP), *options]
    return int(streamlit_cli.main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
