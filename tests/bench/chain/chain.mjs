// The dispatch chain's Lua scripts, run by hand against a redis-server
// (redis_instructions.sh runs it under callgrind): N calls created as the
// gateway writes them (without its policy checks), then released, taken,
// claimed and finished as completed, RQ_CHAIN_BATCH calls per script run,
// by EVALSHA or, with RQ_CHAIN_MODE=fcall, as Redis functions built as
// common/redis_sync.c builds them.  The scripts' Lua is in $RQ_CHAIN_DIR.
//   node chain.mjs PORT N REPEATS
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CREATE } from '../bullmq/ringq_create.mjs';
const require = createRequire(new URL('../bullmq/', import.meta.url).pathname);
const IORedis = require('ioredis');
const [, , port, nstr, repstr] = process.argv;
const N = Number(nstr), REP = Number(repstr);
const D = process.env.RQ_CHAIN_DIR + '/';
const r = new IORedis({ host: '127.0.0.1', port: Number(port) });
const sha = {};
const B = Number(process.env.RQ_CHAIN_BATCH || 500), FN = process.env.RQ_CHAIN_MODE === 'fcall';
for (const n of ['release', 'take', 'claim', 'finish']) {
	const src = readFileSync(D + n + '.lua', 'utf8');
	sha[n] = await r.script('LOAD', src);
	if (FN) {
		const m = '--[[ run ]]\n', i = src.indexOf(m);
		const pre = src.slice(0, i), body = src.slice(i + m.length);
		await r.call('FUNCTION', 'LOAD', 'REPLACE', `#!lua name=cg_${n}\nlocal rq_library = redis\n` + pre +
		    `rq_library.register_function('cg_${n}', function(KEYS, ARGV)\n` + body + '\nend)\n');
	}
}
function run(n, ...a) { return FN ? r.call('FCALL', 'cg_' + n, ...a) : r.evalsha(sha[n], ...a); }
sha.create = await r.script('LOAD', CREATE);
const PID = readFileSync(D + 'redis.pid', 'utf8').trim();
// Redis's on-CPU time (ns, all threads' main: the process's schedstat), in usec.
async function usec() {
	await r.ping();
	return Number(readFileSync(`/proc/${PID}/schedstat`, 'utf8').split(' ')[0]) / 1000;
}
const best = { create: 1e9, release: 1e9, take: 1e9, claim: 1e9, finish: 1e9 };
for (let rep = 0; rep < REP; rep++) {
	await r.flushall();
	const ids = [];
	let u0 = await usec();
	for (let i = 0; i < N; i += 1000) {
		const p = r.pipeline();
		for (let k = i; k < i + 1000 && k < N; k++) {
			const id = `c_${rep}_${k}`;
			ids.push(id);
			p.evalsha(sha.create, 4, `rq:job:${id}`, 'rq:calls:demo', 'rq:delayed', 'rq:events', id, 'demo', 'sip:x@127.0.0.1', 'bench');
		}
		await p.exec();
	}
	let u1 = await usec(); best.create = Math.min(best.create, (u1 - u0) / N); u0 = u1;
	const now = Date.now() + 1000;
	for (;;) {
		const res = await run('release', 3, 'rq:delayed', 'rq:ready', 'rq:inflight', now, B, 'rq:job:');
		if (res[1] === 0) break;
	}
	u1 = await usec(); best.release = Math.min(best.release, (u1 - u0) / N); u0 = u1;
	const taken = [];
	for (;;) {
		const res = await run('take', 2, 'rq:ready', 'rq:inflight', 30000, 'rq:job:', B);
		for (const e of res) taken.push([e[0], e[1]]);
		if (res.length < B) break;
	}
	u1 = await usec(); best.take = Math.min(best.take, (u1 - u0) / N); u0 = u1;
	for (let i = 0; i < taken.length; i += B) {
		const a = ['tel1', 'rq:job:'];
		for (const [id, att] of taken.slice(i, i + B)) a.push(id, String(att));
		const res = await run('claim', 3, 'rq:inflight', 'rq:oncall:tel1', 'rq:nodes', ...a);
		if (res.some(x => x !== 1)) throw new Error('claim ' + res);
	}
	u1 = await usec(); best.claim = Math.min(best.claim, (u1 - u0) / N); u0 = u1;
	for (let i = 0; i < taken.length; i += B) {
		const a = ['rq:job:'];
		for (const [id, att] of taken.slice(i, i + B))
			a.push(id, String(att), 'tel1', 'completed', '', '200', '1', '2', '1000', '', '1', '');
		const res = await run('finish', 2, 'rq:oncall:tel1', 'rq:delayed', ...a);
		if (res.some(x => x[0] !== 1)) throw new Error('finish ' + JSON.stringify(res[0]));
	}
	u1 = await usec(); best.finish = Math.min(best.finish, (u1 - u0) / N);
	if (taken.length !== N) throw new Error('taken ' + taken.length);
}
let tot = 0;
for (const k in best) tot += best[k];
console.log(Object.entries(best).map(([k, v]) => `${k}=${v.toFixed(1)}`).join(' '), `total=${tot.toFixed(1)} usec/job (best of ${REP})`);
await r.quit();
