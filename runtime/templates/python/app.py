"""{{name}}: the component's exports for the `pipeline-worker` world in ./wit.

Results: return a JSON string. Errors: raise componentize_py_types.Err(<job-error>);
any other exception escaping an export traps the instance. Files named by
`x-alephauto-path` parameters are readable with plain `open()` at the same path.
"""

import json

from componentize_py_types import Err

from wit_world import exports
from wit_world.imports import host, types

import hello

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "default": "world", "description": "Who to greet."},
        "times": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1, "description": "How many times."},
    },
}


class Worker(exports.Worker):
    def describe(self) -> types.WorkerInfo:
        return types.WorkerInfo(
            id="{{name}}",
            version="0.1.0",
            name="{{name}}",
            description="Says hello (scaffolded by alephauto new-worker).",
            params_schema=json.dumps(SCHEMA),
            git_workflow=None,
        )

    def init(self, config: str) -> None:
        pass

    def run(self, job: types.Job) -> str:
        try:
            params = json.loads(job.params)
            host.log(host.LogLevel.INFO, f"greeting {params.get('name')}", json.dumps({"jobId": job.id}))
            lines = hello.greet(params, host.progress)
            return json.dumps({"greeting": lines[0], "lines": lines, "jobId": job.id})
        except hello.InvalidInput as e:
            raise Err(types.JobError_InvalidInput(types.FieldError(field=e.field, message=e.message)))
        except Exception as e:
            raise Err(types.JobError_Failed(f"{type(e).__name__}: {e}"))

    def shutdown(self) -> None:
        pass
