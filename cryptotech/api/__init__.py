"""The HTTP surface: REST (in Portuguese), SSE and the dashboard, on one FastAPI app."""
