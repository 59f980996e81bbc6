"""Upload intake: FITS header validation, chunking into jobs, upload sessions."""

from __future__ import annotations

from crowdsky.ingest.chunking import (
    Chunk,
    ChunkPlan,
    FrameInfo,
    SkippedChunk,
    chunk_key,
    healpix_ring_pixel,
    plan_chunks,
)
from crowdsky.ingest.errors import (
    EmptySession,
    FileError,
    FileTooLarge,
    IllegalSessionMove,
    IngestError,
    InvalidFileName,
    InvalidFits,
    SessionClosed,
    SessionNotFound,
    TooManyOpenSessions,
)
from crowdsky.ingest.filenames import check_file_name
from crowdsky.ingest.finalize import (
    ChunkReport,
    FinalizeResult,
    SkippedReport,
    finalize_session,
)
from crowdsky.ingest.fits_headers import FrameHeader, read_frame_header
from crowdsky.ingest.scrub import scrub_site_location
from crowdsky.ingest.session_states import SessionStatus
from crowdsky.ingest.session_transitions import (
    ExpiredSessions,
    expire_idle_sessions,
    start_session,
)
from crowdsky.ingest.sessions import (
    FileStatus,
    IntakeSettings,
    ReceivedFile,
    SessionRef,
    SessionReport,
    open_session,
    receive_file,
    session_status,
)

__all__ = [
    "Chunk",
    "ChunkPlan",
    "ChunkReport",
    "EmptySession",
    "ExpiredSessions",
    "FileError",
    "FileStatus",
    "FileTooLarge",
    "FinalizeResult",
    "FrameHeader",
    "FrameInfo",
    "IllegalSessionMove",
    "IngestError",
    "IntakeSettings",
    "InvalidFileName",
    "InvalidFits",
    "ReceivedFile",
    "SessionClosed",
    "SessionNotFound",
    "SessionRef",
    "SessionReport",
    "SessionStatus",
    "SkippedChunk",
    "SkippedReport",
    "TooManyOpenSessions",
    "check_file_name",
    "chunk_key",
    "expire_idle_sessions",
    "finalize_session",
    "healpix_ring_pixel",
    "open_session",
    "plan_chunks",
    "read_frame_header",
    "receive_file",
    "scrub_site_location",
    "session_status",
    "start_session",
]
