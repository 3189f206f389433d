"""Query, path and header parameters shared by the routers."""
from typing import Annotated

from fastapi import Header, Path, Query

from ..models import MAX_INT
from ..pathids import pattern

Limit = Annotated[int, Query(ge=1, le=200, description="At most 200.")]
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
                                              description="Repeat with the same key and body within 24 h: "
                                                          "the first answer, nothing created again.")]
Label = Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
WorkflowId = Annotated[str, Path(pattern=pattern("wf_id"))]
TemplateId = Annotated[str, Path(pattern=pattern("tpl_id"))]
KeyId = Annotated[str, Path(pattern=pattern("key_id"))]
Version = Annotated[int, Path(ge=1, le=MAX_INT)]
RunId = Annotated[str, Path(pattern=pattern("run_id"))]
ScheduleId = Annotated[str, Path(pattern=pattern("sched_id"))]

# time travel (SPEC §8): the state right after the event with this global seq
AsOf = Annotated[int | None, Query(ge=1, le=MAX_INT, description="answer as of this event seq (time travel)")]
