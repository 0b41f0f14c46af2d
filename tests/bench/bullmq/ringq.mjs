// ringq's side of tests/bench/bench_dispatch.sh: the load generator, with
// the same Redis client (ioredis) BullMQ uses, so both sides enqueue alike.
// Jobs are written straight into Redis as the gateway writes them: by
// ringq-redis.so's ringq.create with the gateway's arguments when Redis
// has the module (the gateway's own command), else by a script that
// writes what the gateway's create script writes (rq:job hash,
// rq:calls:<tenant>, the `queued` event in rq:events, last rq:delayed at
// now and the announcement on rq:due), without its policy checks; the
// scheduler releases them, a
// dispatcher sends them, dry-run telservers claim (event `dispatched`,
// then JOB_ACK) and finish them.  Times come from the events' ts_ms, which
// the Lua scripts take from Redis's clock (TIME), so every figure is on one
// clock.
//
//   node ringq.mjs throughput PORT JOBS TENANT TO [BATCH]
//     JOBS jobs in pipelined batches of BATCH (1000), by rq_enqueue when
//     RQ_BENCH_ENQUEUE names it and Redis has the module; time from the
//     first write to the last `dispatched` event.
//   node ringq.mjs latency PORT RATE SECONDS TENANT TO
//     RATE jobs per second for SECONDS (paced every 2 ms; by rq_enqueue
//     when RQ_BENCH_ENQUEUE names it and Redis has the module); per job:
//     dispatch latency = dispatched - scheduled (release to telserver
//     claim), and enqueue latency = dispatched - queued.  With
//     RQ_BENCH_TRACE=FILE, also each job's three times into FILE; with
//     RQ_BENCH_LAT_HIST=FILE, the dispatch latencies added to FILE as
//     "MS COUNT" lines, so that passes can be pooled (bench_lib.sh's
//     bench_hist_line).
//
// Prints one line "RQ_BENCH key=value ..." (bench_dispatch.sh parses it).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import IORedis from 'ioredis';
import { CREATE, gatewayCreate, hasModule } from './ringq_create.mjs';

const [, , mode, ...args] = process.argv;

// Batches in flight at once while adding (RQ_BENCH_INFLIGHT, 2).
const INFLIGHT = Number(process.env.RQ_BENCH_INFLIGHT || 2);

// The C load generator, for the throughput runs and the latency passes
// with the module (RQ_BENCH_ENQUEUE, its path; empty: this script's
// ioredis).
const ENQUEUE = process.env.RQ_BENCH_ENQUEUE || '';

// enqueueC(port, jobs, tenant, to, ...more): jobs calls by rq_enqueue
// (tests/bench/rq_enqueue.c; more: its BATCH, INFLIGHT, RATE).  Returns
// their ids and Redis's clock before the first and after the last.
function enqueueC(port, jobs, tenant, to, ...more) {
	const prefix = 'c_' + randomBytes(8).toString('hex');
	const ids = new Set();
	for (let i = 0; i < jobs; i++)
		ids.add(prefix + i.toString(16).padStart(8, '0'));
	const out = execFileSync(ENQUEUE, [String(port), String(jobs), tenant,
	    to, prefix, ...more.map(String)], { encoding: 'utf8' });
	const [, t0, t1] = /t0_ms=(\d+) t1_ms=(\d+)/.exec(out);
	return { ids, t0: Number(t0), t1: Number(t1) };
}

// A dry-run job's entries in rq:events: queued, scheduled, dispatched,
// completed.
const EVENTS_PER_JOB = 4;

function newId() {
	return 'c_' + randomBytes(12).toString('hex');
}

function pct(sorted, p) {
	if (sorted.length === 0)
		return NaN;
	const i = Math.min(sorted.length - 1,
	    Math.max(0, Math.ceil(p * sorted.length) - 1));
	return sorted[i];
}

function client(port) {
	const r = new IORedis({ host: '127.0.0.1', port: Number(port),
	    maxRetriesPerRequest: null });
	r.defineCommand('rqcreate', { numberOfKeys: 4, lua: CREATE });
	return r;
}

let MODULE = false;

function create(r, id, tenant, to) {
	if (MODULE)
		return r.call(...gatewayCreate(id, tenant, to, 'bench'));
	return r.rqcreate(`rq:job:${id}`, `rq:calls:${tenant}`, 'rq:delayed',
	    'rq:events', id, tenant, to, 'bench');
}

async function redisNow(r) {
	const [s, us] = await r.time();
	return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

// A consumer group of the bench's own on rq:events, from its current end,
// made before the first write (NOACK reads leave nothing pending):
// accounting trims the entries it has stored, but never the entries a
// group has yet to read, so the bench can run beside accounting.  Returns
// the group and how many entries the stream had ever had then.
async function openGroup(r) {
	const group = `bench-${process.pid}`;
	await r.xgroup('CREATE', 'rq:events', group, '$', 'MKSTREAM');
	return { group, added: await entriesAdded(r) };
}

// The stream's entries-added (Redis >= 7.0; null before).
async function entriesAdded(r) {
	const info = await r.xinfo('STREAM', 'rq:events');
	const i = info.indexOf('entries-added');
	return i === -1 ? null : Number(info[i + 1]);
}

// follow: waits (checking a counter, not reading: reading while the jobs
// run would take Redis time from them, which BullMQ's side does not pay)
// until `expect` entries were added to rq:events after `g`, or `secs`
// pass; then reads them through g's group until every id of `ids` has a
// `dispatched` event, and drops the group.  The times come from the
// entries' ts_ms, so reading afterwards changes none.  Returns Map id ->
// {queued, scheduled, dispatched} (ts_ms), and the other statuses seen.
async function follow(r, g, ids, expect, secs) {
	const seen = new Map();
	const other = {};
	let left = ids.size;
	const end = Date.now() + secs * 1000;
	try {
		if (g.added !== null) {
			while (Date.now() < end &&
			    await entriesAdded(r) - g.added < expect)
				await new Promise((res) => setTimeout(res, 50));
		}
		// A few seconds to read what came even when the wait ran out
		// (a job never dispatched): its figures and statuses say why.
		const readEnd = Math.max(end, Date.now() + 5000);
		while (left > 0 && Date.now() < readEnd) {
			const res = await r.xreadgroup('GROUP', g.group, 'bench',
			    'COUNT', 10000, 'BLOCK', 500, 'NOACK',
			    'STREAMS', 'rq:events', '>');
			if (!res)
				continue;
			for (const [, flat] of res[0][1]) {
				const f = {};
				for (let i = 0; i < flat.length; i += 2)
					f[flat[i]] = flat[i + 1];
				if (!ids.has(f.call_id))
					continue;
				let e = seen.get(f.call_id);
				if (!e)
					seen.set(f.call_id, e = {});
				if (f.status in e)
					continue;
				e[f.status] = Number(f.ts_ms);
				if (f.status === 'dispatched')
					left--;
				else if (!['queued', 'scheduled',
				    'completed'].includes(f.status))
					other[f.status] =
					    (other[f.status] || 0) + 1;
			}
		}
	} finally {
		await r.xgroup('DESTROY', 'rq:events', g.group);
	}
	return { seen, left, other };
}

function otherText(o) {
	const s = Object.entries(o).map(([k, v]) => `${k}:${v}`).join(',');
	return s || 'none';
}

async function throughput(port, jobs, tenant, to, batch = 1000) {
	jobs = Number(jobs);
	batch = Number(batch);
	const r = client(port), rd = client(port);
	MODULE = await hasModule(r);
	const g = await openGroup(r);
	const ids = new Set();
	let t0 = await redisNow(r);
	// The events are read after the writes: their ts_ms, not when they
	// are read, make the figures.
	// up to INFLIGHT batches sent and unanswered (bullmq.mjs does the
	// same): one generator in one process keeps Redis busy with two
	const pending = new Set();
	if (MODULE && ENQUEUE) {
		// the gateway's own way: C and hiredis
		const e = enqueueC(port, jobs, tenant, to, batch, INFLIGHT);
		e.ids.forEach((id) => ids.add(id));
		t0 = e.t0;
	}
	for (let i = 0; i < jobs && !(MODULE && ENQUEUE); i += batch) {
		const n = Math.min(batch, jobs - i);
		const p = r.pipeline();
		for (let k = 0; k < n; k++) {
			const id = newId();
			ids.add(id);
			if (MODULE)
				p.call(...gatewayCreate(id, tenant, to,
				    'bench'));
			else
				p.rqcreate(`rq:job:${id}`,
				    `rq:calls:${tenant}`, 'rq:delayed',
				    'rq:events', id, tenant, to, 'bench');
		}
		const sent = p.exec().then((out) => {
			for (const [err] of out)
				if (err)
					throw err;
		});
		pending.add(sent);
		sent.then(() => pending.delete(sent), () => {});
		if (pending.size >= INFLIGHT)
			await Promise.race(pending);
	}
	await Promise.all(pending);
	const added = await redisNow(r);
	const { seen, left, other } = await follow(rd, g, ids,
	    EVENTS_PER_JOB * jobs, 300);
	let lastDisp = 0;
	for (const e of seen.values())
		if (e.dispatched > lastDisp)
			lastDisp = e.dispatched;
	const ms = lastDisp - t0;
	console.log('RQ_BENCH system=ringq mode=throughput ' +
	    `create=${MODULE ? 'ringq.create' : 'script'} jobs=${jobs} ` +
	    `batch=${batch} add_ms=${added - t0} total_ms=${ms} ` +
	    `rate=${left ? 0 : Math.round(jobs * 1000 / ms)} ` +
	    `not_dispatched=${left} other=${otherText(other)}`);
	r.disconnect();
	rd.disconnect();
	return left === 0;
}

// writeTrace(path, seen): a line a dispatched job, "queued scheduled
// dispatched" (ms, Redis's clock), to see when in a pass the slow ones
// were and what else ran then.
function writeTrace(path, seen) {
	const lines = [];
	for (const e of seen.values())
		if (e.dispatched !== undefined && e.scheduled !== undefined)
			lines.push(`${e.queued} ${e.scheduled} ${e.dispatched}\n`);
	writeFileSync(path, lines.join(''));
}

// appendHist(path, sorted): the latencies (whole ms, sorted) as "MS COUNT"
// lines at the end of path.
function appendHist(path, sorted) {
	const lines = [];
	for (let i = 0; i < sorted.length; ) {
		let j = i;
		while (j < sorted.length && sorted[j] === sorted[i])
			j++;
		lines.push(`${sorted[i]} ${j - i}\n`);
		i = j;
	}
	appendFileSync(path, lines.join(''));
}

async function latency(port, rate, seconds, tenant, to) {
	rate = Number(rate);
	seconds = Number(seconds);
	const jobs = Math.round(rate * seconds);
	const r = client(port), rd = client(port);
	MODULE = await hasModule(r);
	const g = await openGroup(r);
	const ids = new Set();
	const t0 = Date.now();
	let sent = 0, sentMs;
	const pending = [];
	if (MODULE && ENQUEUE) {
		// paced in C, as the throughput runs are (BATCH and INFLIGHT
		// do not apply when paced)
		const e = enqueueC(port, jobs, tenant, to, 1000, 2, rate);
		e.ids.forEach((id) => ids.add(id));
		sentMs = e.t1 - e.t0;
		sent = jobs;
	}
	await new Promise((res) => {
		if (sent >= jobs)
			return res();
		const tick = setInterval(() => {
			const want = Math.min(jobs,
			    Math.floor((Date.now() - t0) * rate / 1000));
			for (; sent < want; sent++) {
				const id = newId();
				ids.add(id);
				pending.push(create(r, id, tenant, to));
			}
			if (sent >= jobs) {
				clearInterval(tick);
				res();
			}
		}, 2);
	});
	await Promise.all(pending);
	if (sentMs === undefined)
		sentMs = Date.now() - t0;
	const { seen, left, other } = await follow(rd, g, ids,
	    EVENTS_PER_JOB * jobs, 120);
	const disp = [], enq = [];
	for (const e of seen.values()) {
		if (e.dispatched === undefined)
			continue;
		if (e.scheduled !== undefined)
			disp.push(e.dispatched - e.scheduled);
		if (e.queued !== undefined)
			enq.push(e.dispatched - e.queued);
	}
	if (process.env.RQ_BENCH_TRACE)
		writeTrace(process.env.RQ_BENCH_TRACE, seen);
	disp.sort((a, b) => a - b);
	enq.sort((a, b) => a - b);
	if (process.env.RQ_BENCH_LAT_HIST)
		appendHist(process.env.RQ_BENCH_LAT_HIST, disp);
	console.log(`RQ_BENCH system=ringq mode=latency jobs=${jobs} ` +
	    `rate_asked=${rate} rate=${Math.round(jobs * 1000 / sentMs)} ` +
	    `p50_ms=${pct(disp, 0.5)} p99_ms=${pct(disp, 0.99)} ` +
	    `max_ms=${disp[disp.length - 1]} enq_p50_ms=${pct(enq, 0.5)} ` +
	    `enq_p99_ms=${pct(enq, 0.99)} enq_max_ms=${enq[enq.length - 1]} ` +
	    `not_dispatched=${left} other=${otherText(other)}`);
	r.disconnect();
	rd.disconnect();
	return left === 0;
}

try {
	let ok;
	if (mode === 'throughput')
		ok = await throughput(...args);
	else if (mode === 'latency')
		ok = await latency(...args);
	else {
		console.error('usage: node ringq.mjs throughput PORT JOBS TENANT ' +
		    'TO [BATCH] | latency PORT RATE SECONDS TENANT TO');
		process.exit(2);
	}
	process.exit(ok ? 0 : 3);
} catch (e) {
	console.error('ringq.mjs:', e.stack || e.message);
	process.exit(1);
}
