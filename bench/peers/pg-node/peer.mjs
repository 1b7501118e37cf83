// A peer PostgreSQL queue for bench section 7: enqueue `n` no-op jobs from `conc` tasks one
// by one (as AlephAuto's bench triggers them), then burn them down with `conc` workers,
// each peer with its batching options on. Prints {"n", "enqueue", "burn"} (seconds).
//
//   node peer.mjs graphile-worker|pg-boss POSTGRES_URL SCHEMA N CONC
import { performance } from "node:perf_hooks";

const [peer, url, schema, nArg, concArg] = process.argv.slice(2);
const n = Number(nArg);
const conc = Number(concArg);
if (!peer || !url || !schema || !(n > 0) || !(conc > 0)) {
  console.error("usage: node peer.mjs graphile-worker|pg-boss URL SCHEMA N CONC");
  process.exit(2);
}

async function enqueueAll(add) {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async (_, t) => {
      const share = Math.floor(n / conc) + (t < n % conc ? 1 : 0);
      for (let i = 0; i < share; i++) await add();
    }),
  );
  return (performance.now() - started) / 1000;
}

async function graphile() {
  const { run, makeWorkerUtils, Logger } = await import("graphile-worker");
  // Quiet: the default logger prints a line per job, which would be most of the work.
  const logger = new Logger(() => (level, message) => {
    if (level === "error") console.error(message);
  });
  const worker = {
    connectionString: url,
    schema,
    concurrentJobs: conc,
    maxPoolSize: conc + 4,
    pollInterval: 500,
    // The documented batching options: a local queue of locked jobs, completions in batches.
    localQueue: { size: Math.max(conc + 1, 500) },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  };
  const utils = await makeWorkerUtils({ preset: { worker }, logger });
  await utils.migrate();
  const enqueue = await enqueueAll(() => utils.addJob("noop", {}));
  await utils.release();
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const started = performance.now();
  const runner = await run({
    preset: { worker },
    noHandleSignals: true,
    logger,
    taskList: {
      noop: async () => {
        done += 1;
        if (done === n) finish();
      },
    },
  });
  await finished;
  const burn = (performance.now() - started) / 1000;
  await runner.stop();
  return { n, enqueue, burn };
}

async function pgBoss() {
  const { PgBoss } = await import("pg-boss");
  const boss = new PgBoss({ connectionString: url, schema, max: conc + 4, supervise: false, schedule: false });
  boss.on("error", (e) => console.error("pg-boss:", e.message));
  await boss.start();
  await boss.createQueue("noop");
  const enqueue = await enqueueAll(() => boss.send("noop", {}));
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const started = performance.now();
  // Batches fetched and completed in one call each, fetched back to back while they come full.
  await boss.work(
    "noop",
    { localConcurrency: conc, batchSize: 50, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true },
    async (jobs) => {
      done += jobs.length;
      if (done >= n) finish();
    },
  );
  await finished;
  const burn = (performance.now() - started) / 1000;
  await boss.stop({ graceful: true, wait: true, timeout: 10000 });
  return { n, enqueue, burn };
}

const result = peer === "graphile-worker" ? await graphile() : peer === "pg-boss" ? await pgBoss() : null;
if (!result) {
  console.error(`unknown peer ${peer}`);
  process.exit(2);
}
console.log(JSON.stringify(result));
process.exit(0);
