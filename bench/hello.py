"""The hello floor: a bare FastAPI app answering a 3-key dict, the unit of per-request CPU.

`uvicorn bench.hello:app`, started by bench/run.py beside the service with the same server
flags. A route's cost in "hello units" is its server CPU per request over this app's, same run.
"""

from fastapi import FastAPI

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/")
async def hello() -> dict[str, str]:
    return {"message": "hello", "service": "bench", "status": "ok"}
