"""Run operations: cancel, resume, delete (SPEC §5)."""
from fastapi import APIRouter

router = APIRouter(prefix="/api/workflows", tags=["runs"])
