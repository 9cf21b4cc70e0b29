"""`python -m api`: serve the API with uvicorn on the configured address."""

import uvicorn

from api.main import create_app
from api.settings import load_api_settings

settings = load_api_settings()
uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")
