"""The routing service: FastAPI app, operator page, feedback store (``whistle serve``)."""
