"""Request types for endpoints (FastAPI's, re-exported so apps import from tideflow)."""

from fastapi import File, Form, Query, Request, UploadFile

__all__ = ["File", "Form", "Query", "Request", "UploadFile"]
