"""The public data API for science: published stacks of every user, by sky tile.

Paths, parameters and replies of the later original server (``clients.md``), used by
the ``crowdsky-client`` SDK: ``frames_by_healpix``, ``download_frame``,
``frame_stars`` with ``Authorization: Bearer`` (a user API key ``csk_...`` or the
configured service key ``CROWDSKY_DATA_API_KEY``), and ``sky_coverage`` without
authentication. Private stacks are answered like unknown ids (404) and never counted.
Rows never carry a site: a stack's location lives only in its FITS file, removed
there by ``scrub_location``.
"""

from __future__ import annotations

import hmac
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from crowdsky import stacks
from crowdsky.accounts import UserInfo
from crowdsky.server import stack_files
from crowdsky.server.auth import bearer_token
from crowdsky.server.deps import DbSession, State
from crowdsky.server.errors import BadRequest
from crowdsky.server.routes import php_paths
from crowdsky.server.schemas.worker_api import ErrorResponse
from crowdsky.server.user_auth import require_user

router = APIRouter(tags=["data API"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed query"},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    404: {"model": ErrorResponse, "description": "No such published stack, or no file"},
}
MAX_STACK_ID = 2**63 - 1
#: Longest ``id=`` list text accepted (200 ids of 19 digits and commas).
MAX_ID_LIST_CHARS = 4000
STAR_COLUMNS = ("x", "y", "flux", "a", "b", "flag", "peak", "ra", "dec")
FilterName = Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[\x21-\x7e]+$")]


async def require_data_reader(request: Request) -> UserInfo | None:
    """Dependency: the service key (``None``), or a user's API key / login (the user)."""
    key = bearer_token(request)
    shared = request.app.state.crowdsky.settings.data_api_key
    if (
        key is not None
        and shared is not None
        and hmac.compare_digest(key.encode("utf-8"), shared.get_secret_value().encode("utf-8"))
    ):
        return None
    return await require_user(request)


DataReader = Annotated[UserInfo | None, Depends(require_data_reader)]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _download_url(request: Request, stack_id: int) -> str:
    # the first route of that name is the .php path (add_php_route registers it first)
    return str(request.url_for("download_frame").include_query_params(id=stack_id))


def tile_query(
    healpix: Annotated[int, Query(description="NSIDE 128 RING pixel, 0-196607")],
    start: Annotated[datetime | None, Query(description="date_obs_start >= (UTC)")] = None,
    end: Annotated[datetime | None, Query(description="date_obs_start <= (UTC)")] = None,
    filter: Annotated[FilterName | None, Query(description="IRCUT or LP")] = None,
    eq_mode: Annotated[int | None, Query(ge=0, le=1)] = None,
    min_sqm: Annotated[float | None, Query(ge=-100, le=100)] = None,
    min_exptime: Annotated[float | None, Query(ge=0, le=1e9)] = None,
) -> stacks.TileQuery:
    """Dependency: the query parameters of a tile search, as one record."""
    return stacks.TileQuery(
        healpix=healpix,
        start=_utc(start),
        end=_utc(end),
        filter_name=filter,
        eq_mode=eq_mode,
        min_sqm=min_sqm,
        min_exptime=min_exptime,
    )


TileSearch = Annotated[stacks.TileQuery, Depends(tile_query)]


def frames_by_healpix(
    request: Request, session: DbSession, _reader: DataReader, query: TileSearch
) -> list[dict[str, Any]]:
    """Published stacks of every user in one tile, ordered by ``date_obs_start``;
    ``start``/``end`` are inclusive bounds, ``[]`` when nothing matches.

    Example: ``curl -H 'Authorization: Bearer csk_...'
    'https://HOST/api/frames_by_healpix.php?healpix=6252&filter=LP&min_exptime=300'`` →
    ``[{"id": 7, "object_name": "M 81", "ra_deg": 148.97, ..., "download_url":
    "https://HOST/api/download_frame.php?id=7"}]``
    """
    return [
        {
            "id": r.id,
            "object_name": r.object_name,
            "ra_deg": r.ra_deg,
            "dec_deg": r.dec_deg,
            "filter_name": r.filter_name,
            "total_exptime": r.total_exptime,
            "eq_mode": r.eq_mode,
            "sqm": r.sqm,
            "n_frames_input": r.n_frames_input,
            "n_frames_aligned": r.n_frames_aligned,
            "n_stars_detected": r.n_stars_detected,
            "date_obs_start": _iso(r.date_obs_start),
            "date_obs_end": _iso(r.date_obs_end),
            "chunk_key": r.chunk_key,
            "healpix": r.healpix,
            "download_url": _download_url(request, r.id),
        }
        for r in stacks.frames_by_healpix(session, query)
    ]


def _parse_ids(text: str) -> list[int]:
    if len(text) > MAX_ID_LIST_CHARS:
        raise BadRequest(f"id: at most {stacks.MAX_IDS_PER_REQUEST} ids per request")
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= MAX_STACK_ID:
            raise BadRequest(f"id: {part[:24]!r} is not a stack id")
        ids.append(int(part))
    return ids


def download_frame(
    request: Request,
    state: State,
    session: DbSession,
    _reader: DataReader,
    id: Annotated[str, Query(min_length=1, description="A stack id, or ids N,M,...")],
    format: Annotated[
        Literal["fits", "cube", "tiff"],
        Query(description="One id: fits (the product), cube (RGB FITS cube) or tiff"),
    ] = "fits",
) -> Response:
    """One id: the stack streamed (``application/fits``; ``format=cube|tiff`` for an
    interchange copy; from an S3 result store possibly a 307 to a presigned GET).
    Several: a JSON list of ``{id, chunk_key, object_name, filename, file_size_bytes,
    download_url}`` (at most 200 ids; any unknown or private id is a 404 naming it).

    Example: ``curl -H 'Authorization: Bearer csk_...'
    'https://HOST/api/download_frame.php?id=7,9'``
    """
    ids = _parse_ids(id)
    records = stacks.get_published_stacks(session, ids)
    if len(ids) == 1:
        (record,) = records
        return stack_files.send_download(state, record.ucloud_path, format, may_redirect=True)
    if format != "fits":
        raise BadRequest("format: only for a single id")
    return JSONResponse(
        [
            {
                "id": r.id,
                "chunk_key": r.chunk_key,
                "object_name": r.object_name,
                "filename": stack_files.file_name(r.ucloud_path),
                "file_size_bytes": r.file_size_bytes,
                "download_url": _download_url(request, r.id),
            }
            for r in records
        ]
    )


def frame_stars(
    state: State,
    session: DbSession,
    _reader: DataReader,
    id: Annotated[int, Query(ge=1, le=MAX_STACK_ID, description="Stack id")],
) -> dict[str, Any]:
    """The stars detected on a stack (its STAR-TAB): ``{width, height, stars}``;
    404 when the stack has no star table.

    Example: ``curl -H 'Authorization: Bearer csk_...'
    'https://HOST/api/frame_stars.php?id=7'`` → ``{"width": 1080, "height": 1920,
    "stars": [{"x": 12.3, "y": 45.6, "flux": 1234.5, "a": 1.2, "b": 1.1, "flag": 0,
    "peak": 310.0, "ra": null, "dec": null}]}``
    """
    (record,) = stacks.get_published_stacks(session, [id])
    return read_star_table(io.BytesIO(stack_files.read_result(state, record.ucloud_path)))


def read_star_table(path: Any) -> dict[str, Any]:
    """``{width, height, stars: [{x, y, flux, a, b, flag, peak, ra, dec}]}`` of a stack.

    Raises
    ------
    StackFileMissing
        When the file has no STAR-TAB extension.
    """
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        if "STAR-TAB" not in hdul:
            raise stacks.StackFileMissing("this stack has no star table")
        image = next((h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2), None)
        width = int(image.header["NAXIS1"]) if image is not None else None
        height = int(image.header["NAXIS2"]) if image is not None else None
        table = hdul["STAR-TAB"].data
        names = {n.lower(): n for n in (table.columns.names if table is not None else [])}
        columns: dict[str, list[Any]] = {}
        count = 0 if table is None else len(table)
        for name in STAR_COLUMNS:
            source = names.get(name)
            if source is None:
                columns[name] = [None] * count
                continue
            values = np.asarray(table[source])
            if name == "flag":
                columns[name] = [int(v) for v in values]
            else:
                columns[name] = [float(v) if np.isfinite(v) else None for v in values]
    stars = [{name: columns[name][i] for name in STAR_COLUMNS} for i in range(count)]
    return {"width": width, "height": height, "stars": stars}


def sky_coverage(state: State) -> Response:
    """ECSV (``astropy.io.ascii.read(format="ecsv")``): one row per (tile, filter) of
    the published stacks, streamed from the kept coverage cells. No authentication.

    Example: ``astropy.io.ascii.read(requests.get(
    "https://HOST/api/sky_coverage.php").text, format="ecsv")``
    """
    lines = stacks.iter_coverage_lines(state.session_factory)
    return StreamingResponse(
        _ecsv(lines),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": 'inline; filename="sky_coverage.ecsv"'},
    )


def _ecsv(lines: Iterator[str]) -> Iterator[bytes]:
    yield ECSV_HEADER.encode("utf-8")
    for batch in lines:
        yield batch.encode("utf-8")


ECSV_HEADER = """# %ECSV 1.0
# ---
# datatype:
# - {name: healpix_ring, datatype: int64, description: NSIDE 128 RING pixel}
# - {name: filter_name, datatype: string}
# - {name: n_stacks, datatype: int64}
# - {name: total_exptime_s, datatype: float64, unit: s}
# - {name: n_observers, datatype: int64}
# - {name: first_obs, datatype: string, description: first date_obs_start (UTC ISO 8601)}
# - {name: last_obs, datatype: string, description: last date_obs_start (UTC ISO 8601)}
# meta: {nside: 128, ordering: RING}
# schema: astropy-2.0
healpix_ring filter_name n_stacks total_exptime_s n_observers first_obs last_obs
"""


#: What the non-JSON answers are, for the OpenAPI document.
FITS_OR_LIST = {
    200: {
        "description": "One id: the FITS file (or cube/TIFF); several: a JSON list of URLs",
        "content": {
            stack_files.FITS_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            "image/tiff": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {},
        },
    }
}
ECSV_REPLY = {
    200: {
        "description": "ECSV table",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
for _name, _handler, _replies in (
    ("frames_by_healpix", frames_by_healpix, {}),
    ("download_frame", download_frame, FITS_OR_LIST),
    ("frame_stars", frame_stars, {}),
    ("sky_coverage", sky_coverage, ECSV_REPLY),
):
    _documented: dict[int | str, dict[str, Any]] = {**ERRORS, **_replies}
    _kwargs: dict[str, Any] = {"methods": ["GET"], "responses": _documented}
    if _replies is ECSV_REPLY:
        _kwargs["response_class"] = PlainTextResponse
    php_paths.add_php_route(router, _name, _handler, **_kwargs)
