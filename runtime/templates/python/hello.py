"""{{name}}: the worker, on the AlephAuto Python SDK (alephauto_guest).

Parameters are a dataclass (the SDK derives the JSON Schema the host validates); ``run``
returns the job's result; raise ``JobError.invalid(field, message)`` for a bad parameter.
Files: ``ctx.fs.read_text(path)``, ``ctx.fs.write(path, data)``, ``ctx.fs.walk(root)`` (honours
.gitignore) on folders named by ``param(path="read" | "write")`` parameters.
"""

from dataclasses import dataclass

from alephauto_guest import Context, JobError, Worker, param


@dataclass
class Params:
    """{{name}} parameters"""

    name: str = param("world", description="Who to greet.")
    times: int = param(1, minimum=1, maximum=100, description="How many times.")


class Hello(Worker):
    id = "{{name}}"
    version = "0.1.0"
    name = "{{name}}"
    description = "Says hello (scaffolded by alephauto new-worker)."
    Params = Params

    def run(self, ctx: Context, params: Params) -> dict:
        name = params.name.strip()
        if not name:
            raise JobError.invalid("name", "must not be blank")
        ctx.log.info(f"greeting {name}", jobId=ctx.job.id)
        lines = []
        for i in range(params.times):
            ctx.check_cancelled()
            lines.append(f"Hello, {name}!")
            ctx.progress((i + 1) * 100 / params.times, f"greeted {i + 1} of {params.times}")
        return {"greeting": lines[0], "lines": lines, "jobId": ctx.job.id}
