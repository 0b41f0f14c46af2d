// BullMQ's side of tests/bench/bench_dispatch.sh: no-op jobs through a
// Queue and a Worker on the redis-server ringq uses in the same run.
//
//   node bullmq.mjs throughput PORT JOBS CONCURRENCY [BATCH]
//     Starts a Worker (concurrency CONCURRENCY, a no-op processor) in a
//     child process, then adds JOBS jobs with Queue.addBulk in batches of
//     BATCH (1000), and times from the first add to the last job completed.
//   node bullmq.mjs latency PORT RATE SECONDS CONCURRENCY
//     The same Worker; adds RATE jobs per second for SECONDS (Queue.add,
//     paced every 2 ms); latency = when the processor starts the job minus
//     job.timestamp (set by Queue.add), both Date.now() on this machine.
//
// Prints one line "RQ_BENCH key=value ..." (bench_dispatch.sh parses it).
// Jobs are removed when they complete (removeOnComplete), as a
// high-throughput BullMQ deployment would; each run uses a fresh queue.
import { fork } from 'node:child_process';

// Batches of jobs in flight at once while adding (RQ_BENCH_INFLIGHT):
// one load generator in one process keeps Redis busy with two.
const INFLIGHT = Number(process.env.RQ_BENCH_INFLIGHT || 2);
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const [, self, mode, ...args] = process.argv;

function conn(port) {
	// BullMQ requires maxRetriesPerRequest null for a Worker's connection.
	return new IORedis({ host: '127.0.0.1', port: Number(port),
	    maxRetriesPerRequest: null });
}

function pct(sorted, p) {
	if (sorted.length === 0)
		return NaN;
	const i = Math.min(sorted.length - 1,
	    Math.max(0, Math.ceil(p * sorted.length) - 1));
	return sorted[i];
}

// --- the worker, in its own process (it gets its own core) -------------------

async function worker(port, name, concurrency, expect, wantLatency) {
	const lat = [];
	let done = 0;
	const w = new Worker(name, async (job) => {
		if (wantLatency)
			lat.push(Date.now() - job.timestamp);
	}, { connection: conn(port), concurrency: Number(concurrency),
	    autorun: true });
	w.on('completed', () => {
		if (++done === Number(expect)) {
			const at = Date.now();
			process.send({ done: at, lat });
		}
	});
	w.on('error', (e) => console.error('bullmq worker:', e.message));
	await w.waitUntilReady();
	process.send({ ready: true });
	process.on('message', async (m) => {
		if (m.stop) {
			await w.close();
			process.exit(0);
		}
	});
}

function startWorker(port, name, concurrency, expect, wantLatency) {
	const child = fork(self, ['worker', port, name, String(concurrency),
	    String(expect), wantLatency ? '1' : '0']);
	let onDone;
	const done = new Promise((res) => { onDone = res; });
	const ready = new Promise((res, rej) => {
		child.on('message', (m) => {
			if (m.ready)
				res();
			if (m.done)
				onDone(m);
		});
		child.on('exit', (code) => rej(new Error(`worker exited ${code}`)));
	});
	return { child, ready, done };
}

async function stopWorker(w) {
	w.child.send({ stop: true });
	await new Promise((res) => w.child.on('exit', res));
}

function withTimeout(p, ms, what) {
	let t;
	return Promise.race([p, new Promise((_, rej) => {
		t = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms);
	})]).finally(() => clearTimeout(t));
}

const JOB_OPTS = { removeOnComplete: true, removeOnFail: true };

async function throughput(port, jobs, concurrency, batch = 1000) {
	jobs = Number(jobs);
	batch = Number(batch);
	const name = `bench-tp-${concurrency}-${Date.now()}`;
	const q = new Queue(name, { connection: conn(port) });
	await q.waitUntilReady();
	const w = startWorker(port, name, concurrency, jobs, false);
	await w.ready;
	const t0 = Date.now();
	// up to INFLIGHT batches sent and unanswered, as ringq.mjs does
	const pending = new Set();
	for (let i = 0; i < jobs; i += batch) {
		const n = Math.min(batch, jobs - i);
		const b = [];
		for (let k = 0; k < n; k++)
			b.push({ name: 'noop', data: { i: i + k }, opts: JOB_OPTS });
		const p = q.addBulk(b);
		pending.add(p);
		p.then(() => pending.delete(p));
		if (pending.size >= INFLIGHT)
			await Promise.race(pending);
	}
	await Promise.all(pending);
	const added = Date.now();
	const r = await withTimeout(w.done, 600000, 'BullMQ jobs');
	const ms = r.done - t0;
	console.log(`RQ_BENCH system=bullmq mode=throughput jobs=${jobs} ` +
	    `concurrency=${concurrency} batch=${batch} add_ms=${added - t0} ` +
	    `total_ms=${ms} rate=${Math.round(jobs * 1000 / ms)}`);
	await stopWorker(w);
	await q.obliterate({ force: true });
	await q.close();
}

async function latency(port, rate, seconds, concurrency) {
	rate = Number(rate);
	seconds = Number(seconds);
	const jobs = Math.round(rate * seconds);
	const name = `bench-lat-${Date.now()}`;
	const q = new Queue(name, { connection: conn(port) });
	await q.waitUntilReady();
	const w = startWorker(port, name, concurrency, jobs, true);
	await w.ready;
	const t0 = Date.now();
	let sent = 0;
	await new Promise((res) => {
		const tick = setInterval(() => {
			const want = Math.min(jobs,
			    Math.floor((Date.now() - t0) * rate / 1000));
			for (; sent < want; sent++)
				q.add('noop', { i: sent }, JOB_OPTS);
			if (sent >= jobs) {
				clearInterval(tick);
				res();
			}
		}, 2);
	});
	const sentMs = Date.now() - t0;
	const r = await withTimeout(w.done, 120000, 'BullMQ jobs');
	const lat = r.lat.sort((a, b) => a - b);
	console.log(`RQ_BENCH system=bullmq mode=latency jobs=${jobs} ` +
	    `concurrency=${concurrency} rate_asked=${rate} ` +
	    `rate=${Math.round(jobs * 1000 / sentMs)} p50_ms=${pct(lat, 0.5)} ` +
	    `p99_ms=${pct(lat, 0.99)} max_ms=${lat[lat.length - 1]}`);
	await stopWorker(w);
	await q.obliterate({ force: true });
	await q.close();
}

try {
	if (mode === 'worker')
		await worker(...args);
	else if (mode === 'throughput') {
		await throughput(...args);
		process.exit(0);
	} else if (mode === 'latency') {
		await latency(...args);
		process.exit(0);
	} else {
		console.error('usage: node bullmq.mjs throughput PORT JOBS ' +
		    'CONCURRENCY [BATCH] | latency PORT RATE SECONDS CONCURRENCY');
		process.exit(2);
	}
} catch (e) {
	console.error('bullmq.mjs:', e.stack || e.message);
	process.exit(1);
}
