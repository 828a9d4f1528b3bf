"""The service's endpoints, one APIRouter per group; create_app (serve/app.py) includes them."""
