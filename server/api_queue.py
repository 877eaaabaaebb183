"""Queue and history routes: /prompt, /queue, /history, /jobs, /interrupt, /free."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from latentgraph.graph.problems import quoted

from . import store as st
from .collector import in_thread
from .errors import ApiError, read_json
from .jsontext import encode_json, object_text
from .messages import RunError, execution_error
from .prompts import PromptRejected, error_body
from .state import get_state


async def get_prompt(request: Request) -> JSONResponse:
    return JSONResponse({"exec_info": {"queue_remaining": get_state(request).store.count_queued()}})


async def post_prompt(request: Request) -> JSONResponse:
    state = get_state(request)
    try:  # the body is parsed on the submit thread
        answer, client_id = await state.enqueue_text(await request.body())
    except PromptRejected as exc:
        return JSONResponse(exc.body, status_code=400)
    except ApiError as exc:  # ComfyUI's refusal shape, `node_errors` too: clients read it
        body = error_body(exc.type, exc.message, **exc.extra)
        return JSONResponse(body, status_code=exc.status)
    # the run's messages go out only once this answer is on its way (Dispatcher.hold)
    return JSONResponse(answer, background=state.release_task(answer["prompt_id"], client_id))


# The most characters of /queue's answer written in one piece, unless one item is longer.
QUEUE_CHUNK_CHARS = 1024 * 1024


async def get_queue(request: Request) -> Response:
    """From memory, each item encoded once: no SQLite call and no JSON decoding on the loop.
    Every queued prompt is in it, in full, as ComfyUI's clients expect; the answer is streamed
    from the items' stored text (`_in_chunks`), never joined into one body: five queued
    50,000-node prompts made a 255 MB answer, held twice over (the text, then its bytes)."""
    store = get_state(request).store
    return StreamingResponse(_in_chunks(_queue_pieces(store.running(), store.pending())),
                             media_type="application/json")  # fmt: skip


def _queue_pieces(running: list[st.PromptRecord],
                  pending: list[st.PromptRecord]) -> Iterator[str]:  # fmt: skip
    """/queue's answer, `{"queue_running": [...], "queue_pending": [...]}`, piece by piece."""
    for i, (name, records) in enumerate((("queue_running", running), ("queue_pending", pending))):
        yield f'{"," if i else "{"}"{name}":['
        for j, record in enumerate(records):
            if j:
                yield ","
            yield record.queue_item_json()
        yield "]"
    yield "}"


async def _in_chunks(pieces: Iterable[str]) -> AsyncIterator[bytes]:
    """`pieces` as UTF-8, small ones gathered up to `QUEUE_CHUNK_CHARS`, a longer one alone:
    the answer's bytes are at most one item's at a time."""
    gathered: list[str] = []
    size = 0
    for piece in pieces:
        if size + len(piece) > QUEUE_CHUNK_CHARS and gathered:
            yield "".join(gathered).encode()
            gathered, size = [], 0
        if len(piece) > QUEUE_CHUNK_CHARS:
            yield piece.encode()
            continue
        gathered.append(piece)
        size += len(piece)
    if gathered:
        yield "".join(gathered).encode()


def _ids(body: dict[str, Any]) -> list[str]:
    ids = body.get("delete")
    if not isinstance(ids, list):
        raise ApiError(400, "'delete' must be a list of prompt ids")
    return [str(i) for i in ids]


async def _deleted(request: Request, delete: Callable[[list[str] | None], int]) -> int:
    """POST /queue's and /history's `{"clear": true}` and `{"delete": [ids]}`: how many
    `delete` removed. Off the event loop: deleting rows reads their pages, and the store gives
    their space back to the filesystem (`Store.delete_pending`, `Store.delete_history`)."""
    body = await read_json(request, default={})
    if not isinstance(body, dict):
        raise ApiError(400, "expected an object with 'clear' or 'delete'")
    n = 0
    if body.get("clear"):
        n += await in_thread(delete, None)
    if "delete" in body:
        n += await in_thread(delete, _ids(body))
    return n


async def post_queue(request: Request) -> JSONResponse:
    state = get_state(request)
    changed = await _deleted(request, state.store.delete_pending)
    if changed:
        state.hub.broadcast("status", state.dispatcher.status())
    return JSONResponse({"deleted": changed})


def _history_status(record: st.PromptRecord) -> dict[str, Any]:
    ok = record.status == st.SUCCESS
    return {"status_str": "success" if ok else "error", "completed": ok,
            "messages": record.messages}  # fmt: skip


def history_entry_json(record: st.PromptRecord) -> str:
    """A finished prompt's /history entry as JSON (its prompt's text as stored)."""
    meta = {nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
            for nid in record.outputs_seen.nodes}  # fmt: skip
    return object_text([("prompt", record.queue_item_json()), ("outputs", record.ui_json),
                        ("status", encode_json(_history_status(record))),
                        ("meta", encode_json(meta))])  # fmt: skip


def _history_answer(records: list[st.PromptRecord]) -> Response:
    return Response(object_text((r.id, history_entry_json(r)) for r in records),
                    media_type="application/json")  # fmt: skip


# Paging parameters stay far inside SQLite's 64-bit integers (offset + count is computed).
_MAX_PAGE_INT = 2**53 - 1


def _int_param(request: Request, name: str, default: int | None, lo: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw) if len(raw) <= 32 else None
    except ValueError:
        value = None
    if value is None:
        raise ApiError(400, f"query parameter {name!r} must be an integer, got {quoted(raw[:40])}")
    if not lo <= value <= _MAX_PAGE_INT:
        raise ApiError(400, f"query parameter {name!r} must be between {lo} and {_MAX_PAGE_INT}")
    return value


async def get_history(request: Request) -> Response:
    store = get_state(request).store
    max_items = _int_param(request, "max_items", None)
    # ComfyUI's paging: skip `offset` of the oldest; a negative one, the default, means the
    # newest `max_items`
    offset = _int_param(request, "offset", -1, lo=-_MAX_PAGE_INT)
    rows = store.recent_history(max_items, offset)
    if rows is None:  # older than memory holds: read SQLite off the event loop
        rows = await in_thread(store.history, max_items, offset)
    return _history_answer(rows)


async def get_history_one(request: Request) -> Response:
    record = get_state(request).store.get(request.path_params["prompt_id"])
    if record is None or record.status not in st.FINISHED:
        return JSONResponse({})
    return _history_answer([record])


async def post_history(request: Request) -> JSONResponse:
    return JSONResponse(
        {"deleted": await _deleted(request, get_state(request).store.delete_history)}
    )


# --- /jobs (the editor's queue and history panel) ----------------------------------------

_JOB_TO_ROW = {v: k for k, v in st.JOB_STATUS.items()}


def job_entry(record: st.PromptRecord) -> dict[str, Any]:
    seen = record.outputs_seen
    workflow = (record.extra_data.get("extra_pnginfo") or {}).get("workflow")
    job: dict[str, Any] = {
        "id": record.id,
        "status": st.JOB_STATUS.get(record.status, record.status),
        "priority": record.number,
        "create_time": record.created_ms,
        "execution_start_time": record.started_ms,
        "execution_end_time": record.finished_ms,
        "outputs_count": seen.count,
        "previewable_outputs_count": seen.images,
        "preview_output": seen.last_image,
        "workflow_id": workflow.get("id") if isinstance(workflow, dict) else None,
    }
    if record.status == st.ERROR:
        job["execution_error"] = job_error(record)
    return job


def job_error(record: st.PromptRecord) -> dict[str, Any]:
    """A failed prompt's `execution_error` as /jobs gives it: its history's, every field
    `execution_error` writes present and not null (the editor refuses the whole list over
    one entry whose `node_id` or `traceback` is missing or null, as older rows may hold),
    else one saying the prompt's error."""
    made = execution_error(record.id, RunError(record.error or "", ""), node_type="",
                           executed=[])  # fmt: skip
    kept = next((m[1] for m in record.messages if m[0] == "execution_error"), {})
    return {**made, **{k: v for k, v in kept.items() if v is not None}}


def full_job_json(record: st.PromptRecord) -> str:
    """/jobs/{id}: the entry with its outputs, workflow (the prompt's text as stored) and
    status."""
    workflow = object_text([("prompt", record.prompt_json),
                            ("extra_data", encode_json(record.extra_data))])  # fmt: skip
    members = [(k, encode_json(v)) for k, v in job_entry(record).items()]
    members += [("outputs", record.ui_json), ("workflow", workflow),
                ("execution_status", encode_json(_history_status(record)))]  # fmt: skip
    return object_text(members)


async def get_jobs(request: Request) -> JSONResponse:
    store = get_state(request).store
    wanted = [s.strip() for s in request.query_params.get("status", "").split(",") if s.strip()]
    unknown = [s for s in wanted if s not in _JOB_TO_ROW]
    if unknown:
        raise ApiError(400, f"unknown job status {quoted(unknown[0])}; expected one of "
                       f"{', '.join(_JOB_TO_ROW)}")  # fmt: skip
    limit = _int_param(request, "limit", 100) or 0
    limit = min(limit, 1000)
    offset = _int_param(request, "offset", 0) or 0
    newest_first = request.query_params.get("sort_order", "desc").lower() != "asc"
    rows, total = await in_thread(
        store.jobs, [_JOB_TO_ROW[s] for s in wanted] or None, limit, offset, newest_first
    )
    return JSONResponse({
        "jobs": [job_entry(r) for r in rows],
        "pagination": {"offset": offset, "limit": limit, "total": total,
                       "has_more": offset + len(rows) < total},
    })  # fmt: skip


async def get_job(request: Request) -> Response:
    record = get_state(request).store.get(request.path_params["job_id"])
    if record is None:
        raise ApiError(404, f"no job {quoted(request.path_params['job_id'])}", "not_found")
    return Response(full_job_json(record), media_type="application/json")


def _cancel(state, job_id: str) -> bool:
    """Cancel a job: drop it if pending, interrupt it if running. In the threadpool: a delete
    gives the space back (`Store.delete_pending`)."""
    if state.store.delete_pending([job_id]):
        return True
    return state.dispatcher.interrupt(job_id)


async def cancel_job(request: Request) -> JSONResponse:
    state = get_state(request)
    job_id = request.path_params["job_id"]
    if state.store.get(job_id) is None:
        raise ApiError(404, f"no job {quoted(job_id)}", "not_found")
    cancelled = await in_thread(_cancel, state, job_id)
    state.hub.broadcast("status", state.dispatcher.status())
    return JSONResponse({"cancelled": cancelled})


async def cancel_jobs(request: Request) -> JSONResponse:
    state = get_state(request)
    body = await read_json(request)
    ids = body.get("job_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list):
        raise ApiError(400, 'expected {"job_ids": [ids]}')
    cancelled = [str(i) for i in ids if await in_thread(_cancel, state, str(i))]
    state.hub.broadcast("status", state.dispatcher.status())
    return JSONResponse({"cancelled": cancelled})


async def post_interrupt(request: Request) -> JSONResponse:
    body = await read_json(request, default={})
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    interrupted = get_state(request).dispatcher.interrupt(str(prompt_id) if prompt_id else None)
    return JSONResponse({"interrupted": interrupted})


async def post_free(request: Request) -> JSONResponse:
    body = await read_json(request, default={})
    if not isinstance(body, dict):
        raise ApiError(400, "expected an object with 'unload_models' and/or 'free_memory'")
    get_state(request).dispatcher.request_free(
        bool(body.get("unload_models")), bool(body.get("free_memory"))
    )
    return JSONResponse({})


routes = [
    Route("/prompt", get_prompt, methods=["GET"]),
    Route("/prompt", post_prompt, methods=["POST"]),
    Route("/queue", get_queue, methods=["GET"]),
    Route("/queue", post_queue, methods=["POST"]),
    Route("/history", get_history, methods=["GET"]),
    Route("/history", post_history, methods=["POST"]),
    Route("/history/{prompt_id}", get_history_one, methods=["GET"]),
    Route("/jobs", get_jobs, methods=["GET"]),
    Route("/jobs/cancel", cancel_jobs, methods=["POST"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/interrupt", post_interrupt, methods=["POST"]),
    Route("/free", post_free, methods=["POST"]),
]
