"""The routing service: FastAPI app, operator page, feedback store (``chuishao serve``)."""
